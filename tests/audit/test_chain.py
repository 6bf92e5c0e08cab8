"""The hash chain and its store, in process: the rules an auditor relies on."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy

from moorage.audit import AuditFilter, AuditRecorder, AuditStore
from moorage.audit.chain import (GENESIS, ChainedEntry, canonical, canonical_detail, chain,
                                 entry_from_event, verify)
from moorage.db.metadata import MetadataStore, open_engine, sqlite_url
from moorage.registry.events import Event, EventBus


def _store(folder: Path) -> AuditStore:
    folder.mkdir(parents=True, exist_ok=True)
    engine = open_engine(sqlite_url(folder))
    MetadataStore(engine).create_schema()
    return AuditStore(engine)


def _event(i: int, **extra: object) -> Event:
    fields: dict[str, object] = {"actor": "alice", "address": "10.0.0.1", **extra}
    return Event("push", "team/app", f"sha256:{i:064x}", "application/vnd.oci.image.manifest.v1+json",
                 f"v{i}", 100 + i, **fields)  # type: ignore[arg-type]


def test_canonical_form_is_the_documented_one() -> None:
    """canonical() splices the stored detail in; it must equal the plain json.dumps recipe that
    the module documents, so that a SIEM can verify an export without Moorage."""
    entry = entry_from_event(_event(1, detail={"note": "é \"quoted\"\n", "n": 1.5, "z": [1, None]}))
    documented = json.dumps({"id": 7, "at": entry.at, "actor": entry.actor,
                             "address": entry.address, "action": entry.action,
                             "target": entry.target, "repository": entry.repository,
                             "result": entry.result, "detail": json.loads(entry.detail_json)},
                            sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical(7, entry) == documented
    [linked] = chain(6, "ab" * 32, [entry])
    assert linked.hash == hashlib.sha256(("ab" * 32 + documented).encode()).hexdigest()
    assert entry.target == f"team/app:v1@sha256:{1:064x}"
    assert entry.detail["tag"] == "v1" and entry.detail["size"] == 101


def test_verify_finds_edits_rewrites_and_removals() -> None:
    rows = chain(0, GENESIS, [entry_from_event(_event(i)) for i in range(6)])
    assert verify(rows).ok and verify(rows).checked == 6 and verify(rows).last_id == 6

    edited = list(rows)
    e = edited[2]
    forged = ChainedEntry(e.id, e.entry._replace(actor="mallory"), e.prev_hash, e.hash)
    edited[2] = forged
    found = verify(edited)
    assert (found.ok, found.first_broken_id, found.checked) == (False, 3, 3)
    assert "edited" in found.reason

    # Rewriting the hash as well moves the break to the next entry's link.
    from moorage.audit.chain import link
    edited[2] = ChainedEntry(e.id, forged.entry, e.prev_hash, link(e.prev_hash, e.id, forged.entry))
    found = verify(edited)
    assert found.first_broken_id == 4 and "entry 3 was rewritten" in found.reason

    found = verify(rows[:2] + rows[3:])
    assert found.first_broken_id == 4 and "entries 3..3 are missing" in found.reason
    found = verify(rows[1:])
    assert found.first_broken_id == 2 and "oldest entry" in found.reason


def test_concurrent_writers_keep_one_linear_chain(tmp_path: Path) -> None:
    """Writers with their own engines (as worker processes have) append batches at once; the
    write lock taken before reading the head keeps ids contiguous and every link intact."""
    _store(tmp_path)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        store = AuditStore(open_engine(sqlite_url(tmp_path)))
        try:
            for batch in range(15):
                store.append([entry_from_event(_event(n * 1000 + batch * 10 + i))
                              for i in range(7)])
        except BaseException as exc:  # reported below, with the thread's own traceback
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    store = _store(tmp_path)
    result = store.verify()
    assert result.ok, result
    assert result.checked == 4 * 15 * 7 == result.last_id


def test_recorder_batches_off_the_request_path_and_flushes_on_stop(tmp_path: Path) -> None:
    store = _store(tmp_path)
    recorder = AuditRecorder(store, flush_interval=3600)  # only stop() will flush
    bus = EventBus()
    bus.subscribe(recorder)
    recorder.start()
    started = time.perf_counter()
    for i in range(300):
        bus.publish(_event(i))
    per_event = (time.perf_counter() - started) / 300
    bus.publish(Event("blob.push", "team/app", "sha256:" + "0" * 64, size=3))
    assert store.count() == 0, "nothing may be written on the request path"
    assert per_event < 0.001  # a list append, not a database write
    recorder.stop()
    assert store.count() == 300  # blob events are not audited
    assert store.verify().ok
    rows, cursor = store.page(AuditFilter(action="push", repository="team/app"), limit=1000)
    assert len(rows) == 300 and cursor is None and rows[0].id == 300


def test_recorder_flushes_a_full_batch_at_once(tmp_path: Path) -> None:
    store = _store(tmp_path)
    recorder = AuditRecorder(store, flush_interval=3600, batch_size=50)
    recorder.start()
    try:
        for i in range(50):
            recorder.record(_event(i))
        deadline = time.monotonic() + 60  # a bound on a hang: the flush interval is an hour
        while store.count() < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.count() == 50
    finally:
        recorder.stop()


def _locked_out(tmp_path: Path) -> tuple[AuditStore, sqlite3.Connection]:
    """A store whose connections give up on a lock at once, and another connection holding
    the database's write lock (as a backup or another writer may, past busy_timeout)."""
    _store(tmp_path)
    engine = open_engine(sqlite_url(tmp_path))
    sqlalchemy.event.listen(engine, "connect",
                            lambda conn, _: conn.execute("PRAGMA busy_timeout=0"))
    holder = sqlite3.connect(tmp_path / "moorage.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return AuditStore(engine), holder


def test_a_database_outage_is_retried_and_overflow_is_recorded(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store, holder = _locked_out(tmp_path)
    recorder = AuditRecorder(store, flush_interval=3600, max_buffered=5)
    for i in range(8):
        recorder.record(_event(i))
    assert recorder.flush() == 0
    assert recorder.flush() == 0
    assert (recorder.stats.failures, recorder.stats.dropped) == (2, 3)
    assert (recorder.waiting(), recorder.unreported()) == (5, 3)
    assert "database is locked" in recorder.stats.last_error
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1, "one line per kind of failure, not one per attempt"

    holder.rollback()
    # The report of the failed attempts, the 5 kept in order, then the record of the 3 lost.
    assert recorder.flush() == 7
    rows = list(store.scan())
    assert rows[0].entry.action == "audit.write_failed"
    assert rows[0].entry.detail["attempts"] == 2
    assert "database is locked" in rows[0].entry.detail["error"]
    assert [r.entry.detail["tag"] for r in rows[1:6]] == ["v0", "v1", "v2", "v3", "v4"]
    assert rows[6].entry.action == "audit.dropped" and rows[6].entry.detail["dropped"] == 3
    assert "database is locked" in rows[6].entry.detail["error"]
    assert recorder.waiting() == recorder.unreported() == 0
    found = store.verify()
    assert found.ok and (found.losses.dropped, found.losses.write_failures) == (3, 1)
    assert not found.losses.complete and found.losses.last_report["id"] == 7
    assert [r.levelname for r in caplog.records] == ["ERROR", "WARNING"]


def test_stop_retries_a_write_the_database_refuses_until_it_takes_it(tmp_path: Path) -> None:
    store, holder = _locked_out(tmp_path)
    recorder = AuditRecorder(store, flush_interval=0.01)
    for i in range(3):
        recorder.record(_event(i))
    stopping = threading.Thread(target=recorder.stop)
    stopping.start()
    while not recorder.stats.failures:  # stop() has tried and failed at least once
        time.sleep(0.01)
    holder.rollback()
    stopping.join()
    assert [r.entry.action for r in store.scan()] == ["audit.write_failed"] + ["push"] * 3


def test_stop_says_how_many_entries_it_could_not_write(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store, holder = _locked_out(tmp_path)
    recorder = AuditRecorder(store, flush_interval=3600, max_buffered=2)
    for i in range(3):
        recorder.record(_event(i))
    recorder.stop(timeout=0)  # one attempt, no retry
    holder.rollback()
    assert recorder.waiting() == 2 and recorder.unreported() == 1
    [last] = [r for r in caplog.records if "before this process stopped" in r.getMessage()]
    assert last.getMessage().startswith("2 audit entries could not be written before this "
                                        "process stopped, and 1 events dropped earlier")
    recorder.stop()  # the exit handler would try again; this time the database takes them
    assert [r.entry.action for r in store.scan()] == ["audit.write_failed", "push", "push",
                                                      "audit.dropped"]


def _refuse_inserts(store: AuditStore, when: str) -> None:
    """A trigger: the database itself refuses some rows (as PostgreSQL refuses a NUL)."""
    with store.engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TRIGGER refuse BEFORE INSERT ON audit_log WHEN {when} "
                             f"BEGIN SELECT RAISE(ABORT, 'refused by the database'); END")


def test_an_entry_the_database_refuses_is_replaced_and_the_rest_are_written(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = _store(tmp_path)
    _refuse_inserts(store, "NEW.actor = 'mallory'")
    recorder = AuditRecorder(store, flush_interval=3600)
    for i in range(10):
        recorder.record(_event(i, actor="mallory", at=1000.0 + i) if i in (3, 7) else _event(i))
    assert recorder.flush() == 10  # 8 as they were, 2 stand-ins
    rows = list(store.scan())
    assert [r.entry.action for r in rows] == ["push"] * 3 + ["audit.unwritable"] + \
        ["push"] * 3 + ["audit.unwritable"] + ["push"] * 2
    stand_in = rows[3].entry
    assert (stand_in.result, stand_in.target) == ("failure", f"team/app:v3@sha256:{3:064x}")
    assert stand_in.detail["actor"] == "mallory" and stand_in.detail["action"] == "push"
    assert "refused by the database" in stand_in.detail["error"]
    assert stand_in.at == 1003.0, "a stand-in keeps the time of the entry it stands for"

    recorder.record(_event(10))  # the writer goes on
    assert recorder.flush() == 1
    assert recorder.stats.unwritable == 2 and recorder.waiting() == 0
    found = store.verify()
    assert found.ok and found.checked == 11 and found.losses.unwritable == 2
    assert store.status().losses.unwritable == 2 and store.status().last_id == 11
    assert len([r for r in caplog.records if r.levelname == "ERROR"]) == 1


def test_a_database_that_refuses_everything_is_unavailable_not_a_reason_to_drop(
        tmp_path: Path) -> None:
    """An entry counts as unwritable only if its stand-in can be written in its place."""
    store = _store(tmp_path)
    _refuse_inserts(store, "1")
    recorder = AuditRecorder(store, flush_interval=3600)
    for i in range(4):
        recorder.record(_event(i))
    assert recorder.flush() == 0
    assert recorder.waiting() == 4 and recorder.stats.unwritable == 0
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER refuse")
    assert recorder.flush() == 5
    assert [r.entry.action for r in store.scan()] == ["audit.write_failed"] + ["push"] * 4


@pytest.mark.parametrize("action", ["namespace.*", "namespace.create"])
def test_action_filter_by_prefix_or_exactly(tmp_path: Path, action: str) -> None:
    store = _store(tmp_path)
    store.append([entry_from_event(Event(a, target="x")) for a in
                  ("namespace.create", "namespace.delete", "namespaces_x.create", "push")])
    rows, _ = store.page(AuditFilter(action=action))
    expected = {"namespace.create", "namespace.delete"} if action.endswith("*") \
        else {"namespace.create"}
    assert {r.entry.action for r in rows} == expected


@pytest.mark.parametrize("fields", [
    {}, {"digest": "sha256:" + "a" * 64}, {"tag": "é \"q\"\n", "size": 0},
    {"digest": "sha256:" + "b" * 64, "media_type": "application/x", "size": 12, "tag": "v1"},
])
def test_artifact_detail_is_the_canonical_json_of_its_fields(fields: dict[str, object]) -> None:
    """Pushes and pulls take a hand-written path to their detail; it must equal the rule."""
    event = Event("pull", "team/app", **fields)  # type: ignore[arg-type]
    assert entry_from_event(event).detail_json == canonical_detail(fields)


def test_the_log_goes_on_past_two_to_the_31_entries_on_postgresql() -> None:
    """An instance that audits every pull passes 2^31 entries within a month at 1,000 pulls a
    second: ids are 64-bit on PostgreSQL too (SQLite's INTEGER always was)."""
    from moorage.db.migrate import upgrade
    from tests.support.backends import shared

    engine = open_engine(shared().database().url())
    try:
        upgrade(engine)
        store = AuditStore(engine)
        [first] = chain(2**31 - 2, GENESIS, [entry_from_event(_event(0))])
        with engine.begin() as conn:  # a log that has come this far
            conn.exec_driver_sql(
                "INSERT INTO audit_log (id, at, actor, address, action, target, repository, "
                "result, detail, prev_hash, hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, "
                "%s, %s)", (first.id, *first.entry, first.prev_hash, first.hash))
        written = store.append([entry_from_event(_event(i)) for i in range(1, 4)])
        assert [c.id for c in written] == [2**31, 2**31 + 1, 2**31 + 2]
        rows, _ = store.page(AuditFilter(), limit=10, before_id=2**31 + 2)
        assert [r.id for r in rows] == [2**31 + 1, 2**31, 2**31 - 1]
        assert [r.id for r in store.scan(after_id=2**31)] == [2**31 + 1, 2**31 + 2]
        assert verify([first, *written]).ok
    finally:
        engine.dispose()
