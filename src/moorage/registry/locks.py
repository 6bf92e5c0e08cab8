"""The lock between upload commits and GC sweeps, shared by every process of an instance.

Upload commits take it shared (they never wait for each other); the sweep takes it exclusive
for the instant it deletes one blob's row and bytes. A file lock covers every worker process on
one machine; replicas on shared storage use Redis instead (scale-out).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class BlobLock:
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

    def shared(self) -> contextlib.AbstractContextManager[None]:
        return self._locked(fcntl.LOCK_SH)

    def exclusive(self) -> contextlib.AbstractContextManager[None]:
        return self._locked(fcntl.LOCK_EX)
