"""Fix plans served: `GET …/manifests/REF/fixes` (JSON, text) and `moorage fixes`, on a real
server, for an image holding known-vulnerable Python packages. The expected commands are
computed here from the fixture's own OSV ranges, not by the code under test."""

from __future__ import annotations

import json
import shlex
import uuid
from pathlib import Path

import pytest
from packaging.version import Version

from tests.conftest import ADMIN_PASSWORD
from tests.scan.pypi_reference import pypa_records, pypi_affected
from tests.scan.service.helpers import (api, base_layer, layout, moorage, push,
                                        python_layer, wait_report)
from tests.support.server import MoorageServer

pytestmark = [pytest.mark.slow]
PACKAGES = (("Jinja2", "2.10"), ("urllib3", "1.24.1"))


def expected_target(name: str, installed: str) -> str:
    """The least fixed version named by the records affecting `installed` at which none of
    them affects the package any more."""
    mine = [r for r in pypa_records(name) if pypi_affected(r, name, installed)]
    assert mine, name
    fixes = sorted({Version(str(e["fixed"])) for r in mine for a in r["affected"]
                    for rng in a.get("ranges") or [] if rng.get("type") == "ECOSYSTEM"
                    for e in rng["events"] if "fixed" in e}
                   - {Version(installed)})
    for candidate in fixes:
        if candidate > Version(installed) and not any(pypi_affected(r, name, candidate)
                                                      for r in mine):
            return str(candidate)
    raise AssertionError(f"no fix clears {name} {installed}")


def expected_command() -> str:
    return "pip install " + " ".join(shlex.quote(f"{n}>={expected_target(n, v)}")
                                     for n, v in PACKAGES)


