"""The lock between upload commits (and mounts) and GC sweeps of the same blob.

An upload that finishes a digest GC is sweeping at that instant must not lose its bytes: the
commit (bytes in place, then the row) and the sweep (row gone, then the bytes) of one digest
never interleave. On one machine a file lock covers every worker process: commits share it,
a sweep of one blob holds it alone for an instant, and a backup can hold it shared to keep GC
off the blobs it copies. Replicas on shared storage use a per-digest mutex in Redis instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ContextManager, Protocol


class BlobLock(Protocol):
    def committing(self, digest: str) -> ContextManager[None]:
        """Held while a blob's bytes and row come into being (upload commit, mount)."""

    def sweeping(self, digest: str) -> ContextManager[None]:
        """Held while GC removes a blob's row and bytes."""


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


class RedisBlobLock:
    """A mutex per digest (SET NX with a token and an expiry, released only by its owner)."""

    _RELEASE = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
                "return redis.call('del', KEYS[1]) else return 0 end")

    def __init__(self, client: Any, prefix: str = "moorage:lock:blob:",
                 ttl_ms: int = 60_000, wait_seconds: float = 60.0) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_ms = ttl_ms
        self.wait_seconds = wait_seconds

    @contextlib.contextmanager
    def _mutex(self, digest: str) -> Iterator[None]:
        key, token = self.prefix + digest, uuid.uuid4().hex
        deadline = time.monotonic() + self.wait_seconds
        while not self.client.set(key, token, nx=True, px=self.ttl_ms):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not lock blob {digest} within {self.wait_seconds}s")
            time.sleep(0.01)
        try:
            yield
        finally:
            self.client.eval(self._RELEASE, 1, key, token)

    def committing(self, digest: str) -> ContextManager[None]:
        return self._mutex(digest)

    def sweeping(self, digest: str) -> ContextManager[None]:
        return self._mutex(digest)
