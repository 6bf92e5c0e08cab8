"""The quota is held by the insert itself: on PostgreSQL a create waits for a concurrent
one's transaction (the table lock) and then counts its row, so the last place cannot be
taken twice. Driven step by step on a real PostgreSQL: a first transaction takes the last
place and holds it uncommitted while the second create runs."""

from __future__ import annotations

import threading

import pytest
from moorage.db.metadata import open_engine
from moorage.replication.subscriptions.store import QuotaReached, SubscriptionStore


def row(name: str) -> dict[str, object]:
    return {"name": name, "url": "https://registry.example", "upstream": "library/app",
            "repository": f"mirror/{name}", "filter_kind": "glob", "filter": "*", "cron": "",
            "insecure": False, "enabled": True, "updated_by": "test"}


def test_a_concurrent_create_cannot_take_the_last_place_twice() -> None:
    from tests.support.backends import shared
    engine = open_engine(shared().database(migrated=True).url())
    store = SubscriptionStore(engine)
    for n in range(4):
        store.add(row(f"s{n}"), limit=5)
    outcome: list[object] = []
    with engine.connect() as first:
        transaction = first.begin()
        # a create stopped before its commit: it has taken the last place
        store.insert(first, row("fifth"), limit=5)

        def second() -> None:
            try:
                outcome.append(store.add(row("sixth"), limit=5))
            except QuotaReached as full:
                outcome.append(full)
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(timeout=3)
        assert thread.is_alive(), "the second create did not wait for the first"
        transaction.commit()
    thread.join(timeout=120)
    assert len(outcome) == 1 and isinstance(outcome[0], QuotaReached), outcome
    assert outcome[0].in_use == 5 and store.count() == 5
    engine.dispose()


def test_sqlite_counts_in_the_insert(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from moorage.db.metadata import sqlite_url
    from moorage.db.migrate import ensure_schema
    engine = open_engine(sqlite_url(tmp_path))
    ensure_schema(engine)
    store = SubscriptionStore(engine)
    for n in range(2):
        store.add(row(f"s{n}"), limit=2)
    with pytest.raises(QuotaReached):
        store.add(row("third"), limit=2)
    assert store.add(row("unlimited"), limit=None).name == "unlimited"
