"""Failed logins, counted per account and per client address, with exponential lockouts.

After `account_failures` failures for one account (or `address_failures` from one address),
attempts are refused, right password or not, for `base_seconds`; each further failure once
a lockout has lapsed doubles it, up to `max_seconds`. A success resets the account's count.
The address's count is not reset by a success (an attacker holding one account of their own
would otherwise clear it between guesses at others); it is forgotten with the account's
after `window` seconds without a failure.

Counts live where every process sees them: Redis when configured, else the database
(cache/login_failures.py, db/access.py). Attempts refused during a lockout are not counted,
so a client retrying in a loop does not extend its own lockout without end. The clock is a
parameter, so that the schedule can be tested without waiting for it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from moorage.access.errors import Throttled


@dataclass(frozen=True)
class ThrottlePolicy:
    account_failures: int = 5  # 0 turns the account lockout off
    address_failures: int = 20  # 0 turns the address lockout off
    base_seconds: float = 1.0
    max_seconds: float = 900.0

    @property
    def window(self) -> float:
        """How long a count is remembered after its last failure: longer than any lockout,
        so that a lockout never outlives the count it came from."""
        return max(3600.0, 2 * self.max_seconds)

    def lockout(self, failures: int, limit: int) -> float:
        """Seconds refused after the failure that brought the count to `failures`."""
        if limit <= 0 or failures < limit:
            return 0.0
        return min(self.max_seconds, self.base_seconds * 2.0 ** min(failures - limit, 62))


class FailureCounter(Protocol):
    """Shared counts: key -> (failures, time of the last one)."""

    def failures(self, keys: Sequence[str], now: float,
                 window: float) -> dict[str, tuple[int, float]]:
        """The counts of these keys whose last failure is within the window."""

    def add_failure(self, keys: Sequence[str], now: float,
                    window: float) -> dict[str, tuple[int, float]]:
        """Count one failure against each key, atomically; a count older than the window
        starts again at 1. Returns the new counts."""

    def clear(self, key: str) -> None:
        """Forget a key's count."""


@dataclass(frozen=True)
class Lockout:
    """A lockout that a failure has just begun, for the audit log."""

    scope: str  # "account" | "address"
    failures: int
    seconds: float


@dataclass(frozen=True)
class Standing:
    """What `check` found: whether the account has failures on record (to reset them)."""

    account_failures: int


class LoginThrottle:
    def __init__(self, counter: FailureCounter, policy: ThrottlePolicy,
                 clock: Callable[[], float] = time.time) -> None:
        self.counter = counter
        self.policy = policy
        self.clock = clock

    def _keys(self, account: str, address: str | None) -> list[tuple[str, str, int]]:
        keys = [("account", f"u:{account}", self.policy.account_failures)]
        if address:
            keys.append(("address", f"a:{address}", self.policy.address_failures))
        return [k for k in keys if k[2] > 0]

    def check(self, account: str, address: str | None) -> Standing:
        """Raise Throttled if the account or the address is locked out."""
        keys = self._keys(account, address)
        if not keys:
            return Standing(0)
        now = self.clock()
        counts = self.counter.failures([k for _, k, _ in keys], now, self.policy.window)
        for scope, key, limit in keys:
            failures, last = counts.get(key, (0, 0.0))
            until = last + self.policy.lockout(failures, limit)
            if now < until:
                seconds = max(1, math.ceil(until - now))
                where = "this account" if scope == "account" else f"address {address}"
                raise Throttled(f"too many failed logins for {where}; try again in "
                                f"{seconds} second{'s' if seconds > 1 else ''}", seconds)
        return Standing(counts.get(f"u:{account}", (0, 0.0))[0])

    def failed(self, account: str, address: str | None) -> list[Lockout]:
        """Count a failure; the lockouts it begins, if any."""
        keys = self._keys(account, address)
        if not keys:
            return []
        now = self.clock()
        counts = self.counter.add_failure([k for _, k, _ in keys], now, self.policy.window)
        begun = []
        for scope, key, limit in keys:
            failures = counts.get(key, (0, now))[0]
            seconds = self.policy.lockout(failures, limit)
            if seconds > 0:
                begun.append(Lockout(scope, failures, seconds))
        return begun

    def succeeded(self, account: str, standing: Standing) -> None:
        if standing.account_failures:
            self.counter.clear(f"u:{account}")
