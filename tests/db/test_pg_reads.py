"""The pull path's lookups on PostgreSQL (db/rawreads.py): one autocommit statement each.

What replicas rely on: a lookup sees every commit that ended before it (a push through
another replica is pulled at once), leaves no transaction open on the server, and the first
lookup after the database restarted answers instead of failing on a dropped connection.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from moorage.db.metadata import open_engine
from moorage.db.rawreads import RawReader
from tests.support.postgres import PostgresCluster


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresCluster]:
    """A cluster of this module's own: one test restarts it."""
    cluster = PostgresCluster(max_connections=50).start()
    yield cluster
    cluster.stop()


def _database(cluster: PostgresCluster) -> str:
    url = cluster.create_database(f"reads_{uuid.uuid4().hex[:8]}")
    with open_engine(url).begin() as conn:
        conn.execute(text("CREATE TABLE t (n integer)"))
    return url


def test_a_lookup_sees_what_another_connection_just_committed(postgres: PostgresCluster) -> None:
    url = _database(postgres)
    writer, reader = open_engine(url), RawReader.of(open_engine(url))
    assert reader.rows("SELECT count(*) FROM t", ()) == [(0,)]
    for n in range(1, 4):
        with writer.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
        assert reader.rows("SELECT count(*) FROM t", ()) == [(n,)]
        assert reader.cached_value("SELECT max(n) FROM t WHERE n <= ?", (n,)) == n
    with writer.connect() as conn:  # the reader's connections are idle, not in a transaction
        states = conn.execute(text(
            "SELECT state FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()")).scalars().all()
    assert states and all(state == "idle" for state in states), states


def test_the_first_lookup_after_a_database_restart_answers(postgres: PostgresCluster) -> None:
    url = _database(postgres)
    reader = RawReader.of(open_engine(url))
    assert reader.rows("SELECT count(*) FROM t", ()) == [(0,)]
    postgres.pause()  # the server goes away and drops the pooled connection
    try:
        with pytest.raises(Exception):  # down: an error, not a hang or a stale answer
            reader.rows("SELECT count(*) FROM t", ())
    finally:
        postgres.resume()
    assert reader.rows("SELECT count(*) FROM t", ()) == [(0,)]
