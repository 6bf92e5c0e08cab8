"""A tag's last pull: recorded at most once per interval, decided by the database that every
worker shares; a pull itself only ever looks at a small table in memory."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import select

from moorage.db.metadata import MetadataStore, NewManifest, open_engine, sqlite_url
from moorage.db.schema import tags
from moorage.oci import mediatypes as mt
from moorage.registry.pulls import PullClock


def store_with_tag(tmp_path: Path) -> MetadataStore:
    db = MetadataStore(open_engine(sqlite_url(tmp_path)))
    db.create_schema()
    content = b'{"schemaVersion":2,"manifests":[]}'
    db.put_manifest("team/app", NewManifest(
        digest="sha256:" + "a" * 64, media_type=mt.OCI_INDEX, content=content, subject=None,
        artifact_type=None, annotations=None, blob_digests=(), child_digests=()), ["v1"])
    return db


def pulled_at(db: MetadataStore) -> float | None:
    with db.engine.connect() as conn:
        return conn.execute(select(tags.c.pulled_at).where(tags.c.name == "v1")).scalar()


def test_the_database_moves_pulled_at_once_per_interval(tmp_path: Path) -> None:
    db = store_with_tag(tmp_path)
    assert pulled_at(db) is None
    now = time.time()
    assert db.record_pulls([("team/app", "v1", now)], 60) == 1
    assert pulled_at(db) == now
    # Another worker, a few seconds later, with nothing in its memory: the database says no.
    assert db.record_pulls([("team/app", "v1", now + 5)], 60) == 0
    assert pulled_at(db) == now
    assert db.record_pulls([("team/app", "v1", now + 61)], 60) == 1
    assert pulled_at(db) == now + 61
    # Unknown tags and repositories are nothing to record.
    assert db.record_pulls([("team/app", "nope", now), ("team/other", "v1", now)], 60) == 0


def test_two_clocks_on_one_database_write_once(tmp_path: Path) -> None:
    db = store_with_tag(tmp_path)
    first, second = PullClock(db), PullClock(db)
    first.pulled("team/app", "v1")
    second.pulled("team/app", "v1")
    written = first.flush() + second.flush()  # the threads may have written already
    deadline = time.monotonic() + 30
    while pulled_at(db) is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the background threads' write, bounded
    assert pulled_at(db) is not None
    assert written <= 1


def test_a_pull_noted_lately_costs_no_database_work(tmp_path: Path) -> None:
    db = store_with_tag(tmp_path)
    clock = PullClock(db)
    calls: list[int] = []
    original = db.record_pulls

    def counting(pulls, interval):  # type: ignore[no-untyped-def]
        pulls = list(pulls)
        calls.append(len(pulls))
        return original(pulls, interval)

    db.record_pulls = counting  # type: ignore[method-assign]
    now = time.time()
    clock.pulled("team/app", "v1", now)
    clock.flush()
    for i in range(100):
        clock.pulled("team/app", "v1", now + i * 0.1)
    clock.flush()
    assert sum(calls) <= 1  # the first pull only (its thread, or the flush above)
    clock.pulled("team/app", "v1", now + 61)
    clock.flush()
    deadline = time.monotonic() + 30
    while pulled_at(db) != now + 61 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pulled_at(db) == now + 61
