"""The audit recorder: subscribes to the event bus and writes entries off the request path.

A request only appends its event to an in-process buffer (well under a microsecond of work
when measured). A background thread turns the buffer into entries and chains them onto the
log every FLUSH_INTERVAL seconds, or as soon as BATCH_SIZE events are waiting, in one
transaction per flush. One transaction for many entries is what makes auditing every pull
affordable: with synchronous=FULL, a commit costs a disk flush, and per-request commits
would cost more than the pull itself. Turning events into entries (the safe form of
moorage.audit.chain, which never fails on what an event carries) happens in that thread too.

The price, stated plainly: a push or a pull acknowledged to a client may have its audit entry
written up to a few hundred milliseconds later (FLUSH_INTERVAL plus the write itself). The
buffer is flushed when the process stops (lifespan shutdown, or interpreter exit; writes that
fail then are retried for up to STOP_TIMEOUT seconds), so only a crash (SIGKILL, power loss)
in that window loses entries.

When a write fails, the writer never stalls on it:
- The database is unavailable (SQLAlchemy's OperationalError or InterfaceError: locked,
  unreachable, disk full): entries wait, in order, and the flush is retried with a backoff of
  up to MAX_BACKOFF seconds. If MAX_BUFFERED events pile up meanwhile, new ones are dropped
  and counted. The flush that succeeds first writes an `audit.write_failed` entry (how many
  attempts failed, since when, the last error), then what waited, then an `audit.dropped`
  entry saying how many were lost: a hole or a delay is never silent.
- Anything else (the database refused the data): the batch is split until the entries that
  fail alone are found; each is replaced by an `audit.unwritable` entry that says whose and
  which entry it was and why, and the rest are written. An entry counts as unwritable only
  if its replacement can be written in its place; otherwise the database is unavailable.
Each kind of failure is logged once (and once more when writes resume), not once per retry;
RecorderStats counts everything, for this process; what an administrator reads across
workers and replicas is in the chain itself (`GET /api/v1/audit/status`).
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from moorage.audit.chain import (DROPPED, WRITE_FAILED, Entry, describe_error,
                                 entry_from_event, report, unwritable)
from moorage.audit.store import AuditStore
from moorage.registry.events import Event

log = logging.getLogger("moorage.audit")

FLUSH_INTERVAL = 0.2
BATCH_SIZE = 2000
MAX_BUFFERED = 100_000
MAX_BACKOFF = 5.0
STOP_TIMEOUT = 10.0

# Blob events are noise for an audit trail: the manifest push that follows says what was
# pushed and by whom, and a pull of a 40-layer image would otherwise be 41 entries. Only
# their successes are skipped: a refused blob upload or delete is recorded.
SKIPPED_ACTIONS = frozenset({"blob.push", "blob.mount", "blob.delete"})

# Errors that say the database, not the data, is the problem: retry the same entries later.
_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout)

_recorders: weakref.WeakSet[AuditRecorder] = weakref.WeakSet()


@dataclass
class RecorderStats:
    """This process's counters (a later Prometheus exporter reads `as_dict`)."""

    recorded: int = 0     # events taken into the buffer
    written: int = 0      # entries written, the log's reports on itself included
    dropped: int = 0      # events lost because the buffer was full
    unwritable: int = 0   # entries replaced by an audit.unwritable entry
    failures: int = 0     # failed write attempts
    flushes: int = 0      # successful flushes
    waiting: int = 0      # entries not yet written (buffered or retried)
    last_error: str = ""
    last_error_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class AuditRecorder:
    def __init__(self, store: AuditStore, flush_interval: float = FLUSH_INTERVAL,
                 batch_size: int = BATCH_SIZE, max_buffered: int = MAX_BUFFERED,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.max_buffered = max_buffered
        self.clock = clock
        self.stats = RecorderStats()
        self._buffer: list[Event] = []
        self._lock = threading.Lock()          # guards _buffer, _dropped, _backlog
        self._flush_lock = threading.Lock()    # one flush at a time keeps this process's order
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._dropped = 0                      # events refused by record(), not yet reported
        self._backlog = 0                      # len(_pending), readable under _lock
        # Owned by the flush (under _flush_lock):
        self._pending: list[Entry] = []        # entries made, not yet written, in order
        self._lost = 0                         # dropped events not yet reported in the chain
        self._lost_error = ""
        self._failed_attempts = 0              # consecutive failed writes (unavailable)
        self._failing_since: float | None = None
        self._logged: set[str] = set()
        _recorders.add(self)

    # -- the bus handler (request path) ---------------------------------------------------
    def record(self, event: Event) -> None:
        """Queue an event; never blocks on the database. The bus calls it as the recorder
        itself (__call__ is this function: one Python call less per pull)."""
        if event.action in SKIPPED_ACTIONS and event.result == "success":
            return
        with self._lock:
            if len(self._buffer) + self._backlog >= self.max_buffered:
                self._dropped += 1
                self.stats.dropped += 1
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

    __call__ = record

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

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Flush what is buffered and stop the thread (lifespan shutdown, or exit). Writes
        that fail are retried until `timeout`; what is still unwritten then is logged."""
        self._closed = True
        deadline = time.monotonic() + timeout
        thread = self._thread
        if thread is not None:
            self._stopping.set()
            self._wake.set()
            thread.join(timeout)
            self._thread = None
        while True:
            try:
                self.flush()
            except Exception:  # a bug in the flush must not fail the shutdown
                log.exception("the final audit flush failed")
                break
            if not self.waiting() and not self.unreported():
                return
            pause = min(self._backoff(), deadline - time.monotonic())
            if pause <= 0:
                break
            time.sleep(pause)
        log.error("%d audit entries could not be written before this process stopped, and "
                  "%d events dropped earlier were not reported in the log: %s",
                  self.waiting(), self.unreported(), self.stats.last_error)

    def waiting(self) -> int:
        """Entries not written yet: buffered, or waiting for the database."""
        with self._lock:
            return len(self._buffer) + self._backlog

    def unreported(self) -> int:
        """Events dropped (the buffer was full) that no audit.dropped entry counts yet."""
        with self._lock:
            return self._dropped + self._lost

    def _backoff(self) -> float:
        if not self._failed_attempts:
            return self.flush_interval
        return min(self.flush_interval * 2 ** min(self._failed_attempts, 16), MAX_BACKOFF)

    def _run(self) -> None:
        while not self._stopping.is_set():
            if self._failed_attempts:  # the database is unavailable: a full buffer must
                self._stopping.wait(self._backoff())  # not make this a busy loop
            else:
                self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # a bug here must not end the thread: it would stop the log
                log.exception("the audit flusher failed; it goes on")

    def flush(self) -> int:
        """Write everything waiting; returns how many entries were written. What the database
        cannot take now waits, in order, for the next flush."""
        with self._flush_lock:
            with self._lock:
                events, self._buffer = self._buffer, []
                self._backlog += len(events)  # still counted against max_buffered
                self._lost += self._dropped
                self._dropped = 0
            self._pending.extend(self._entries(events))
            if not self._pending and not self._lost:
                return 0
            head = [self._write_failed_report()] if self._failed_attempts else []
            tail = [report(DROPPED, {"dropped": self._lost, "error": self._lost_error},
                           self.clock)] if self._lost else []
            batch = head + self._pending + tail
            written, refused = self._isolate(batch)
            if written:
                self._written(written, len(head), bool(tail) and written == len(batch))
            if refused is not None:
                self._unavailable(refused)
            with self._lock:
                self._backlog = len(self._pending)
                self.stats.waiting = len(self._buffer) + self._backlog
            return written

    def _entries(self, events: list[Event]) -> list[Entry]:
        """The entries of `events`, in order: in one pass when, as always but for a bug,
        none fails to be made; else one by one, each failure standing as its own entry."""
        clock = self.clock
        try:
            return [entry_from_event(e, clock) for e in events]
        except Exception:  # noqa: BLE001 - _entry says which, and why
            return [self._entry(e) for e in events]

    def _entry(self, event: Event) -> Entry:
        try:
            return entry_from_event(event, self.clock)
        except Exception as exc:  # the safe form should make this impossible; if not, the
            self._report_once(exc, "could not be made into an entry")  # event still shows
            self.stats.unwritable += 1
            return unwritable(getattr(event, "action", ""), getattr(event, "actor", ""),
                              getattr(event, "address", ""), getattr(event, "target", ""),
                              getattr(event, "at", None), exc, self.clock)

    def _write_failed_report(self) -> Entry:
        return report(WRITE_FAILED, {"attempts": self._failed_attempts,
                                     "since": self._failing_since,
                                     "error": self.stats.last_error}, self.clock)

    def _written(self, written: int, head: int, tail_written: bool) -> None:
        """Bookkeeping after the first `written` entries of head + pending + tail went in."""
        if head:  # the report of the failed attempts is in: that period is over
            log.warning("audit writes resumed after %d failed attempts",
                        self._failed_attempts)
            self._failed_attempts = 0
            self._failing_since = None
            self._logged = {k for k in self._logged if not k.startswith("unavailable:")}
        del self._pending[:max(0, min(written - head, len(self._pending)))]
        if tail_written:
            self._lost, self._lost_error = 0, ""
        self.stats.flushes += 1
        self.stats.written += written

    def _isolate(self, entries: Sequence[Entry]) -> tuple[int, Exception | None]:
        """Write `entries` in order. Returns how many, from the first, were written (an
        unwritable one counts, written as its stand-in), and the error that made the
        database unavailable for the rest, if one did."""
        try:
            self.store.append(entries)
            return len(entries), None
        except _UNAVAILABLE as exc:
            return 0, exc
        except Exception as exc:  # the data: find the entries that cannot be written
            if len(entries) == 1:
                refused = self._replace(entries[0], exc)
                return (0, refused) if refused is not None else (1, None)
            middle = len(entries) // 2
            first, refused = self._isolate(entries[:middle])
            if refused is not None:
                return first, refused
            second, refused = self._isolate(entries[middle:])
            return first + second, refused

    def _replace(self, entry: Entry, error: Exception) -> Exception | None:
        """Write the stand-in of an entry the database refused. If the stand-in is refused
        too, the database refuses anything just now: that error is returned."""
        stand_in = unwritable(entry.action, entry.actor, entry.address, entry.target,
                              entry.at, error, self.clock)
        try:
            self.store.append([stand_in])
        except Exception as exc:  # noqa: BLE001 - whatever it is, it is not this entry's
            return exc
        self.stats.unwritable += 1
        self._report_once(error, "could not be written; an audit.unwritable entry stands "
                                 "for it")
        return None

    def _unavailable(self, error: Exception) -> None:
        if not self._failed_attempts:
            self._failing_since = self.clock()
        self._failed_attempts += 1
        self._count_failure(error)
        self._lost_error = self.stats.last_error
        kind = f"unavailable:{type(getattr(error, 'orig', None) or error).__name__}"
        if kind not in self._logged:
            self._logged.add(kind)
            log.error("could not write %d audit entries, will retry (logged once until "
                      "writes resume): %s", len(self._pending), self.stats.last_error)

    def _report_once(self, error: Exception, what: str) -> None:
        self._count_failure(error)
        kind = f"entry:{type(getattr(error, 'orig', None) or error).__name__}"
        if kind not in self._logged:
            self._logged.add(kind)
            log.error("an audit entry %s (logged once per kind of error): %s", what,
                      self.stats.last_error, exc_info=error)

    def _count_failure(self, error: Exception) -> None:
        self.stats.failures += 1
        self.stats.last_error = describe_error(error)
        self.stats.last_error_at = self.clock()

    def _after_fork(self) -> None:
        """A forked child must neither write its parent's buffer a second time nor believe
        the parent's flusher thread runs for it."""
        self.stats = RecorderStats()
        self._buffer = []
        self._pending = []
        self._dropped = self._lost = self._backlog = self._failed_attempts = 0
        self._failing_since = None
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
