"""The audit_log table: append a batch to the chain, query it, stream it, verify it.

Several processes (granian workers, `moorage worker`, replicas) append to one chain. It stays
linear because each batch is written by one transaction that first takes the database's write
lock, then reads the newest entry and chains the batch onto it: no other writer can slip an
entry in between the read and the insert.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Integer, func, select, text, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql import Select

from moorage.audit.chain import (GENESIS, SELF_REPORTS, ChainChecker, ChainedEntry, Entry,
                                 Losses, Verification, chain)
from moorage.db.changes import unobserved
from moorage.db.schema import audit_log

MAX_PAGE = 1000
_SCAN_CHUNK = 2000


@dataclass(frozen=True, slots=True)
class AuditStatus:
    """The newest entry, and what the log's reports on itself add up to (unverified: they
    are read straight from the table; `verify` checks the chain they are in)."""

    last_id: int | None
    last_at: float | None
    losses: Losses

    def as_dict(self) -> dict[str, Any]:
        return {"last_id": self.last_id, "last_at": self.last_at, **self.losses.as_dict()}


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What to select; None means any. `action` ending in `*` matches by prefix."""

    actor: str | None = None
    action: str | None = None
    repository: str | None = None
    result: str | None = None
    since: float | None = None
    until: float | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        c = audit_log.c
        if self.actor is not None:
            query = query.where(c.actor == self.actor)
        if self.action is not None:
            if self.action.endswith("*"):
                query = query.where(c.action.startswith(self.action[:-1], autoescape=True))
            else:
                query = query.where(c.action == self.action)
        if self.repository is not None:
            query = query.where(c.repository == self.repository)
        if self.result is not None:
            query = query.where(c.result == self.result)
        if self.since is not None:
            query = query.where(c.at >= self.since)
        if self.until is not None:
            query = query.where(c.at < self.until)
        return query


_COLUMNS = (audit_log.c.id, audit_log.c.at, audit_log.c.actor, audit_log.c.address,
            audit_log.c.action, audit_log.c.target, audit_log.c.repository, audit_log.c.result,
            audit_log.c.detail, audit_log.c.prev_hash, audit_log.c.hash)


def _chained(row: Row[Any]) -> ChainedEntry:
    entry = Entry(at=row[1], actor=row[2], address=row[3], action=row[4], target=row[5],
                  repository=row[6], result=row[7], detail_json=row[8])
    return ChainedEntry(row[0], entry, row[9], row[10])


# The columns in the order of (id, *Entry, prev_hash, hash): the rows are built that way.
_INSERT_COLUMNS = ("id", *("detail" if f == "detail_json" else f for f in Entry._fields),
                   "prev_hash", "hash")
# Rows per INSERT statement: a batch goes in as statements of 500 rows while that many are
# left, then of 100, then of 20, the rest by executemany. On SQLite a row costs ~1.3 µs less
# in a statement of 500 than by executemany (one statement step for many rows instead of one
# per row), ~0.6 µs less in one of 100; a loaded worker's flush holds a few hundred to a few
# thousand entries. Each size is one statement text, compiled once per connection (the
# driver's statement cache). 500 rows of 11 values stay below PostgreSQL's 65,535 parameters
# and SQLite's limit since 3.32 (32,766); an older SQLite (999) gets sizes that fit.
_ROWS_PER_INSERT = (500, 100, 20)


def _insert_sql(conn: Connection, rows: int = 1) -> str:
    """The INSERT of `rows` rows in the driver's own placeholder style (qmark for SQLite, %s
    for psycopg)."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    values = f"({', '.join([mark] * len(_INSERT_COLUMNS))})"
    return (f"INSERT INTO audit_log ({', '.join(_INSERT_COLUMNS)}) "
            f"VALUES {', '.join([values] * rows)}")


def _most_values(conn: Connection) -> int:
    """How many values one statement may carry: SQLite's own limit (only its connection has
    getlimit), PostgreSQL's protocol limit otherwise."""
    limit = getattr(conn.connection.driver_connection, "getlimit", None)
    return 65535 if limit is None else limit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


def _insert(conn: Connection, chained: list[ChainedEntry]) -> None:
    """Straight to the driver: every pull is audited, and SQLAlchemy's per-row parameter
    handling cost more than the rest of the write. An Entry is a tuple in the table's column
    order, between id and the hashes."""
    width = len(_INSERT_COLUMNS)
    done = 0
    if len(chained) >= _ROWS_PER_INSERT[-1]:
        most = _most_values(conn) // width
        for size in _ROWS_PER_INSERT:
            if size > most or len(chained) - done < size:
                continue
            whole = done + (len(chained) - done) // size * size
            values: list[Any] = []
            for c in chained[done:whole]:
                values.append(c.id)
                values.extend(c.entry)
                values.append(c.prev_hash)
                values.append(c.hash)
            sql, step = _insert_sql(conn, size), size * width
            for start in range(0, len(values), step):
                conn.exec_driver_sql(sql, tuple(values[start:start + step]))
            done = whole
    if done < len(chained):
        conn.exec_driver_sql(_insert_sql(conn), [(c.id, *c.entry, c.prev_hash, c.hash)
                                                 for c in chained[done:]])


class AuditStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- writing --------------------------------------------------------------------------
    def _take_write_lock(self, conn: Connection) -> None:
        """Hold the write lock before reading the chain's head.

        SQLite: pysqlite only opens the transaction at the first write, so a SELECT first
        would read outside any lock (and a later upgrade could fail). A write that changes
        nothing opens the transaction and takes the lock, waiting up to busy_timeout.
        PostgreSQL: an EXCLUSIVE table lock blocks other writers of this table, not readers.
        """
        if conn.dialect.name == "postgresql":
            conn.execute(text("LOCK TABLE audit_log IN EXCLUSIVE MODE"))
        else:
            conn.execute(update(audit_log).where(audit_log.c.id == -1)
                         .values(id=audit_log.c.id))

    def append(self, entries: Sequence[Entry]) -> list[ChainedEntry]:
        """Chain `entries` onto the log, in order, in one transaction."""
        if not entries:
            return []
        with unobserved(), self.engine.begin() as conn:  # audit_log: no cached reads
            self._take_write_lock(conn)
            head = conn.execute(select(audit_log.c.id, audit_log.c.hash)
                                .order_by(audit_log.c.id.desc()).limit(1)).first()
            prev_id, prev_hash = (head[0], head[1]) if head else (0, GENESIS)
            chained = chain(prev_id, prev_hash, entries)
            _insert(conn, chained)
        return chained

    # -- reading --------------------------------------------------------------------------
    def page(self, where: AuditFilter, limit: int = 100,
             before_id: int | None = None) -> tuple[list[ChainedEntry], int | None]:
        """Newest first; the cursor for the next (older) page, or None when there is none."""
        limit = max(1, min(limit, MAX_PAGE))
        query = where.apply(select(*_COLUMNS))
        if before_id is not None:
            query = query.where(audit_log.c.id < before_id)
        query = query.order_by(audit_log.c.id.desc()).limit(limit + 1)
        with self.engine.connect() as conn:
            rows = [_chained(r) for r in conn.execute(query)]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (rows[-1].id if more and rows else None)

    def scan(self, where: AuditFilter | None = None, after_id: int = 0,
             limit: int | None = None) -> Iterator[ChainedEntry]:
        """Oldest first, in chunks by id, so that a long export or verification never holds
        one read transaction (and its WAL snapshot) open for its whole duration."""
        where = where or AuditFilter()
        left = limit
        while left is None or left > 0:
            size = _SCAN_CHUNK if left is None else min(left, _SCAN_CHUNK)
            query = where.apply(select(*_COLUMNS)).where(audit_log.c.id > after_id) \
                .order_by(audit_log.c.id).limit(size)
            with self.engine.connect() as conn:
                rows = [_chained(r) for r in conn.execute(query)]
            if not rows:
                return
            yield from rows
            after_id = rows[-1].id
            if left is not None:
                left -= len(rows)
            if len(rows) < size:
                return

    def verify(self) -> Verification:
        checker = ChainChecker()
        for row in self.scan():
            if not checker.feed(row):
                break
        return checker.result()

    def status(self) -> AuditStatus:
        """Cheap on a log of any size: the newest entry by the primary key, the reports by
        the action index (there are none unless writes have failed)."""
        with self.engine.connect() as conn:
            newest = conn.execute(select(audit_log.c.id, audit_log.c.at)
                                  .order_by(audit_log.c.id.desc()).limit(1)).first()
            reports = conn.execute(select(*_COLUMNS).where(audit_log.c.action.in_(SELF_REPORTS))
                                   .order_by(audit_log.c.id))
            losses = Losses()
            for row in reports:
                losses.count(_chained(row))
        return AuditStatus(newest[0] if newest else None, newest[1] if newest else None, losses)

    def activity(self, since: float, actions: Sequence[str]) -> dict[tuple[int, str], int]:
        """Successful entries of these actions per UTC day (days since the epoch) from
        `since` on: what the console's activity chart draws."""
        day = func.cast(audit_log.c.at / 86400, Integer)
        query = (select(day, audit_log.c.action, func.count())
                 .where(audit_log.c.at >= since, audit_log.c.action.in_(list(actions)),
                        audit_log.c.result == "success")
                 .group_by(day, audit_log.c.action))
        with self.engine.connect() as conn:
            return {(int(d), a): int(n) for d, a, n in conn.execute(query)}

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(audit_log)).scalar() or 0)
