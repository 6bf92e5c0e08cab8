"""Hostile and broken dumps: malformed records are skipped with their reason while the import
goes on; zip bombs, too many entries, traversal names, YAML alias bombs and huge records are
refused within the limits."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from moorage.scan.advisories.importer import run_import
from moorage.scan.advisories.reader import Limits, SourceError
from moorage.scan.advisories.store import AdvisoryStore

GOOD = {"id": "TEST-1", "modified": "2024-01-01T00:00:00Z",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "demo"},
                      "ranges": [{"type": "ECOSYSTEM",
                                  "events": [{"introduced": "0"}, {"fixed": "1.0"}]}]}]}


def _reasons(summary: object) -> dict[str, str]:
    return {s["entry"]: s["reason"] for s in summary.skipped}  # type: ignore[attr-defined]


def test_malformed_records_are_skipped_with_reasons_and_the_rest_imported(
        store: AdvisoryStore, tmp_path: Path) -> None:
    dump = tmp_path / "dump"
    dump.mkdir()
    (dump / "good.json").write_text(json.dumps(GOOD))
    (dump / "truncated.json").write_text('{"id": "TEST-2", "affected": [')
    (dump / "tabs.yaml").write_text("id: TEST-3\naffected:\n\t- bad indentation\n")
    (dump / "list.json").write_text("[1, 2, 3]")
    (dump / "noid.json").write_text(json.dumps({"affected": []}))
    (dump / "twoevents.json").write_text(json.dumps({**GOOD, "id": "TEST-4", "affected": [
        {"package": {"ecosystem": "PyPI", "name": "demo"},
         "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0", "fixed": "1"}]}]}]}))
    (dump / "deep.json").write_text("[" * 5000 + "]" * 5000)
    (dump / "bomb.yaml").write_text(
        'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
        'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n'
        'id: TEST-5\n')
    (dump / "README.md").write_text("not a record")
    summary = run_import(dump, store)
    assert summary.added == 1 and store.get("TEST-1") is not None
    reasons = _reasons(summary)
    assert set(reasons) == {"truncated.json", "tabs.yaml", "list.json", "noid.json",
                            "twoevents.json", "deep.json", "bomb.yaml"}
    assert "malformed JSON" in reasons["truncated.json"]
    assert "malformed YAML" in reasons["tabs.yaml"]
    assert "not a JSON/YAML object" in reasons["list.json"]
    assert "id" in reasons["noid.json"]
    assert "exactly one" in reasons["twoevents.json"]
    assert "aliases" in reasons["bomb.yaml"]


def test_a_record_over_the_size_limit_is_skipped(store: AdvisoryStore, tmp_path: Path) -> None:
    dump = tmp_path / "dump"
    dump.mkdir()
    (dump / "good.json").write_text(json.dumps(GOOD))
    (dump / "huge.json").write_text(json.dumps({**GOOD, "id": "TEST-2",
                                                "details": "x" * 200_000}))
    summary = run_import(dump, store, limits=Limits(max_record_bytes=100_000))
    assert summary.added == 1
    assert "larger than" in _reasons(summary)["huge.json"]


def test_a_zip_bomb_stops_at_the_total_size_limit(store: AdvisoryStore, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    padding = " " * 900_000  # compresses ~1000:1
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        for n in range(40):
            zf.writestr(f"r{n}.json", json.dumps({**GOOD, "id": f"TEST-{n}"}) + padding)
    assert bomb.stat().st_size < 200_000
    with pytest.raises(SourceError, match="zip bomb"):
        run_import(bomb, store, limits=Limits(max_total_bytes=10_000_000))
    assert store.status()["last_import"] is None  # stopped: not recorded as an import


def test_a_member_that_expands_past_the_record_limit_is_skipped(store: AdvisoryStore,
                                                               tmp_path: Path) -> None:
    bomb = tmp_path / "one.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.json", json.dumps(GOOD) + " " * 50_000_000)
        zf.writestr("good.json", json.dumps({**GOOD, "id": "TEST-9"}))
    summary = run_import(bomb, store)
    assert summary.added == 1 and "larger than" in _reasons(summary)["big.json"]


def test_too_many_entries_are_refused(store: AdvisoryStore, tmp_path: Path) -> None:
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as zf:
        for n in range(50):
            zf.writestr(f"r{n}.json", "{}")
    with pytest.raises(SourceError, match="entries"):
        run_import(many, store, limits=Limits(max_members=20))


def test_traversal_names_in_a_zip_are_refused_and_nothing_is_written_outside(
        store: AdvisoryStore, tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../escape.json", json.dumps({**GOOD, "id": "TEST-E1"}))
        zf.writestr("/abs/path.json", json.dumps({**GOOD, "id": "TEST-E2"}))
        zf.writestr("ok/good.json", json.dumps(GOOD))
    summary = run_import(archive, store)
    assert summary.added == 1 and store.get("TEST-E1") is None
    assert all(reason == "unsafe path in the archive" for reason in _reasons(summary).values())
    assert len(summary.skipped) == 2
    assert not (tmp_path.parent / "escape.json").exists()


def test_a_source_that_is_neither_folder_nor_zip_is_refused(store: AdvisoryStore,
                                                           tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(SourceError, match="neither a folder nor a zip"):
        run_import(tmp_path / "x.json", store)
    with pytest.raises(SourceError, match="does not exist"):
        run_import(tmp_path / "missing.zip", store)
