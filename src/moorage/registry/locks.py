"""The locks of blobs and uploads: commits against GC sweeps, and one writer per upload.

An upload that finishes a digest GC is sweeping at that instant must not lose its bytes: the
commit (bytes in place, then the row) and the sweep (row gone, then the bytes) of one digest
never interleave. On one machine a file lock covers every worker process: commits share it,
a sweep of one blob holds it alone for an instant, and a backup can hold it shared to keep GC
off the blobs it copies. Replicas on shared storage use a per-digest mutex in Redis instead.

Without Redis, replicas cannot agree on who writes: a Redis lock that cannot be had raises
`Unavailable` (503 with Retry-After) instead of letting the write go ahead unguarded, and
the next attempt after Redis is back simply takes the lock (cache/outage.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, ContextManager, Protocol

from moorage.cache.outage import RedisDown, RedisHealth, Unavailable


class BlobLock(Protocol):
    def committing(self, digest: str) -> ContextManager[None]:
        """Held while a blob's bytes and row come into being (upload commit, mount)."""

    def sweeping(self, digest: str) -> ContextManager[None]:
        """Held while GC removes a blob's row and bytes."""

    def sweeping_many(self, digests: list[str]) -> ContextManager[None]:
        """sweeping() of every one of these digests at once: GC removes a page of blobs
        (their rows in one transaction, then their bytes) under it."""


class FileBlobLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def shared(self) -> ContextManager[None]:
        return self._locked(fcntl.LOCK_SH)

    def exclusive(self) -> ContextManager[None]:
        return self._locked(fcntl.LOCK_EX)

    def committing(self, digest: str) -> ContextManager[None]:
        return self.shared()

    def sweeping(self, digest: str) -> ContextManager[None]:
        return self.exclusive()

    def sweeping_many(self, digests: list[str]) -> ContextManager[None]:
        return self.exclusive()  # one lock covers every digest


class RedisBlobLock:
    """A mutex per digest (SET NX with a token and an expiry, released only by its owner)."""

    _RELEASE = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
                "return redis.call('del', KEYS[1]) else return 0 end")

    def __init__(self, client: Any, prefix: str = "moorage:lock:blob:",
                 ttl_ms: int = 60_000, wait_seconds: float = 60.0,
                 health: RedisHealth | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_ms = ttl_ms
        self.wait_seconds = wait_seconds
        self.health = health or RedisHealth()

    @contextlib.contextmanager
    def _mutex(self, digest: str) -> Iterator[None]:
        key, token = self.prefix + digest, uuid.uuid4().hex
        deadline = time.monotonic() + self.wait_seconds
        try:
            while not self.health.call("a blob lock", lambda: self.client.set(
                    key, token, nx=True, px=self.ttl_ms), may_skip=False):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"could not lock blob {digest} within "
                                       f"{self.wait_seconds}s")
                time.sleep(0.01)
        except RedisDown:
            raise Unavailable(f"blob locks (Redis at {self.health.where}) are unavailable; "
                              "pushes resume when it is back, try again later") from None
        try:
            yield
        finally:
            with contextlib.suppress(RedisDown):  # it expires by itself if Redis is away
                self.health.call("a blob lock release",
                                 lambda: self.client.eval(self._RELEASE, 1, key, token),
                                 may_skip=False)

    def committing(self, digest: str) -> ContextManager[None]:
        return self._mutex(digest)

    def sweeping(self, digest: str) -> ContextManager[None]:
        return self._mutex(digest)

    @contextlib.contextmanager
    def sweeping_many(self, digests: list[str]) -> Iterator[None]:
        """Each digest's mutex, taken in digest order (two sweeps never wait on each other
        in a circle), all released when the block ends or one cannot be had."""
        with contextlib.ExitStack() as held:
            for digest in sorted(set(digests)):
                held.enter_context(self._mutex(digest))
            yield


# -- uploads --------------------------------------------------------------------------------
# How long a request waits for an upload another request is writing before it is refused.
# Sequential clients never wait: a chunk's lock is released before its answer is sent.
UPLOAD_LOCK_WAIT = 5.0
# A Redis lease lives this long unless renewed (four times per life while held): a replica
# that dies holding one blocks its upload for at most this long, and the next request of
# the client waits for it to lapse (this plus UPLOAD_LOCK_WAIT) instead of being refused.
UPLOAD_LEASE_MS = 10_000


class UploadBusy(Exception):
    """Another request holds the upload's lock (a parallel PATCH, PUT or DELETE)."""


class UploadLockLost(Exception):
    """The lease on an upload ran out while it was held: another request may own it now."""


