"""Rescans are complete: an advisory update that drops a package, a withdrawal, and a full
import that removes a record no longer in the dump each rescan the images that held the
finding, whose stored report then loses it, without reading a layer (the layers are gone
from the store and the per-layer cache before the imports)."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.scan.integrate.conftest import debian_record, osv_records
from tests.scan.service.helpers import (api, base_layer, import_advisories, layout, moorage,
                                        push, wait_report)
from tests.support.server import MoorageServer

pytestmark = [pytest.mark.clients, pytest.mark.slow]


def _ids(report: dict[str, Any]) -> set[str]:
    return {f["id"] for f in report["findings"]}


def test_updated_withdrawn_and_removed_records_leave_the_stored_report(
        server: MoorageServer, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    bash, grep, tar = (f"MOORAGE-{what}-{tag}" for what in ("BASH", "GREP", "TAR"))
    first = [debian_record(bash, "bash", "5.2.15-3", []),
             debian_record(grep, "grep", "3.8-6", []),
             debian_record(tar, "tar", "1.34+dfsg-1.2+deb12u9", [])]
    assert import_advisories(server, osv_records(tmp_path / "v1", first))["added"] == 3
    repo = f"re{tag}/app"
    with api(server) as client:
        assert client.post("/namespaces", json={"name": f"re{tag}"}).status_code == 201
        push(server, layout(tmp_path / "img", [base_layer()]), f"{repo}:1")
        before = wait_report(client, repo, "1")
        assert {bash, grep, tar} <= _ids(before)
        layers = client.get(f"/repositories/{repo}/manifests/1").json()["layers"]
    # a rescan that read a layer would now fail: the layers and their cached results are gone
    for layer in layers:
        hexdigest = layer["digest"].split(":", 1)[1]
        (server.data_dir / "blobs" / "sha256" / hexdigest[:2] / hexdigest).unlink()
    with sqlite3.connect(server.data_dir / "moorage.db", timeout=60) as db:
        db.execute("DELETE FROM scan_layer_cache")

    def after(folder: str, records: list[dict[str, Any]], gone: str,
              partial: bool = True) -> dict[str, Any]:
        path = osv_records(tmp_path / folder, records)
        if partial:
            imported = import_advisories(server, path)
        else:
            done = moorage("advisories", "import", "--json", "--data-dir",
                           str(server.data_dir), str(path))
            assert done.returncode == 0, done.stderr
            imported = json.loads(done.stdout)
        assert imported["rescans_queued"] >= 1, imported
        with api(server) as client:
            report = wait_report(client, repo, "1", until=lambda r: gone not in _ids(r))
        assert report["images"][0]["problems"] == []  # no layer was read
        return report

    # 1. bash's record now names another package only: bash's images are rescanned
    moved = debian_record(bash, "not-installed-here", "1.0", [])
    moved["modified"] = "2026-12-08T00:00:00Z"
    report = after("v2", [moved], bash)
    assert {grep, tar} <= _ids(report)
    # 2. grep's record is withdrawn
    report = after("v3", [debian_record(grep, "grep", "3.8-6", [],
                                        withdrawn="2026-12-09T00:00:00Z")], grep)
    assert tar in _ids(report)
    # 3. a full import of Debian:12 without tar's record removes it as stale
    report = after("v4", [moved], tar, partial=False)
    assert not {bash, grep, tar} & _ids(report)
