"""The audit recorder: subscribes to the event bus and writes entries off the request path.

A request only appends its event to an in-process buffer (well under a microsecond of work
when measured). A background thread turns the buffer into entries and chains them onto the
log every FLUSH_INTERVAL seconds, or as soon as BATCH_SIZE events are waiting, in one
transaction per flush. One transaction for many entries is what makes auditing every pull
affordable: with synchronous=FULL, a commit costs a disk flush, and per-request commits
would cost more than the pull itself.

The price, stated plainly: a push or a pull acknowledged to a client may have its audit entry
written up to a few hundred milliseconds later (FLUSH_INTERVAL plus the write itself). The
buffer is flushed when the process stops (lifespan shutdown, or interpreter exit), so only a
crash (SIGKILL, power loss) in that window loses entries. If the database refuses writes for
long enough that MAX_BUFFERED events pile up, new events are dropped and counted, and the
next successful flush records an `audit.dropped` entry saying how many: a hole is never
silent.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass

from moorage.audit.chain import Entry, canonical_detail, entry_from_event
from moorage.audit.store import AuditStore
from moorage.registry.events import Event

log = logging.getLogger("moorage.audit")

FLUSH_INTERVAL = 0.2
BATCH_SIZE = 2000
MAX_BUFFERED = 100_000

# Blob events are noise for an audit trail: the manifest push that follows says what was
# pushed and by whom, and a pull of a 40-layer image would otherwise be 41 entries.
SKIPPED_ACTIONS = frozenset({"blob.push", "blob.mount", "blob.delete"})

_recorders: weakref.WeakSet[AuditRecorder] = weakref.WeakSet()


@dataclass
class RecorderStats:
    recorded: int = 0
    written: int = 0
    dropped: int = 0
    flushes: int = 0
    failures: int = 0


class AuditRecorder:
    def __init__(self, store: AuditStore, flush_interval: float = FLUSH_INTERVAL,
                 batch_size: int = BATCH_SIZE, max_buffered: int = MAX_BUFFERED) -> None:
        self.store = store
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.max_buffered = max_buffered
        self.stats = RecorderStats()
        self._buffer: list[Event] = []
        self._lock = threading.Lock()          # guards _buffer and _dropped
        self._flush_lock = threading.Lock()    # one flush at a time keeps this process's order
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._dropped = 0
        _recorders.add(self)

    # -- the bus handler (request path) ---------------------------------------------------
    def __call__(self, event: Event) -> None:
        self.record(event)

    def record(self, event: Event) -> None:
        """Queue an event; never blocks on the database."""
        if event.action in SKIPPED_ACTIONS:
            return
        with self._lock:
            if len(self._buffer) >= self.max_buffered:
                self._dropped += 1
                return
            self._buffer.append(event)
            waiting = len(self._buffer)
            self.stats.recorded += 1
        if self._thread is None:
            if self._closed:  # an event after shutdown: nobody will flush it later
                self.flush()
                return
            self.start()  # outside `serve` (e.g. `moorage worker`), the first event starts it
        if waiting >= self.batch_size:
            self._wake.set()

    # -- the flusher ----------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="audit-flusher",
                                            daemon=True)
            self._thread.start()
        atexit.register(self.stop)

    def stop(self, timeout: float = 10.0) -> None:
        """Flush what is buffered and stop the thread (lifespan shutdown, or exit)."""
        self._closed = True
        thread = self._thread
        if thread is not None:
            self._stopping.set()
            self._wake.set()
            thread.join(timeout)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            self.flush()

    def flush(self) -> int:
        """Write everything buffered so far; returns how many entries were written. On a
        database error the events stay buffered, in order, for the next attempt."""
        with self._flush_lock:
            with self._lock:
                events, self._buffer = self._buffer, []
                dropped, self._dropped = self._dropped, 0
            if not events and not dropped:
                return 0
            try:
                entries = [entry_from_event(e) for e in events]
                if dropped:
                    entries.append(Entry(time.time(), "", "", "audit.dropped", "", None,
                                         "failure", canonical_detail({"dropped": dropped})))
                self.store.append(entries)
            except Exception:
                self.stats.failures += 1
                log.exception("could not write %d audit entries; will retry", len(events))
                with self._lock:
                    self._buffer[:0] = events
                    self._dropped += dropped
                    overflow = len(self._buffer) - self.max_buffered
                    if overflow > 0:  # keep the oldest: they are the ones already waiting
                        del self._buffer[self.max_buffered:]
                        self._dropped += overflow
                return 0
            self.stats.flushes += 1
            self.stats.written += len(entries)
            return len(entries)

    def _after_fork(self) -> None:
        """A forked child must neither write its parent's buffer a second time nor believe
        the parent's flusher thread runs for it."""
        self._buffer = []
        self._dropped = 0
        self._thread = None
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()


def _reset_after_fork() -> None:
    for recorder in list(_recorders):
        recorder._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
