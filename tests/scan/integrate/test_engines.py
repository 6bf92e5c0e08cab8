"""The issue's must-show: a scan on push runs the built-in OSV engine and a Harbor scanner
adapter registered through the CLI, and the report merges their findings: some found by
`osv` alone, some by `harbor:<name>` alone, one found by both and shown once naming both.
An adapter that fails is a problem of the scan; the other engines' findings are stored.

What each engine should find is computed here from the records and the adapter's database
the test writes, against the image's dpkg database read here (Debian's own version order)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.scan.harbor.conftest import AdapterProcess
from tests.scan.integrate.conftest import (cli, debian_record, dpkg_installed, dpkg_older,
                                           osv_records)
from tests.scan.service.helpers import (DPKG_STATUS, api, base_layer, import_advisories,
                                        layout, push, wait_report)
from tests.support.server import MoorageServer

pytestmark = [pytest.mark.clients, pytest.mark.slow]


def _remove_adapters(client: httpx.Client, names: list[str]) -> None:
    for name in names:
        client.delete(f"/scanners/{name}")


def test_osv_and_a_harbor_adapter_found_merged_and_a_failing_adapter_is_a_problem(
        server: MoorageServer, adapters: Callable[..., AdapterProcess],
        tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    number = int(tag, 16) % 90000 + 10000
    installed = dpkg_installed(DPKG_STATUS)
    # OSV records: grep (only OSV knows), tar (both: the adapter names it by the CVE alias)
    osv_only, both = f"MOORAGE-OSV-{tag}", f"MOORAGE-BOTH-{tag}"
    cve_both, cve_harbor = f"CVE-2099-{number}", f"CVE-2098-{number}"
    records = [debian_record(osv_only, "grep", "3.8-6", [], "MEDIUM"),
               debian_record(both, "tar", "1.34+dfsg-1.2+deb12u9", [cve_both], "HIGH")]
    imported = import_advisories(server, osv_records(tmp_path / "osv", records))
    assert imported["added"] == 2
    # the adapter's database: tar (the same CVE) and sed (only the adapter knows)
    adapter_db = [{"package": "tar", "version": installed["tar"], "id": cve_both,
                   "fix_version": "1.34+dfsg-1.2+deb12u9", "severity": "High"},
                  {"package": "sed", "version": installed["sed"], "id": cve_harbor,
                   "fix_version": "", "severity": "Medium"},
                  {"package": "sed", "version": "0.0-not-installed", "id": "CVE-2097-1",
                   "severity": "Low"}]
    adapter = adapters(db=adapter_db, name="tiny")
    broken = adapters(mode="malformed", name="broken")

    # expected, independently: which engine finds what
    expected: dict[tuple[str, str], set[str]] = {}
    name = f"tiny{tag}"
    for record in records:
        pkg = record["affected"][0]["package"]["name"]
        fixed = record["affected"][0]["ranges"][0]["events"][1]["fixed"]
        if pkg in installed and dpkg_older(installed[pkg], fixed):
            expected.setdefault((pkg, record["id"]), set()).add("osv")
    for entry in adapter_db:
        if installed.get(entry["package"]) == entry["version"]:
            key = next((k for k in expected if k[0] == entry["package"] and entry["id"] in
                        {k[1], *next(r["aliases"] for r in records if r["id"] == k[1])}),
                       (entry["package"], entry["id"]))
            expected.setdefault(key, set()).add(f"harbor:{name}")
    assert sorted(map(sorted, expected.values())) == [
        ["harbor:tiny" + tag], ["harbor:tiny" + tag, "osv"], ["osv"]]

    ns = f"eng{tag}"
    repo = f"{ns}/app"
    with api(server) as client:
        added = cli(server, "scanner", "add", name, adapter.url, "--json")
        assert added.returncode == 0, added.stderr
        assert json.loads(added.stdout)["enabled"] is True
        resp = client.post("/scanners", json={"name": f"broken{tag}", "url": broken.url})
        assert resp.status_code == 201, resp.text
        try:
            info = httpx.get(f"{server.url}/api/v1/info", timeout=60).json()
            assert {f"harbor:{name}", f"harbor:broken{tag}", "osv"} <= set(
                info["scanning"]["engines"])
            assert info["scanning"]["harbor_adapters"] >= 2
            shown = cli(server, "info")
            assert shown.returncode == 0, shown.stderr
            [line] = [x for x in shown.stdout.splitlines() if x.startswith("scanning:")]
            assert f"harbor:{name}" in line and "Syft no" in line
            assert client.post("/namespaces", json={"name": ns}).status_code == 201
            push(server, layout(tmp_path / "img", [base_layer()]), f"{repo}:1")
            done = wait_report(client, repo, "1")
        finally:
            _remove_adapters(client, [name, f"broken{tag}"])

    assert done["status"] == "done", done
    mine = {}
    for f in done["findings"]:
        ids = {f["id"], *f["aliases"]}
        for (pkg, ident), engines in expected.items():
            aliases = next((r["aliases"] for r in records if r["id"] == ident), [])
            if f["package"]["name"] == pkg and ids & {ident, *aliases}:
                assert (pkg, ident) not in mine, f"{pkg} {ident} is listed twice"
                mine[(pkg, ident)] = f
    assert {k: set(f["engines"]) for k, f in mine.items()} == expected
    merged = mine[("tar", both)]
    assert merged["id"] == cve_both and merged["aliases"] == [both]  # the CVE id first
    assert merged["package"]["version"] == installed["tar"]
    assert merged["severity"]["level"] == "high"
    # nothing else of the adapter's: the entry for a version not installed found nothing
    assert not [f for f in done["findings"] if f["id"] == "CVE-2097-1"]
    [problem] = [p for p in done["images"][0]["problems"] if f"broken{tag}" in p]
    assert f"engine harbor:broken{tag} failed" in problem
    assert not [p for p in done["images"][0]["problems"] if f"harbor:{name} " in p]
    # the adapter pulled the image with the credential it was given
    pulls = len(adapter.records("pulls.jsonl"))
    assert pulls and all(entry["status"] == 200 for entry in adapter.records("pulls.jsonl"))

    # a rescan after an import (grep's record now critical) runs OSV again and keeps what the
    # adapters found (the adapters are removed by now: nothing is asked of them)
    records[0]["database_specific"] = {"severity": "CRITICAL"}
    records[0]["modified"] = "2026-12-08T00:00:00Z"
    imported = import_advisories(server, osv_records(tmp_path / "osv2", records[:1]))
    assert imported["updated"] == 1 and imported["rescans_queued"] >= 1
    with api(server) as client:
        again = wait_report(client, repo, "1", until=lambda r: any(
            f["id"] == osv_only and f["severity"]["level"] == "critical"
            for f in r["findings"]))
    kept = {(f["package"]["name"], f["id"]): sorted(f["engines"]) for f in again["findings"]
            if f["package"]["name"] in ("grep", "sed", "tar") and f["id"] in
            (osv_only, cve_both, cve_harbor)}
    assert kept == {("grep", osv_only): ["osv"], ("sed", cve_harbor): [f"harbor:{name}"],
                    ("tar", cve_both): sorted([f"harbor:{name}", "osv"])}
    assert [p for p in again["images"][0]["problems"] if f"broken{tag}" in p] == [problem]
    assert len(adapter.records("pulls.jsonl")) == pulls