@pytest.fixture(scope="module")
def image(server: MoorageServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    repo = f"fix{uuid.uuid4().hex[:8]}/app"
    folder = tmp_path_factory.mktemp("fix-image")
    push(server, layout(folder / "img", [base_layer(), python_layer(*PACKAGES)]), f"{repo}:1")
    with api(server) as client:
        found = wait_report(client, repo, "1")
    assert found["status"] == "done" and found["findings"], found
    return repo


def test_the_plan_names_the_least_fixing_versions(server: MoorageServer, image: str) -> None:
    with api(server) as client:
        resp = client.get(f"/repositories/{image}/manifests/1/fixes")
        assert resp.status_code == 200, resp.text
        plans = resp.json()
        report = client.get(f"/repositories/{image}/manifests/1/vulnerabilities").json()
    assert plans["repository"] == image and plans["digest"] == report["digest"]
    [plan] = plans["images"]
    assert plan["status"] == "done" and plan["platform"] == ""
    assert [c["command"] for c in plan["commands"]] == [expected_command()]
    assert {u["name"]: u["target"] for u in plan["upgrades"]} == {
        n: expected_target(n, v) for n, v in PACKAGES}
    # every fixable finding of the report is cleared by one upgrade
    assert {i for u in plan["upgrades"] for i in u["findings"]} == {
        f["id"] for f in report["findings"] if f["fixable"]}
    assert all(u["layer"]["index"] == 2 and u["layer"]["count"] == 2 for u in plan["upgrades"])


def test_an_accepted_finding_is_listed_not_upgraded(server: MoorageServer,
                                                    tmp_path: Path) -> None:
    repo = f"acc{uuid.uuid4().hex[:8]}/app"
    push(server, layout(tmp_path / "img", [base_layer(), python_layer(("urllib3", "1.24.1"),
                                                                      ("Jinja2", "2.10"))]),
         f"{repo}:1")
    with api(server) as client:
        found = wait_report(client, repo, "1")
        jinja = [f for f in found["findings"] if f["package"]["name"] == "Jinja2"]
        assert jinja
        for f in jinja:
            resp = client.post(f"/namespaces/{repo.split('/')[0]}/cve-allowlist",
                               json={"id": f["id"], "reason": "template input is trusted"})
            assert resp.status_code in (200, 201), resp.text
        plan = client.get(f"/repositories/{repo}/manifests/1/fixes").json()["images"][0]
    assert {a["id"] for a in plan["accepted"]} == {f["id"] for f in jinja}
    assert {a["reason"] for a in plan["accepted"]} == {"template input is trusted"}
    assert [u["name"] for u in plan["upgrades"]] == ["urllib3"]
    assert [c["command"] for c in plan["commands"]] == [
        "pip install " + shlex.quote(f"urllib3>={expected_target('urllib3', '1.24.1')}")]


def test_text_cli_and_refusals(server: MoorageServer, image: str) -> None:
    with api(server) as client:
        text = client.get(f"/repositories/{image}/manifests/1/fixes", params={"format": "text"})
        assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
        assert f"  {expected_command()}" in text.text.splitlines()
        assert client.get(f"/repositories/{image}/manifests/nope/fixes").status_code == 404
        bad = client.get(f"/repositories/{image}/manifests/1/fixes", params={"format": "xml"})
        assert bad.status_code in (400, 422)
        doc = client.get("/openapi.json")
    paths = doc.json()["paths"]
    assert "/api/v1/repositories/{name}/manifests/{reference}/fixes" in paths
    env = {"MOORAGE_URL": server.url, "MOORAGE_USERNAME": "admin",
           "MOORAGE_PASSWORD": ADMIN_PASSWORD}
    people = moorage("fixes", f"{image}:1", env=env)
    assert people.returncode == 0, people.stderr
    assert f"  {expected_command()}" in people.stdout.splitlines()
    scripts = moorage("fixes", f"{image}:1", "--json", env=env)
    assert scripts.returncode == 0, scripts.stderr
    assert json.loads(scripts.stdout)["images"][0]["commands"][0]["command"] == expected_command()
    with api(server, auth=None) as anonymous:
        assert anonymous.get(f"/repositories/{image}/manifests/1/fixes").status_code in (401, 403,
                                                                                       404)


def test_an_index_gets_one_plan_per_platform(server: MoorageServer, tmp_path: Path) -> None:
    import hashlib

    from tests.clients.tools import copy_in
    from tests.scan.service.helpers import ADMIN

    repo = f"fixidx{uuid.uuid4().hex[:8]}/app"
    folder = tmp_path / "idx"
    amd = layout(tmp_path / "amd", [base_layer(), python_layer(("Jinja2", "2.10"))])
    arm = layout(tmp_path / "arm", [base_layer(), python_layer(("urllib3", "1.24.1"))])
    (folder / "blobs" / "sha256").mkdir(parents=True)
    (folder / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    children = []
    for src, arch in ((amd, "amd64"), (arm, "arm64")):
        for blob in (src / "blobs" / "sha256").iterdir():
            (folder / "blobs" / "sha256" / blob.name).write_bytes(blob.read_bytes())
        desc = json.loads((src / "index.json").read_text())["manifests"][0]
        desc.pop("annotations")
        children.append({**desc, "platform": {"os": "linux", "architecture": arch}})
    index = json.dumps({"schemaVersion": 2, "manifests": children,
                        "mediaType": "application/vnd.oci.image.index.v1+json"}).encode()
    digest = hashlib.sha256(index).hexdigest()
    (folder / "blobs" / "sha256" / digest).write_bytes(index)
    (folder / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": f"sha256:{digest}",
        "size": len(index), "annotations": {"org.opencontainers.image.ref.name": "t"}}]}))
    copy_in(f"oci:{folder}:t", f"docker://{server.host}/{repo}:1", "--all",
            "--dest-creds", f"{ADMIN[0]}:{ADMIN[1]}", "--preserve-digests")
    with api(server) as client:
        wait_report(client, repo, "1",
                    until=lambda r: all(i["status"] == "done" for i in r["images"]))
        plans = client.get(f"/repositories/{repo}/manifests/1/fixes").json()
        text = client.get(f"/repositories/{repo}/manifests/1/fixes",
                          params={"format": "text"}).text
    assert plans["digest"] == f"sha256:{digest}"
    commands = {p["platform"]: [c["command"] for c in p["commands"]] for p in plans["images"]}
    assert commands == {
        "linux/amd64": ["pip install " + shlex.quote(
            f"Jinja2>={expected_target('Jinja2', '2.10')}")],
        "linux/arm64": ["pip install " + shlex.quote(
            f"urllib3>={expected_target('urllib3', '1.24.1')}")]}
    assert "# linux/amd64 (" in text and "# linux/arm64 (" in text
