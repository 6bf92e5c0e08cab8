"""A shared "something was committed" signal for one SQLite database and every process on it.

Answers on the pull path (tag → digest, repository visibility, blob links) may be cached in a
worker only while nothing has changed the database since they were read. Every commit through
an engine of this database (any granian worker, `moorage worker`, the CLI) writes a fresh
random value into an 8-byte shared memory map next to the database file *after* the commit,
before the writer acknowledges anything. A reader files each answer under the value it read
*before* its query and serves it only while the signal still holds that value: a commit that
ended after the read has replaced the value, so an answer that may predate it is never served
again. Random values (rather than a counter) cannot repeat, so two writers racing never bring
back a value a reader has cached answers under.

Reading the signal is a memory read: no system call, no lock, and no release of the GIL.

On PostgreSQL replicas may run on other machines, so the signal is a one-row table
(`commit_signal`, migration 0028; `SharedTableSignal`). Every write transaction that is not
`unobserved()` replaces its value just before its COMMIT, on its own connection: the new value
becomes visible exactly when the transaction's changes do, and before the writer acknowledges
anything. The row is locked last, by the statement just before COMMIT, so no transaction
waits for it while holding anything another one needs (no deadlock cycle). A reader reads
the value once per request (`per_request`, one autocommit round trip, at the request's first
cached lookup) and files and checks every answer of that request under it: an answer kept
under a value is never served to a request that began after a commit that replaced it.
"""

from __future__ import annotations

import mmap
import os
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

_SIZE = 8
_signals: "weakref.WeakKeyDictionary[Engine, ChangeSignal | SharedTableSignal]" = \
    weakref.WeakKeyDictionary()
_unobserved: ContextVar[bool] = ContextVar("moorage_unobserved_commits", default=False)


@contextmanager
def unobserved() -> Iterator[None]:
    """Commits inside this block change nothing a cached pull-path answer depends on.

    For bookkeeping that is written all the time under load (audit entries, job claims):
    if each of their commits bumped the signal, every worker would lose its cache several
    times a second. Only for writes to tables that no cached lookup reads.
    """
    token = _unobserved.set(True)
    try:
        yield
    finally:
        _unobserved.reset(token)


class ChangeSignal:
    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < _SIZE:
                os.ftruncate(fd, _SIZE)
            self._map = mmap.mmap(fd, _SIZE)  # MAP_SHARED: forked workers share it too
        finally:
            os.close(fd)

    def current(self) -> bytes | None:
        return self._map[:_SIZE]

    def bump(self) -> None:
        self._map[:_SIZE] = os.urandom(_SIZE)


def signal_commits(engine: Engine, signal: ChangeSignal) -> None:
    """Bump `signal` after every commit on `engine` (also a failed one: it may have landed)."""
    dialect = engine.dialect
    commit = dialect.do_commit

    def do_commit(dbapi_connection: Any) -> None:
        try:
            commit(dbapi_connection)
        finally:
            if not _unobserved.get():
                signal.bump()

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    _signals[engine] = signal


class _Held:
    """The signal's value as this request read it (None: not read yet); `open` is False once
    the request has ended, so a task it left behind reads uncached from then on."""

    __slots__ = ("value", "open")

    def __init__(self) -> None:
        self.value: bytes | None = None
        self.open = True


_request: ContextVar[_Held | None] = ContextVar("moorage_request_signal", default=None)
_READ = "SELECT value FROM commit_signal WHERE id = 1"
_EXISTS = "SELECT to_regclass('commit_signal') IS NOT NULL"
# Only a transaction that has written anything has a transaction id: one that ran a non-SELECT
# statement that changed nothing (an UPDATE matching no row, a SAVEPOINT) leaves the value be.
_MARK = ("UPDATE commit_signal SET value = %s "
         "WHERE id = 1 AND pg_current_xact_id_if_assigned() IS NOT NULL")


