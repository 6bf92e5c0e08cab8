"""The commit signal of a PostgreSQL database (db/changes.py SharedTableSignal).

What every replica relies on: an observed write transaction replaces the value exactly when it
commits (not before, and not if it rolls back), bookkeeping written `unobserved()` and
transactions that only read leave it be, and a lookup cached under one reading is served again
only while a new reading finds the same value.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from moorage.db.changes import SharedTableSignal, reading, signal_of, unobserved
from moorage.db.metadata import open_engine
from moorage.db.rawreads import RawReader
from tests.support.backends import shared


@pytest.fixture
def engine() -> Iterator[Engine]:
    """A migrated database of the test's own on the shared cluster."""
    url = shared().database(migrated=True).url()
    engine = open_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (name text)"))
    yield engine
    engine.dispose()


def _value(engine: Engine) -> bytes:
    """The row as another connection sees it now (not through the signal's own read)."""
    with open_engine(str(engine.url.render_as_string(hide_password=False))).connect() as conn:
        return bytes(conn.execute(text("SELECT value FROM commit_signal")).scalar_one())


def test_a_write_changes_the_value_when_it_commits_and_not_before(engine: Engine) -> None:
    assert isinstance(signal_of(engine), SharedTableSignal)
    before = _value(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES ('n1')"))
        conn.execute(text("SELECT 1"))  # the last statement a read: the write still counts
        assert _value(engine) == before  # not visible before the COMMIT
    after = _value(engine)
    assert after != before
    with engine.begin() as conn:  # a second write: another value again
        conn.execute(text("UPDATE t SET name = 'n2' WHERE name = 'n1'"))
    assert _value(engine) not in (before, after)


def test_reads_rollbacks_and_unobserved_writes_leave_the_value_be(engine: Engine) -> None:
    before = _value(engine)
    with engine.begin() as conn:
        conn.execute(text("SELECT count(*) FROM t")).scalar()
    with engine.connect() as conn:
        conn.execute(text("INSERT INTO t VALUES ('gone')"))
        conn.rollback()
    with engine.begin() as conn:  # a non-SELECT that writes nothing: no transaction id
        conn.execute(text("UPDATE t SET name = 'x' WHERE name = 'nobody'"))
    with unobserved(), engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES ('bookkeeping')"))
    assert _value(engine) == before
    assert RawReader.of(engine).rows("SELECT count(*) FROM t", ()) == [(1,)]


def test_a_cached_lookup_is_kept_for_one_reading_and_read_again_after_a_commit(
        engine: Engine) -> None:
    reader = RawReader.of(engine)
    other = open_engine(str(engine.url.render_as_string(hide_password=False)))  # the CLI
    query = "SELECT count(*) FROM t WHERE name LIKE ?"
    with reading():
        assert reader.cached_value(query, ("c%",)) == 0
    with unobserved(), other.begin() as conn:  # unobserved: the cache keeps its 0
        conn.execute(text("INSERT INTO t VALUES ('c1')"))
    with reading():
        assert reader.cached_value(query, ("c%",)) == 0  # kept: the value did not change
    with other.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES ('c2')"))
    with reading():
        assert reader.cached_value(query, ("c%",)) == 2  # a new value: read again
        with engine.begin() as conn:  # this request's own write: it reads again after it
            conn.execute(text("INSERT INTO t VALUES ('c3')"))
        assert reader.cached_value(query, ("c%",)) == 3
    # outside a request nothing is kept: every lookup reads
    with unobserved(), other.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES ('c4')"))
    assert reader.cached_value(query, ("c%",)) == 4
    other.dispose()


def test_a_request_reads_the_value_ahead_off_the_event_loop(engine: Engine) -> None:
    """per_request reads a registry request's value before its handler runs, on an asyncio
    connection (the loop is free meanwhile), and the request's lookups use that reading."""
    signal = signal_of(engine)
    assert isinstance(signal, SharedTableSignal)
    other = open_engine(str(engine.url.render_as_string(hide_password=False)))  # a replica

    def insert() -> None:
        with other.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES ('ahead')"))

    async def request(commit_during: bool) -> tuple[bytes | None, bytes | None]:
        with reading():
            await signal.read_ahead()
            first = signal.current()
            if commit_during:  # another replica commits: this request keeps its reading
                elsewhere = threading.Thread(target=insert)  # a thread: not this request's
                elsewhere.start()
                elsewhere.join()
            return first, signal.current()

    before = _value(engine)
    first, again = asyncio.run(request(commit_during=True))
    assert first == again == before != _value(engine)
    first, again = asyncio.run(request(commit_during=False))  # the next request: new value
    assert first == again == _value(engine)
    row = asyncio.run(RawReader.of(engine).postgres_row_async(
        "SELECT value FROM commit_signal"))
    assert row is not None and bytes(row[0]) == _value(engine)
    other.dispose()
