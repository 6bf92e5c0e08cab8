"""Passwords (argon2id) and random secrets (tokens, robot secrets), stored only as hashes.

Argon2 is deliberately slow (~40 ms of CPU here), so two rules hold for it:

- it never runs on a thread that runs an event loop: `hash_password` and `verify_password`
  refuse (RuntimeError), so a code path that would stall every request of a worker for the
  length of a hash fails loudly in tests instead of slowly in production;
- at most `HASH_CONCURRENCY` hashes run at once per process, with at most `HASH_QUEUE` more
  waiting; beyond that a login is refused at once with 429 (`HashBusy`) rather than queued,
  so a flood of guesses can hold neither the CPU nor the threads that other requests need.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets as _secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from moorage.access.errors import Throttled

# argon2id with OWASP's recommended floor (19 MiB, 2 passes): the library default's 64 MiB per
# hash made every worker process peak 64 MiB higher after its first login (docs/benchmarks.md).
# Existing hashes keep verifying with the parameters stored inside them.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

HASH_CONCURRENCY = 2
HASH_QUEUE = 8


class HashBusy(Throttled):
    """Too many password checks in progress in this process: come back in a second."""

    def __init__(self) -> None:
        super().__init__("too many password checks in progress; try again in a second", 1)


class HashGate:
    """A semaphore that refuses instead of queueing without bound."""

    def __init__(self, concurrency: int, queue: int) -> None:
        self._running = threading.BoundedSemaphore(concurrency)
        self._admitted = threading.BoundedSemaphore(concurrency + queue)

    def __enter__(self) -> None:
        if not self._admitted.acquire(blocking=False):
            raise HashBusy()
        self._running.acquire()

    def __exit__(self, *_: object) -> None:
        self._running.release()
        self._admitted.release()


_gate = HashGate(HASH_CONCURRENCY, HASH_QUEUE)


def _off_the_loop() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError("argon2 must not run on the event loop thread: run it in a worker "
                       "thread (it would stall every request of this process)")


def hash_password(password: str) -> str:
    _off_the_loop()
    with _gate:
        return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    _off_the_loop()
    with _gate:
        try:
            return _hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


_dummy: str | None = None
_dummy_lock = threading.Lock()


def dummy_password_hash() -> str:
    """A hash of a random password, with the parameters new hashes get: an unknown username
    is checked against it, so that it costs what a real account's wrong password costs and
    the time taken does not tell which accounts exist."""
    global _dummy
    with _dummy_lock:
        if _dummy is None:
            _dummy = hash_password(new_secret())
        return _dummy


def new_secret(nbytes: int = 32) -> str:
    return _secrets.token_urlsafe(nbytes)


def hash_secret(secret: str) -> str:
    """Random secrets carry their own entropy, so a fast hash is enough and keeps auth cheap."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret_hash: str, secret: str) -> bool:
    return hmac.compare_digest(secret_hash, hash_secret(secret))


def keyed_digest(key: bytes, value: str) -> str:
    """HMAC-SHA256 of a value, in hex: what may be stored of a string that might be a secret
    (a password typed into the username field). Without the instance's key, a dictionary
    cannot be run against it."""
    return hmac.new(key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
