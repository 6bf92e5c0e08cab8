"""What every user of Redis does when Redis is away: fail soft where it can, 503 where it can't.

Redis holds only caches, locks and counters, so its outage must not be a registry outage.
Reads of a cache fall back to the database; counters fall back to the database or to this
process; a lock that keeps two replicas from writing one blob or upload cannot be had, so
the write is refused with 503 and Retry-After (`Unavailable`) and the client retries later.

One `RedisHealth` per process remembers that Redis failed, so that for a short while every
caller skips it at once instead of each paying a connection attempt, logs the outage at most
once per `log_every` seconds (not once per request), and says when Redis answers again.
Nothing has to be restarted: after `retry_after` seconds the next call simply tries Redis.
The clock is a parameter, so that the schedule can be tested without waiting for it.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

from moorage.oci.errors import RegistryError

log = logging.getLogger("moorage.redis")

T = TypeVar("T")

# How long a failure makes callers skip Redis before the next one tries it again.
SKIP_SECONDS = 1.0
# What a refused write tells the client to wait.
RETRY_AFTER_SECONDS = 5


class RedisDown(Exception):
    """Redis could not be reached (or was skipped because it just failed)."""


class Unavailable(RegistryError):
    """A write that needs a lock shared through Redis while Redis is away: 503, Retry-After.

    The spec has no code for a service that is away; UNKNOWN carries the message, and the
    status and Retry-After say what to do."""

    def __init__(self, message: str) -> None:
        super().__init__("UNKNOWN", message, detail={"reason": "unavailable"}, status=503,
                         headers={"retry-after": str(RETRY_AFTER_SECONDS)})


def redis_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "Redis is not answering" (redis-py's own, and the OS's)."""
    import redis

    return (redis.RedisError, ConnectionError, TimeoutError, OSError)


def where(url: str) -> str:
    """host:port of a Redis URL, never its password."""
    parts = urlsplit(url)
    return f"{parts.hostname or '?'}:{parts.port or 6379}"


class RedisHealth:
    def __init__(self, url: str = "", clock: Callable[[], float] = time.monotonic,
                 skip_seconds: float = SKIP_SECONDS, log_every: float = 60.0) -> None:
        self.where = where(url) if url else "redis"
        self.clock = clock
        self.skip_seconds = skip_seconds
        self.log_every = log_every
        self._down_until = 0.0
        self._down_since: float | None = None
        self._last_log = float("-inf")
        self._suppressed = 0
        self._lock = threading.Lock()
        # Told of each failure (metrics count them); cheap, and never raising.
        self.listeners: list[Callable[[], None]] = []

    @functools.cached_property
    def _errors(self) -> tuple[type[BaseException], ...]:
        """redis-py's exceptions, imported on the first call: a server without Redis never
        imports redis (with the OpenTelemetry SDK it pulls in, ~10 MiB per worker)."""
        return redis_errors()

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def call(self, what: str, fn: Callable[[], T], may_skip: bool = True) -> T:
        """fn(), or RedisDown if it fails, or if Redis failed just now and `may_skip` (for
        callers with a fallback; a write that needs Redis always tries, so that the first
        one after Redis is back succeeds)."""
        if may_skip and self.clock() < self._down_until:
            raise RedisDown(f"Redis at {self.where} is unavailable")
        try:
            result = fn()
        except self._errors as exc:
            self.failed(what, exc)
            raise RedisDown(f"Redis at {self.where} is unavailable") from exc
        self.succeeded()
        return result

    def skipping(self) -> bool:
        """True while callers should not try Redis (a failure was just seen)."""
        return self.clock() < self._down_until

    def failed(self, what: str, exc: BaseException) -> None:
        """Note a failure: skip Redis for a moment, and log it unless logged just now."""
        for listener in self.listeners:
            listener()
        now = self.clock()
        with self._lock:
            self._down_until = now + self.skip_seconds
            if self._down_since is None:
                self._down_since = now
            if now - self._last_log < self.log_every:
                self._suppressed += 1
                return
            suppressed, self._suppressed, self._last_log = self._suppressed, 0, now
        more = f" ({suppressed} more failures since the last message)" if suppressed else ""
        log.warning("Redis at %s is unavailable (%s: %s); %s failed: pulls go on from the "
                    "database, pushes answer 503 until it is back%s",
                    self.where, type(exc).__name__, exc, what, more)

    def succeeded(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            since, self._down_since = self._down_since, None
            self._last_log = float("-inf")
        if since is not None:
            log.warning("Redis at %s answers again (after %.0f s)", self.where,
                        self.clock() - since)
