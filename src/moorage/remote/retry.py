"""When to try again, and how long to wait first.

Backoff doubles from `base_delay` up to `max_delay`, with "equal jitter" (half fixed, half
random) so that many copies failing together do not come back together. A 429 or 503 that
says `Retry-After` is obeyed instead (seconds or an HTTP date), cut to `max_retry_after`: a
registry asking for an hour must not hold a job for an hour.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable

from moorage.remote.config import RetryPolicy

# Statuses worth another try: throttled, or the registry (or a proxy before it) failing.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def backoff(policy: RetryPolicy, attempt: int, random: Callable[[], float]) -> float:
    """Seconds to wait after the `attempt`-th failure (1 for the first)."""
    full = min(policy.max_delay, policy.base_delay * (2 ** (attempt - 1)))
    return full / 2 + random() * full / 2


def retry_after(value: str | None, policy: RetryPolicy,
                wall: Callable[[], float] = time.time) -> float | None:
    """The wait a `Retry-After` header asks for, bounded; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()[:64]
    if value.isdigit():
        seconds = float(int(value))
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - wall()
    return max(0.0, min(seconds, policy.max_retry_after))
