"""When each tag was last pulled, without a write on every pull.

A pull by tag only looks in a small per-process table of tags it has noted lately: a tag
noted less than `interval` seconds ago costs nothing more. Otherwise the tag is handed to a
background thread of this process, which asks the database (MetadataStore.record_pulls):
the database decides whether `pulled_at` is old enough to move, so that every worker and
replica agrees, and each tag is written at most about once per interval however many
processes serve its pulls. The per-process table is only a cache of that decision.

The pull itself never waits for the database and never fails because of it. The price,
stated plainly: `pulled_at` is late by up to `interval` seconds by design, and a process
killed before its thread wrote loses what it had noted (a last-pulled time, nothing more).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref

from moorage.db.metadata import MetadataStore

log = logging.getLogger("moorage.registry")

INTERVAL = 60.0
MAX_NOTED = 50_000  # tags remembered per process; forgotten all at once past that
MAX_PENDING = 10_000  # tags waiting for the thread; more are dropped until it catches up

_clocks: weakref.WeakSet[PullClock] = weakref.WeakSet()


class PullClock:
    def __init__(self, db: MetadataStore, interval: float = INTERVAL) -> None:
        self.db = db
        self.interval = interval
        self._noted: dict[tuple[str, str], float] = {}
        self._pending: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._failing = False
        _clocks.add(self)

    def pulled(self, repository: str, tag: str, at: float | None = None) -> None:
        """A client pulled the manifest of `tag` (called on the event loop: no I/O here)."""
        now = time.time() if at is None else at
        key = (repository, tag)
        last = self._noted.get(key)
        if last is not None and now - last < self.interval:
            return
        if len(self._noted) >= MAX_NOTED:
            self._noted.clear()
        self._noted[key] = now
        with self._lock:
            if len(self._pending) < MAX_PENDING:
                self._pending[key] = now
        self._start()
        self._wake.set()

    def _start(self) -> None:
        pid = os.getpid()
        if self._thread is not None and self._pid == pid and self._thread.is_alive():
            return
        with self._lock:  # a forked worker starts its own thread
            if self._thread is not None and self._pid == pid and self._thread.is_alive():
                return
            self._pid = pid
            self._thread = threading.Thread(target=self._run, name="moorage-pulls",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            self.flush()

    def flush(self) -> int:
        """Write what is pending now; how many tags changed."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        try:
            changed = self.db.record_pulls([(r, t, at) for (r, t), at in pending.items()],
                                           self.interval)
        except Exception as exc:  # the database is away: a last-pulled time is not worth more
            if not self._failing:
                log.warning("could not record the last pull of %d tags: %s", len(pending), exc)
            self._failing = True
            for key in pending:  # noted again by their next pull
                self._noted.pop(key, None)
            return 0
        if self._failing:
            log.warning("recording last pulls works again")
            self._failing = False
        return changed


@atexit.register
def _flush_all() -> None:
    for clock in list(_clocks):
        try:
            clock.flush()
        except Exception:  # noqa: BLE001 - exiting; nothing to tell
            pass


__all__ = ["PullClock", "INTERVAL"]
