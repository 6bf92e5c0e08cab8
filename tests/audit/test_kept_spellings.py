"""The writer's shortcuts (moorage.audit.chain): entries made from kept templates, and chains
spelled from kept parts, are exactly what the full path and the documented recipe give, for
any event, repeated or not, so that the shortcuts can never change what is hashed."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from moorage.audit import chain as audit_chain
from moorage.audit.chain import GENESIS, chain, entry_from_event, entry_in_full, verify
from moorage.registry.events import Event, acting_as, set_caller

ANY_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, categories=None,
                                 exclude_categories=()), max_size=30)
MAYBE_TEXT = st.none() | ANY_TEXT | st.sampled_from(["", "latest", "public/app", "a" * 2000])
SIZES = (st.none() | st.integers() | st.booleans() | st.floats()
         | st.integers(min_value=-(10**30), max_value=10**30))


class Shouting(str):
    """A str subclass that spells itself differently from its value."""

    def __str__(self) -> str:
        return self.upper()


def _documented(entry_id: int, prev_hash: str, entry: Any) -> str:
    text = json.dumps({"id": entry_id, "at": entry.at, "actor": entry.actor,
                       "address": entry.address, "action": entry.action,
                       "target": entry.target, "repository": entry.repository,
                       "result": entry.result, "detail": json.loads(entry.detail_json)},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + text).encode()).hexdigest()


@settings(max_examples=300)
@given(action=st.just("pull") | ANY_TEXT, repository=MAYBE_TEXT, digest=MAYBE_TEXT,
       media_type=MAYBE_TEXT, tag=MAYBE_TEXT, size=SIZES,
       result=st.just("success") | ANY_TEXT, target=st.just("") | ANY_TEXT, actor=ANY_TEXT,
       address=ANY_TEXT, request_id=ANY_TEXT | st.integers(),
       at=st.floats() | st.integers() | st.none())
def test_a_kept_template_gives_the_full_entry(action: str, repository: str | None,
                                             digest: str | None, media_type: str | None,
                                             tag: str | None, size: Any, result: str,
                                             target: str, actor: str, address: str,
                                             request_id: Any, at: Any) -> None:
    """The same event three times (made, then kept, then reused) and with another request
    id and time: every entry equals the full path's, and chains to the documented hashes."""
    event = Event(action, repository, digest, media_type, tag, size, result, target, actor,
                  address, {}, at, request_id)
    again = event._replace(request_id="other-id", at=12.5)
    entries = []
    for e in (event, event, event, again, again._replace(request_id="")):
        made = entry_from_event(e, clock=lambda: 3.0)
        assert made == entry_in_full(e, clock=lambda: 3.0)
        entries.append(made)
    rows = chain(41, "ab" * 32, entries)
    prev = "ab" * 32
    for row in rows:
        assert row.hash == _documented(row.id, prev, row.entry)
        prev = row.hash
    assert verify(chain(0, GENESIS, entries)).ok


def test_equal_but_not_identical_values_never_share_a_template() -> None:
    """True == 1 and a str subclass equals its value, but their entries differ: a template
    kept for one must not be used for the other."""
    set_caller("alice", "10.0.0.1")
    plain = Event("pull", "team/app", "sha256:" + "1" * 64, "application/json", "v1", 1)
    flag = Event("pull", "team/app", "sha256:" + "1" * 64, "application/json", "v1", True)
    shouting = Event("pull", "team/app", "sha256:" + "1" * 64, "application/json",
                     Shouting("v1"), 1)
    for e in (plain, flag, shouting, plain, flag, shouting):
        assert entry_from_event(e) == entry_in_full(e)
    assert entry_from_event(flag).detail["size"] is True
    assert entry_from_event(plain).detail["size"] == 1
    assert entry_from_event(shouting).detail["tag"] == "V1"


def test_events_with_detail_take_the_full_path() -> None:
    with acting_as("retention", rule="keep-5"):
        event = Event("delete", "team/app", tag="v1")
    assert entry_from_event(event) == entry_in_full(event)
    assert entry_from_event(event).detail == {"rule": "keep-5", "tag": "v1"}


def test_many_artifacts_stay_bounded_and_right() -> None:
    """More templates and spellings than are kept: the tables are emptied, never grown past
    their bound, and every entry is still the full path's and chains as documented."""
    templates = audit_chain._templates
    spellings = audit_chain._spellings
    entries = []
    for i in range(templates.MAX * 2 + 7):
        event = Event("pull", f"team/app{i % 1500}", f"sha256:{i:064x}", "application/json",
                      "latest", i, actor=f"user{i % 3}", address="10.0.0.2",
                      request_id=f"r{i}")
        entry = entry_from_event(event)
        assert entry == entry_in_full(event)
        entries.append(entry)
        assert 0 < len(templates) <= templates.MAX  # kept, and bounded
    rows = chain(0, GENESIS, entries)
    assert len(spellings.heads) <= spellings.MAX and len(spellings.tails) <= spellings.MAX
    prev = GENESIS
    for row in rows:
        assert row.hash == _documented(row.id, prev, row.entry)
        prev = row.hash
    assert verify(rows).ok


def test_a_changed_entry_is_found_whatever_was_kept() -> None:
    """Kept spellings are of values, not of entries: an entry edited to another caller or
    target after its chain was made fails verification at that entry."""
    set_caller("alice", "10.0.0.1")
    entries = [entry_from_event(Event("pull", "team/app", "sha256:" + "2" * 64,
                                      "application/json", "v1", 5)) for _ in range(5)]
    rows = chain(0, GENESIS, entries)
    chain(0, GENESIS, [entries[0]._replace(actor="mallory", target="team/other:v1")])
    for field, value in (("actor", "mallory"), ("target", "team/other:v1"),
                         ("repository", None), ("address", "10.0.0.9")):
        forged = list(rows)
        forged[2] = forged[2]._replace(entry=forged[2].entry._replace(**{field: value}))
        found = verify(forged)
        assert (found.ok, found.first_broken_id) == (False, 3), field


BATCH_SIZES = [1, 19, 20, 21, 99, 100, 101, 120, 499, 500, 501, 623, 1234]


def _batches_written_whole(engine: Any) -> None:
    """Batches of every size around the INSERT sizes (500, 100, 20 rows and executemany
    for the rest): each entry once, in order, chained, and read back as it was made."""
    from moorage.audit import AuditStore
    from moorage.db.migrate import upgrade

    upgrade(engine)
    store = AuditStore(engine)
    made = []
    for size in BATCH_SIZES:
        batch = [entry_from_event(Event("pull", "team/app", f"sha256:{len(made) + i:064x}",
                                        "application/json", "v1", i, actor="alice",
                                        address="10.0.0.3", request_id=f"r{len(made) + i}"))
                 for i in range(size)]
        written = store.append(batch)
        assert [c.entry for c in written] == batch
        made.extend(batch)
    rows = list(store.scan())
    assert [r.id for r in rows] == list(range(1, len(made) + 1))
    assert [r.entry for r in rows] == made
    assert store.verify().ok and store.verify().checked == len(made)


def test_batches_of_any_size_are_written_whole_on_sqlite(tmp_path: Any) -> None:
    from moorage.db.metadata import open_engine, sqlite_url

    engine = open_engine(sqlite_url(tmp_path))
    try:
        _batches_written_whole(engine)
    finally:
        engine.dispose()


def test_batches_of_any_size_are_written_whole_on_postgresql() -> None:
    from moorage.db.metadata import open_engine
    from tests.support.backends import shared

    engine = open_engine(shared().database().url())
    try:
        _batches_written_whole(engine)
    finally:
        engine.dispose()