class SharedTableSignal:
    """The commit signal of a PostgreSQL database, shared by every replica on it."""

    def __init__(self, engine: Engine,
                 read: Callable[[Engine, str], list[tuple[Any, ...]]],
                 read_async: Callable[[Engine, str], Awaitable[tuple[Any, ...] | None]]
                 ) -> None:
        """`read(engine, sql)`: one autocommit statement (db/rawreads.py's reader pool);
        `read_async`: the same off the event loop, for `per_request`."""
        self._engine = weakref.ref(engine)  # the engine maps to this signal: no cycle
        self._read_rows = read
        self._read_async = read_async
        self._table = False  # the table is known to exist (checked on each mark until it is)

    def current(self) -> bytes | None:
        """The value this request read (read now if it has not yet); None outside a request
        or without the table: then nothing may be kept or served."""
        held = _request.get()
        if held is None or not held.open:
            return None
        value = held.value
        if value is None:
            value = held.value = self._read()
        return value or None

    def _read(self) -> bytes:
        engine = self._engine()
        if engine is None:
            return b""
        try:
            rows = self._read_rows(engine, _READ)
        except engine.dialect.loaded_dbapi.ProgrammingError:
            return b""  # not migrated yet (no table): nothing is cached
        return bytes(rows[0][0]) if rows else b""

    async def read_ahead(self) -> None:
        """Read this request's value now without holding the event loop; on any error leave
        it unread, for the first lookup to read (and report) as it would have."""
        held = _request.get()
        engine = self._engine()
        if held is None or held.value is not None or engine is None:
            return
        try:
            row = await self._read_async(engine, _READ)
        except Exception:  # noqa: BLE001 - the synchronous read reports it, if it recurs
            return
        if held.value is None:
            held.value = bytes(row[0]) if row else b""

    def mark(self, dbapi_connection: Any) -> bool:
        """Replace the value inside the connection's open transaction; True if it was."""
        cursor = dbapi_connection.cursor()
        try:
            if not self._table:  # a database being migrated has no table before 0028
                cursor.execute(_EXISTS)
                if not cursor.fetchone()[0]:
                    return False
                self._table = True
            cursor.execute(_MARK, (os.urandom(_SIZE),))
            return True
        finally:
            cursor.close()


def _driver_connection(connection: Any) -> Any:
    """The driver's connection under SQLAlchemy's pool proxy (or the connection itself)."""
    return getattr(connection, "dbapi_connection", None) or connection


def signal_shared_commits(engine: Engine, signal: SharedTableSignal) -> None:
    """Have every observed write transaction on `engine` replace `signal`'s value just before
    it commits.

    A transaction has written if any statement but a SELECT ran on its connection
    (`before_cursor_execute` sees every statement SQLAlchemy runs: Core, ORM and
    `exec_driver_sql`); the UPDATE itself is a no-op unless PostgreSQL gave the transaction an
    id, which only a write does. Moorage runs no statement on the main engine's driver
    connections behind SQLAlchemy's back (the raw reads of db/rawreads.py are SELECTs on a
    pool of their own).
    """
    wrote: "weakref.WeakSet[Any]" = weakref.WeakSet()

    def note(_conn: Any, cursor: Any, statement: str, *_rest: Any) -> None:
        if statement[:6].upper() != "SELECT":
            wrote.add(cursor.connection)

    event.listen(engine, "before_cursor_execute", note)
    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_connection: Any) -> None:
        raw = _driver_connection(dbapi_connection)
        marked = False
        if raw in wrote:
            wrote.discard(raw)
            if not _unobserved.get():
                marked = signal.mark(raw)  # an error here: no COMMIT, the caller rolls back
        try:
            commit(dbapi_connection)
        finally:
            held = _request.get()
            if marked and held is not None:
                # this request changed the database: what it reads next is read again
                held.value = None

    def do_rollback(dbapi_connection: Any) -> None:
        wrote.discard(_driver_connection(dbapi_connection))
        rollback(dbapi_connection)

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]
    _signals[engine] = signal


class per_request:  # noqa: N801 - an ASGI wrapper, used like a function
    """ASGI: give each HTTP request its own reading of a shared signal, taken at its first
    cached lookup and dropped when it ends."""

    def __init__(self, app: Any, signal: SharedTableSignal,
                 ahead: tuple[str, ...] = ("/v2/",)) -> None:
        """`ahead`: path prefixes whose requests nearly all make a cached lookup (the
        registry API): their value is read at once, off the event loop."""
        self.app = app
        self.signal = signal
        self.ahead = ahead

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        with reading():
            if scope["path"].startswith(self.ahead):
                await self.signal.read_ahead()
            await self.app(scope, receive, send)


@contextmanager
def reading() -> Iterator[None]:
    """One reading of a shared signal for the block (what `per_request` gives a request):
    for work outside a request that may use the cached lookups."""
    held = _Held()
    token = _request.set(held)
    try:
        yield
    finally:
        held.open = False
        _request.reset(token)


def signal_of(engine: Engine) -> "ChangeSignal | SharedTableSignal | None":
    return _signals.get(engine)


__all__ = ["ChangeSignal", "SharedTableSignal", "per_request", "reading", "signal_commits",
           "signal_of", "signal_shared_commits", "unobserved"]