class UploadLease:
    """What a holder of an upload's lock is told: whether the lock is still surely theirs,
    and a way to say that the upload ended (so that its lock file can go)."""

    def __init__(self) -> None:
        self.lost = False
        self.unreachable = ""  # where the lock lives, when it was lost because that went away
        self.ended = False

    def check(self) -> None:
        """Raise UploadLockLost before a write that only the lock's holder may make
        (Unavailable, a 503, when it was lost because Redis went away: the chunk is dropped
        and the client resumes once Redis is back)."""
        if self.lost and self.unreachable:
            raise Unavailable(f"upload locks ({self.unreachable}) became unavailable during "
                              "this request; resume the upload later, try again later")
        if self.lost:
            raise UploadLockLost("the upload's lock expired while this request held it")

    def end(self) -> None:
        self.ended = True


class UploadLock(Protocol):
    """One writer per upload at a time, across every worker and replica.

    An upload's staged bytes, the digest noted on them and the decision to commit them must
    describe the same bytes; a lock held in one process only let two workers write one upload
    at once, and a blob end up under another blob's digest. Every PATCH holds the lock while
    its body streams in, every closing PUT while it hashes and commits, every DELETE while it
    removes the upload.
    """

    def hold(self, upload_id: str, wait: float | None = None
             ) -> contextlib.AbstractAsyncContextManager[UploadLease]:
        """Hold the upload's lock; UploadBusy if it stays taken for `wait` seconds (None: the
        lock's own bound, long enough for a lock a dead holder left to lapse)."""


async def _poll(try_once: Any, wait: float) -> None:
    """Retry an attempt that returns True once it succeeded, backing off up to 50 ms."""
    deadline = time.monotonic() + wait
    delay = 0.002
    while not await try_once():
        if time.monotonic() >= deadline:
            raise UploadBusy("another request is writing to this upload")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


class FileUploadLock:
    """flock(2) on one file per upload, for every process on one machine.

    A flock has no expiry and goes with the process that holds it, so a writer that holds one
    is always the only writer. The file goes when its upload ends; a request that waited on
    the file of an ended upload finds, once it has the lock, that the path no longer names the
    file it locked, and tries again (then sees that the upload is gone).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    @contextlib.asynccontextmanager
    async def hold(self, upload_id: str,
                   wait: float | None = None) -> AsyncIterator[UploadLease]:
        path = self.root / upload_id
        held: list[int] = []

        async def try_once() -> bool:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = None
            if current != os.fstat(fd).st_ino:  # locked a file its upload's end removed
                os.close(fd)
                return False
            held.append(fd)
            return True

        await _poll(try_once, UPLOAD_LOCK_WAIT if wait is None else wait)
        lease = UploadLease()
        try:
            yield lease
        finally:
            if lease.ended:
                path.unlink(missing_ok=True)  # while still locked: waiters then retry
            os.close(held[0])


class RedisUploadLock:
    """A lease per upload in Redis, for replicas: SET NX with a token and an expiry, renewed
    while it is held, released only by its owner.

    A lease can run out under its holder (a stall longer than its TTL, a Redis restart); the
    holder's lease then says `lost`, and the upload code checks it before each batch it
    writes and before it commits, so that it stops instead of writing beside the new owner.
    """

    _RELEASE = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
                "return redis.call('del', KEYS[1]) else return 0 end")
    _EXTEND = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
               "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end")

    def __init__(self, client: Any, prefix: str = "moorage:lock:upload:",
                 ttl_ms: int = UPLOAD_LEASE_MS, health: RedisHealth | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_ms = ttl_ms
        self.health = health or RedisHealth()

    @contextlib.asynccontextmanager
    async def hold(self, upload_id: str,
                   wait: float | None = None) -> AsyncIterator[UploadLease]:
        key, token = self.prefix + upload_id, uuid.uuid4().hex

        async def try_once() -> bool:
            return bool(await asyncio.to_thread(self.health.call, "an upload lock", lambda: (
                self.client.set(key, token, nx=True, px=self.ttl_ms)), False))

        try:
            await _poll(try_once,
                        self.ttl_ms / 1000 + UPLOAD_LOCK_WAIT if wait is None else wait)
        except RedisDown:
            raise Unavailable(f"upload locks (Redis at {self.health.where}) are unavailable; "
                              "uploads resume when it is back, try again later") from None
        lease = UploadLease()
        renewer = asyncio.create_task(self._renew(key, token, lease))
        try:
            yield lease
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            with contextlib.suppress(Exception):  # it expires by itself if Redis is away
                await asyncio.to_thread(self.client.eval, self._RELEASE, 1, key, token)

    async def _renew(self, key: str, token: str, lease: UploadLease) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 4000)
            try:
                kept = await asyncio.to_thread(self.client.eval, self._EXTEND, 1, key, token,
                                               self.ttl_ms)
            except Exception as exc:  # noqa: BLE001 - unknown is as good as lost
                self.health.failed("an upload lock renewal", exc)
                lease.unreachable = f"Redis at {self.health.where}"
                kept = 0
            if not kept:
                lease.lost = True
                return
