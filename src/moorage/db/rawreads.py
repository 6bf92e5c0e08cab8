"""Single-row lookups on the pull path, run on the database driver itself.

SQLAlchemy Core builds a statement, derives its cache key and sets up a result on every call:
about 100 µs, more than all the rest of a manifest GET. The few lookups every pull makes are
therefore written out once in plain SQL (qmark style) and run straight on the driver: on
SQLite through one connection per thread, whose statement cache keeps them prepared; on
PostgreSQL through a small pool of autocommit connections of its own (see `_pg_reads`). Writes and
everything else stay with SQLAlchemy.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from typing import Any

from sqlalchemy import Engine, create_engine

from moorage.db.changes import signal_of


_ASYNC_CONNECTIONS = 4  # asyncio connections per process (each request holds one briefly)


class RawReader:
    _shared: "weakref.WeakKeyDictionary[Engine, RawReader]" = weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, engine: Engine) -> "RawReader":
        """The engine's reader, shared by every store on it (one connection per thread)."""
        reader = cls._shared.get(engine)
        if reader is None:
            reader = cls._shared[engine] = cls(engine)
        return reader

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        # An in-memory database exists only inside SQLAlchemy's connection; use that one.
        self._sqlite_path = database if database not in (None, "", ":memory:") else None
        self._postgres = engine.dialect.name == "postgresql"
        self._pg_sql: dict[str, str] = {}
        self._pg_engine: tuple[int, Engine] | None = None
        self._local = threading.local()
        self._async_pid = 0
        self._async_pools: "weakref.WeakKeyDictionary[Any, tuple[Any, list[Any]]]" = \
            weakref.WeakKeyDictionary()
        # Answers kept until the next commit anywhere on this database (see db/changes.py):
        # on SQLite the shared memory map, on PostgreSQL the commit_signal row as read once
        # by the request.
        self._signal = signal_of(engine)
        self._seen = b""
        self._cache: dict[tuple[str, tuple[Any, ...], bool], tuple[bytes, Any]] = {}
        self._cached_rows = 0
        self.cache_limit = 200_000  # rows (a page of tags counts each tag): ~20 MiB at most

    def rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if self._sqlite_path is not None:
            # fetchall steps the statement to its end, which resets it: no read transaction
            # stays open between requests to hold back WAL checkpoints or hide new commits.
            return self._sqlite().execute(sql, params).fetchall()
        if self._postgres:
            return self._postgres_rows(sql, params)
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(sql, params)]

    def cached_rows(self, sql: str, params: tuple[Any, ...],
                    first_column: bool = False) -> list[Any]:
        """rows(), remembered until the next commit on the database by any process.

        `first_column`: a list of the first column's values instead (listings), flattened
        once when read rather than on every answer.
        """
        signal = self._signal
        before = signal.current() if signal is not None else None
        if before is None:  # no signal, or none to read here (PostgreSQL outside a request)
            found = self.rows(sql, params)
            return [row[0] for row in found] if first_column else found
        if before != self._seen:  # drop what is stale; entries carry their version anyway
            self._cache.clear()
            self._cached_rows = 0
            self._seen = before
        key = (sql, params, first_column)
        entry = self._cache.get(key)
        if entry is not None and entry[0] == before:
            return entry[1]  # type: ignore[no-any-return]
        found = self.rows(sql, params)
        if first_column:
            found = [row[0] for row in found]
        # Kept under the value seen *before* the query: a commit that ended meanwhile has
        # replaced that value, so this answer, which may predate it, is never served again.
        if len(found) <= self.cache_limit // 20:  # a huge listing is not worth its memory
            self._cached_rows += len(found) + 1
            if self._cached_rows > self.cache_limit:
                self._cache.clear()
                self._cached_rows = len(found) + 1
            self._cache[key] = (before, found)
        return found

    def cached_value(self, sql: str, params: tuple[Any, ...]) -> Any:
        """The first column of the first row, or None."""
        found = self.cached_rows(sql, params)
        return found[0][0] if found else None

    def _sqlite(self) -> sqlite3.Connection:
        local = self._local
        pid = os.getpid()
        if getattr(local, "pid", None) != pid:  # never use a connection across a fork
            conn = sqlite3.connect(self._sqlite_path, isolation_level=None,  # type: ignore[arg-type]
                                   cached_statements=64, check_same_thread=True)
            conn.execute("PRAGMA query_only=ON")
            conn.execute("PRAGMA busy_timeout=10000")
            local.conn, local.pid = conn, pid
        return local.conn  # type: ignore[no-any-return]

    def _postgres_rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        converted = self._pg_sql.get(sql)
        if converted is None:
            converted = self._pg_sql[sql] = sql.replace("?", "%s")
        engine = self._pg_reads()
        for attempt in (1, 2):
            raw = engine.raw_connection()
            try:
                cursor = raw.cursor()
                try:
                    cursor.execute(converted, params)
                    return [tuple(r) for r in cursor.fetchall()]
                finally:
                    cursor.close()
            except engine.dialect.loaded_dbapi.OperationalError:
                # a pooled connection the server dropped (it restarted): there is no
                # pre-ping, so a read finds out here; one retry on a fresh connection
                raw.invalidate()
                if attempt == 2:
                    raise
            finally:
                raw.close()
        raise AssertionError("unreachable")

    async def postgres_row_async(self, sql: str) -> tuple[Any, ...] | None:
        """The first row of one parameterless statement, on an asyncio autocommit connection
        of this process and event loop: the loop serves other requests while PostgreSQL
        answers (the synchronous reads above hold it for the round trip). At most
        `_ASYNC_CONNECTIONS` per process, kept open (a request waits for one rather than
        opening a new one: a PostgreSQL connection is a new server process). A connection
        the server dropped is replaced once, as in `_postgres_rows`."""
        import asyncio

        import psycopg

        pid, loop = os.getpid(), asyncio.get_running_loop()
        if self._async_pid != pid:  # never use a connection across a fork
            self._async_pid, self._async_pools = pid, weakref.WeakKeyDictionary()
        pool = self._async_pools.get(loop)  # nor across event loops
        if pool is None:
            pool = self._async_pools[loop] = (asyncio.Semaphore(_ASYNC_CONNECTIONS), [])
        slots, idle = pool
        async with slots:
            for attempt in (1, 2):
                conn = idle.pop() if idle else await psycopg.AsyncConnection.connect(
                    self._conninfo(), autocommit=True)
                try:
                    cursor = await conn.execute(sql, prepare=True)
                    row = await cursor.fetchone()
                except psycopg.OperationalError:
                    await conn.close()
                    if attempt == 2:
                        raise
                    continue
                except BaseException:  # cancelled mid-statement: its state is unknown
                    await conn.close()
                    raise
                idle.append(conn)
                return row
        raise AssertionError("unreachable")

    def _conninfo(self) -> str:
        return self.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False)

    def _pg_reads(self) -> Engine:
        """A small pool of autocommit connections for these reads alone.

        Through the main engine one lookup cost four round trips to the server: the pool's
        pre-ping, the BEGIN the driver sends before the first statement, the query and the
        COMMIT that ends it. In autocommit the query is the only one, and each statement
        still sees every transaction committed before it began (what the single SELECT saw
        inside its own transaction before). A connection the server dropped is retried
        once instead of pinged on every checkout. One pool per process: forked workers
        never share a connection.
        """
        pid = os.getpid()
        found = self._pg_engine
        if found is None or found[0] != pid:
            engine = create_engine(self.engine.url, isolation_level="AUTOCOMMIT",
                                   pool_size=2, max_overflow=8, pool_pre_ping=False,
                                   pool_reset_on_return=None)
            found = self._pg_engine = (pid, engine)
        return found[1]


__all__ = ["RawReader"]
