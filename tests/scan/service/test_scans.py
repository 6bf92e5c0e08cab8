"""The scan service end to end: images pushed with skopeo are scanned on push by the
server's workers, reports read through the API and the `moorage` command, rescans after an
advisory import read no layer and announce new vulnerabilities to webhooks and the audit
log, a corrupt layer ends as a problem of the report."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.events.receiver import Receiver
from tests.scan.pypi_reference import expected_pypi
from tests.scan.service.helpers import (DPKG_STATUS, ADMIN, api, base_layer, 
                                        import_advisories, layout, moorage, push,
                                        python_layer, report, wait_report)
from tests.support.server import MoorageServer

pytestmark = [pytest.mark.clients, pytest.mark.slow]

VULNERABLE = (("Jinja2", "2.10"), ("urllib3", "1.24.1"))


def _ns() -> str:
    return f"scan{uuid.uuid4().hex[:10]}"


def _ids(finding: dict) -> set[str]:
    return {finding["id"], *finding["aliases"]}


def _namespace(client: httpx.Client, name: str, scan_on_push: bool) -> None:
    assert client.post("/namespaces", json={"name": name}).status_code == 201
    resp = client.put(f"/namespaces/{name}/scan-settings", json={"scan_on_push": scan_on_push})
    assert resp.status_code == 200, resp.text
    assert resp.json()["scan_on_push"] is scan_on_push


def test_scan_on_push_finds_what_the_fixture_records_say(server: MoorageServer,
                                                          tmp_path: Path) -> None:
    repo = f"{_ns()}/app"
    digest = push(server, layout(tmp_path / "img", [base_layer(), python_layer(*VULNERABLE)]),
                  f"{repo}:1.0")
    with api(server) as client:
        found = wait_report(client, repo, "1.0")
        assert found["digest"] == digest and found["status"] == "done"
        [image] = found["images"]
        assert image["problems"] == [] and image["engines"] == ["osv"]
        # the dpkg database's installed packages (stanzas saying so) and the Python ones
        installed = [s for s in DPKG_STATUS.read_text().split("\n\n")
                     if "Status: install ok installed" in s]
        assert image["packages"] == len(installed) + len(VULNERABLE)
        for name, version in VULNERABLE:
            expected = expected_pypi(name, version)
            assert expected, f"the fixture has no advisory of {name} {version}"
            mine = [f for f in found["findings"] if f["package"]["name"] == name]
            # every fixture record that affects the version is in exactly one finding, and
            # every finding is one of them (aliases merged)
            assert all(len([f for f in mine if i in _ids(f)]) == 1 for i in expected), \
                (name, expected, [f["id"] for f in mine])
            assert all(_ids(f) & expected for f in mine)
            for f in mine:
                assert f["package"]["version"] == version
                assert f["package"]["layer"].startswith("sha256:")
                assert f["engines"] == ["osv"]
        # the summary counts the findings by level
        levels = [f["severity"]["level"] for f in found["findings"]]
        assert found["summary"] == {lvl: levels.count(lvl) for lvl in found["summary"]}
        assert sum(found["summary"].values()) == len(found["findings"]) > 0

        # filters
        fixable = report(client, repo, "1.0", fixable="true")["findings"]
        assert fixable == [f for f in found["findings"] if f["fixed_versions"]]
        high = report(client, repo, "1.0", severity="high")["findings"]
        assert high == [f for f in found["findings"]
                        if f["severity"]["level"] in ("critical", "high")]

        # CSV export: one row per finding
        resp = client.get(f"/repositories/{repo}/manifests/1.0/vulnerabilities",
                          params={"format": "csv"})
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(resp.text)))
        assert sorted(r["id"] for r in rows) == sorted(f["id"] for f in found["findings"])

        # the tag listing carries the summary
        [tag] = client.get(f"/repositories/{repo}/tags").json()
        assert tag["vulnerabilities"] == {"status": "done", **found["summary"]}

        # an SBOM is attached as a referrer, and the API builds one from the inventory
        refs = httpx.get(f"{server.url}/v2/{repo}/referrers/{digest}", auth=ADMIN,
                         params={"artifactType": "application/vnd.cyclonedx+json"}).json()
        assert len(refs["manifests"]) == 1
        sbom = client.get(f"/repositories/{repo}/manifests/1.0/sbom",
                          params={"format": "spdx"})
        assert sbom.status_code == 200
        names = {p["name"] for p in sbom.json()["packages"]}
        assert {"Jinja2", "urllib3", "bash"} <= names


def test_scan_on_push_off_queues_nothing_until_asked(server: MoorageServer,
                                                     tmp_path: Path) -> None:
    ns = _ns()
    repo = f"{ns}/quiet"
    with api(server) as client:
        _namespace(client, ns, scan_on_push=False)
        push(server, layout(tmp_path / "img", [base_layer(), python_layer(*VULNERABLE)]),
             f"{repo}:1")
        # the scan would have been queued by the push request itself
        assert report(client, repo, "1")["status"] == "not scanned"
        jobs = client.get("/jobs", params={"type": "scan.image", "limit": 500}).json()
        assert not [j for j in jobs if j["payload"].get("repository") == repo]
        [tag] = client.get(f"/repositories/{repo}/tags").json()
        assert tag["vulnerabilities"] is None
        # on demand
        queued = client.post(f"/repositories/{repo}/scans", json={"reference": "1"})
        assert queued.status_code == 202, queued.text
        assert wait_report(client, repo, "1")["findings"]


def test_cli_scan_wait_vulns_and_sbom(server: MoorageServer, tmp_path: Path) -> None:
    ns = _ns()
    repo = f"{ns}/cli"
    with api(server) as client:
        _namespace(client, ns, scan_on_push=False)
    push(server, layout(tmp_path / "img", [base_layer(), python_layer(*VULNERABLE)]),
         f"{repo}:v1")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    done = moorage("login", server.url, "-u", ADMIN[0], "--password-stdin", env=env,
                   input=ADMIN[1] + "\n")
    assert done.returncode == 0, done.stderr

    scanned = moorage("scan", f"{repo}:v1", "--wait", env=env)
    assert scanned.returncode == 0, scanned.stderr
    assert "done" in scanned.stdout and "critical" in scanned.stdout

    as_json = moorage("vulns", f"{repo}:v1", "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    report_ = json.loads(as_json.stdout)
    assert report_["status"] == "done" and report_["findings"]
    assert {f["package"]["name"] for f in report_["findings"]} == {"Jinja2", "urllib3"}

    as_csv = moorage("vulns", f"{repo}:v1", "--csv", "--fixable", env=env)
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert sorted(r["id"] for r in rows) == sorted(
        f["id"] for f in report_["findings"] if f["fixed_versions"])

    people = moorage("vulns", f"{repo}:v1", env=env)
    assert people.returncode == 0 and report_["findings"][0]["id"] in people.stdout

    out = tmp_path / "sbom.cdx.json"
    sbom = moorage("sbom", f"{repo}:v1", "--format", "cyclonedx", "-o", str(out), env=env)
    assert sbom.returncode == 0, sbom.stderr
    assert json.loads(out.read_text())["bomFormat"] == "CycloneDX"

    tags = moorage("repo", "tags", repo, env=env)
    assert tags.returncode == 0, tags.stderr
    counts = report_["summary"]
    assert f"C:{counts['critical']} H:{counts['high']} M:{counts['medium']}" in tags.stdout

    bad = moorage("vulns", f"{repo}:v1", "--severity", "dreadful", env=env)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_rescan_after_an_import_reads_no_layer_and_announces(server: MoorageServer,
                                                              tmp_path: Path,
                                                              receiver: Receiver) -> None:
    ns = _ns()
    repo = f"{ns}/rescan"
    with api(server) as client:
        _namespace(client, ns, scan_on_push=True)
        hook = client.post("/webhooks", json={"namespace": ns, "url": receiver.url,
                                              "events": ["vulnerability", "scan"]})
        assert hook.status_code == 201, hook.text
        digest = push(server, layout(tmp_path / "img", [base_layer()]), f"{repo}:1")
        first = wait_report(client, repo, "1")
        assert not [f for f in first["findings"] if f["package"]["name"] == "bash"]
        layers = client.get(f"/repositories/{repo}/manifests/1").json()["layers"]

    # the layers are gone from the store and from the per-layer cache: a rescan that read
    # a layer would find nothing there
    for layer in layers:
        hexdigest = layer["digest"].split(":", 1)[1]
        (server.data_dir / "blobs" / "sha256" / hexdigest[:2] / hexdigest).unlink()
    with sqlite3.connect(server.data_dir / "moorage.db", timeout=60) as db:
        db.execute("DELETE FROM scan_layer_cache")

    ident = f"MOORAGE-TEST-{uuid.uuid4().hex[:8]}"
    records = tmp_path / "records"
    records.mkdir()
    (records / f"{ident}.json").write_text(json.dumps({
        "id": ident, "modified": "2026-12-07T00:00:00Z", "summary": "bash test advisory",
        "aliases": [], "database_specific": {"severity": "HIGH"},
        "affected": [{"package": {"ecosystem": "Debian:12", "name": "bash"},
                      "ranges": [{"type": "ECOSYSTEM", "events": [
                          {"introduced": "0"}, {"fixed": "5.2.15-3"}]}]}]}))
    imported = import_advisories(server, records)
    assert imported["added"] == 1 and imported["rescans_queued"] >= 1

    with api(server) as client:
        after = wait_report(client, repo, "1", until=lambda r: any(
            f["id"] == ident for f in r["findings"]))
        [new] = [f for f in after["findings"] if f["id"] == ident]
        assert new["package"]["name"] == "bash" and new["fixed_versions"] == ["5.2.15-3"]
        assert new["severity"]["level"] == "high"
        assert after["images"][0]["problems"] == []  # no layer was read (they are gone)
        assert len(after["findings"]) == len(first["findings"]) + 1

        [event] = receiver.wait_for(1, event="vulnerability.new")
        body = event.json()
        assert body["type"] == "vulnerability.new" and body["digest"] == digest
        assert [f["id"] for f in body["detail"]["findings"]] == [ident]
        completed = receiver.received("scan.completed")
        assert completed and completed[0].json()["repository"] == repo

        def audited() -> list[dict]:
            return client.get("/audit", params={"action": "vulnerability.new",
                                                "repository": repo}).json()["entries"]
        deadline = time.monotonic() + 120
        while not audited():
            assert time.monotonic() < deadline, "no audit entry (bounds a hang only)"
            time.sleep(0.5)


def test_a_corrupt_layer_ends_as_a_problem_not_an_error(server: MoorageServer) -> None:
    repo = f"{_ns()}/broken"
    good = base_layer()
    broken = python_layer(*VULNERABLE)[:60]  # a truncated gzip stream
    config = b'{"os":"linux","architecture":"amd64","rootfs":{"type":"layers"}}'
    with httpx.Client(base_url=f"{server.url}/v2", auth=ADMIN, timeout=60) as v2:
        descs = []
        for data in (config, good, broken):
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            start = v2.post(f"/{repo}/blobs/uploads/")
            assert start.status_code == 202, start.text
            where = start.headers["location"]
            where = where if "://" in where else f"{server.url}{where}"
            done = v2.put(where, params={"digest": digest}, content=data)
            assert done.status_code == 201, done.text
            descs.append({"digest": digest, "size": len(data)})
        manifest = {"schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               **descs[0]},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                **d} for d in descs[1:]]}
        put = v2.put(f"/{repo}/manifests/bad", content=json.dumps(manifest),
                     headers={"Content-Type": manifest["mediaType"]})
        assert put.status_code == 201, put.text
    with api(server) as client:
        found = wait_report(client, repo, "bad")
        assert found["status"] == "done"
        [image] = found["images"]
        assert image["problems"] and any(broken_digest in p for p in image["problems"]
                                         for broken_digest in [descs[2]["digest"][7:19]])
        # what the readable layer holds is still reported (its packages are in the SBOM)
        sbom = client.get(f"/repositories/{repo}/manifests/bad/sbom")
        assert sbom.status_code == 200 and "bash" in sbom.text


def test_reports_need_pull_and_scans_need_push(server: MoorageServer) -> None:
    repo = f"{_ns()}/private"
    with api(server) as client:
        assert client.post("/namespaces", json={"name": repo.split("/")[0]}).status_code == 201
    with api(server, auth=None) as anonymous:
        resp = anonymous.get(f"/repositories/{repo}/manifests/1/vulnerabilities")
        assert resp.status_code in (401, 404)
        resp = anonymous.post(f"/repositories/{repo}/scans", json={"reference": "1"})
        assert resp.status_code in (401, 404)
    with api(server) as client:
        resp = client.post(f"/repositories/{repo}/scans", json={"reference": "x" * 300})
        assert resp.status_code == 422 and "Traceback" not in resp.text
        resp = client.get(f"/repositories/{repo}/manifests/1/vulnerabilities",
                          params={"severity": "dreadful"})
        assert resp.status_code == 422
        # an unknown image is a 404 naming it, never a 500
        resp = client.get(f"/repositories/{repo}/manifests/nope/vulnerabilities")
        assert resp.status_code == 404


def test_a_deleted_image_loses_its_report_and_its_layers_their_cache(
        server: MoorageServer, tmp_path: Path) -> None:
    repo = f"{_ns()}/gone"
    unique = python_layer((f"only-here-{uuid.uuid4().hex[:8]}", "1.0"))
    layer = "sha256:" + hashlib.sha256(unique).hexdigest()
    digest = push(server, layout(tmp_path / "img", [base_layer(), unique]), f"{repo}:1")
    db_path = server.data_dir / "moorage.db"

    def count(query: str, value: str) -> int:
        with sqlite3.connect(db_path, timeout=60) as db:
            return db.execute(query, (value,)).fetchone()[0]

    with api(server) as client:
        wait_report(client, repo, "1")
        assert count("SELECT count(*) FROM scan_results WHERE digest = ?", digest) == 1
        assert count("SELECT count(*) FROM scan_layer_cache WHERE digest = ?", layer) == 1
        # the SBOM referrer goes first (it holds the image's subject), then the image
        refs = httpx.get(f"{server.url}/v2/{repo}/referrers/{digest}", auth=ADMIN).json()
        for ref in refs["manifests"]:
            assert httpx.delete(f"{server.url}/v2/{repo}/manifests/{ref['digest']}",
                                auth=ADMIN).status_code == 202
        assert httpx.delete(f"{server.url}/v2/{repo}/manifests/{digest}",
                            auth=ADMIN).status_code == 202
        job = client.post("/gc", json={"grace": 0})
        assert job.status_code == 202, job.text
        deadline = time.monotonic() + 300
        while client.get(f"/jobs/{job.json()['id']}").json()["status"] not in ("succeeded",
                                                                              "failed"):
            assert time.monotonic() < deadline, "GC did not finish (bounds a hang only)"
            time.sleep(0.5)
        assert client.get(f"/jobs/{job.json()['id']}").json()["status"] == "succeeded"
    assert count("SELECT count(*) FROM scan_results WHERE digest = ?", digest) == 0
    assert count("SELECT count(*) FROM scan_packages WHERE digest = ?", digest) == 0
    assert count("SELECT count(*) FROM scan_layer_cache WHERE digest = ?", layer) == 0


def test_roles_read_reports_request_scans_and_follow_them(server: MoorageServer,
                                                          tmp_path: Path) -> None:
    from tests.web.helpers import grant, make_user

    ns = _ns()
    repo = f"{ns}/roles"
    with api(server) as client:
        _namespace(client, ns, scan_on_push=False)
    push(server, layout(tmp_path / "img", [base_layer()]), f"{repo}:1")
    guest, developer, outsider = (make_user(server, p) for p in ("guest", "dev", "out"))
    grant(server, ns, guest[0], "guest")
    grant(server, ns, developer[0], "developer")
    with api(server, auth=guest) as client:
        assert report(client, repo, "1")["status"] == "not scanned"
        refused = client.post(f"/repositories/{repo}/scans", json={"reference": "1"})
        assert refused.status_code == 403 and "developer" in refused.json()["error"]["message"]
        assert client.put(f"/namespaces/{ns}/scan-settings",
                          json={"scan_on_push": True}).status_code == 403
    with api(server, auth=outsider) as client:
        assert client.get(f"/repositories/{repo}/manifests/1/vulnerabilities").status_code \
            == 404
    with api(server, auth=developer) as client:
        queued = client.post(f"/repositories/{repo}/scans", json={"reference": "1"})
        assert queued.status_code == 202, queued.text
        job = client.get(f"/jobs/{queued.json()['job_id']}")
        assert job.status_code == 200 and job.json()["type"] == "scan.image"
        assert wait_report(client, repo, "1")["status"] == "done"
    with api(server, auth=outsider) as client:  # the job of an image they cannot see
        assert client.get(f"/jobs/{queued.json()['job_id']}").status_code in (403, 404)
