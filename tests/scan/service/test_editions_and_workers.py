"""Scanning follows the edition (a personal instance has none and says which edition has
it), and two workers scanning images that share a base layer at once both report right;
an index is scanned per platform."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.clients.tools import copy_in, require_tool
from tests.conftest import ROOMY, SECURED
from tests.scan.service.helpers import (ADMIN, OSV_PYPA, api, base_layer, import_advisories,
                                        layout, push, python_layer, wait_report)
from tests.support.server import MoorageServer

pytestmark = [pytest.mark.clients, pytest.mark.slow]


@pytest.fixture(scope="module")
def personal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    started = MoorageServer(tmp_path_factory.mktemp("scan-personal") / "data",
                            env={**SECURED, "MOORAGE_EDITION": "personal",
                                 "MOORAGE_SCAN_ON_PUSH": "true"}).start()
    yield started
    started.kill()


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    require_tool("skopeo")
    started = MoorageServer(tmp_path_factory.mktemp("scan-workers") / "data",
                            extra_args=["--workers", "2"],
                            env={**SECURED, **ROOMY, "MOORAGE_SCAN_CONCURRENCY": "2",
                                 "MOORAGE_SCAN_ON_PUSH": "true"}).start()
    import_advisories(started, OSV_PYPA / "jinja2", OSV_PYPA / "urllib3")
    yield started
    started.kill()


def test_a_personal_instance_has_no_scanning(personal: MoorageServer, tmp_path: Path) -> None:
    require_tool("skopeo")
    info = httpx.get(f"{personal.url}/api/v1/info").json()
    assert info["features"]["scanning"] is False
    assert info["scanning"] is None  # nothing advertised
    push(personal, layout(tmp_path / "img", [base_layer()]), "solo/app:1")
    with api(personal) as client:
        for resp in (client.post("/repositories/solo/app/scans", json={"reference": "1"}),
                     client.get("/repositories/solo/app/manifests/1/vulnerabilities"),
                     client.get("/repositories/solo/app/manifests/1/sbom"),
                     client.get("/scanners"),
                     client.post("/scanners", json={"name": "trivy",
                                                    "url": "http://127.0.0.1:9"})):
            assert resp.status_code == 403, resp.text
            assert "basic edition" in resp.json()["error"]["message"]
        [tag] = client.get("/repositories/solo/app/tags").json()
        assert tag["vulnerabilities"] is None
        # nothing was queued by the push
        assert "scan.image" not in client.get("/jobs/types").json()


def test_an_advanced_instance_advertises_scanning(two_workers: MoorageServer) -> None:
    info = httpx.get(f"{two_workers.url}/api/v1/info").json()
    assert info["features"]["scanning"] is True
    # the suite's instances run without Syft (MOORAGE_SCAN_SYFT=off) and without adapters
    assert info["scanning"] == {"engines": ["osv"], "harbor_adapters": 0, "syft": False}


def test_two_images_sharing_a_base_are_scanned_at_once(two_workers: MoorageServer,
                                                       tmp_path: Path) -> None:
    ns = f"pair{uuid.uuid4().hex[:8]}"
    base = base_layer()
    images = {"jinja": ("Jinja2", "2.10"), "urllib": ("urllib3", "1.24.1")}
    folders = {key: layout(tmp_path / key, [base, python_layer(pkg)])
               for key, pkg in images.items()}
    errors: list[BaseException] = []

    def push_one(key: str) -> None:
        try:
            push(two_workers, folders[key], f"{ns}/{key}:1")
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=push_one, args=(k,)) for k in images]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not errors
    with api(two_workers) as client:
        for key, (name, version) in images.items():
            found = wait_report(client, f"{ns}/{key}", "1")
            assert found["status"] == "done" and found["images"][0]["problems"] == []
            names = {f["package"]["name"] for f in found["findings"]}
            assert names == {name}, (key, names)
            # both see the base layer's packages: the shared layer's result is right in both
            sbom = client.get(f"/repositories/{ns}/{key}/manifests/1/sbom").json()
            assert {"bash", name} <= {c["name"] for c in sbom["components"]}


def test_an_index_is_scanned_per_platform(two_workers: MoorageServer, tmp_path: Path) -> None:
    ns = f"multi{uuid.uuid4().hex[:8]}"
    # two images under one index in an OCI layout, pushed with skopeo --all
    folder = tmp_path / "idx"
    amd = layout(tmp_path / "amd", [base_layer(), python_layer(("Jinja2", "2.10"))])
    arm = layout(tmp_path / "arm", [base_layer(), python_layer(("urllib3", "1.24.1"))])
    folder.mkdir()
    (folder / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    children = []
    for src, arch in ((amd, "amd64"), (arm, "arm64")):
        for blob in (src / "blobs" / "sha256").iterdir():
            target = folder / "blobs" / "sha256" / blob.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob.read_bytes())
        desc = json.loads((src / "index.json").read_text())["manifests"][0]
        desc.pop("annotations")
        children.append({**desc, "platform": {"os": "linux", "architecture": arch}})
    index = json.dumps({"schemaVersion": 2,
                        "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": children}).encode()
    digest = hashlib.sha256(index).hexdigest()
    (folder / "blobs" / "sha256" / digest).write_bytes(index)
    (folder / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": f"sha256:{digest}",
        "size": len(index), "annotations": {"org.opencontainers.image.ref.name": "t"}}]}))
    copy_in(f"oci:{folder}:t", f"docker://{two_workers.host}/{ns}/app:1", "--all",
            "--dest-creds", f"{ADMIN[0]}:{ADMIN[1]}", "--preserve-digests")
    with api(two_workers) as client:
        found = wait_report(client, f"{ns}/app", "1",
                            until=lambda r: all(i["status"] == "done" for i in r["images"]))
        assert found["digest"] == f"sha256:{digest}"
        by_platform = {}
        for f in found["findings"]:
            by_platform.setdefault(f["platform"], set()).add(f["package"]["name"])
        assert by_platform == {"linux/amd64": {"Jinja2"}, "linux/arm64": {"urllib3"}}
        [tag] = client.get(f"/repositories/{ns}/app/tags").json()
        assert sum(v for k, v in tag["vulnerabilities"].items() if k != "status") == \
            len(found["findings"])
        resp = client.get(f"/repositories/{ns}/app/manifests/1/sbom")
        assert resp.status_code == 400 and "linux/arm64" in resp.text
        resp = client.get(f"/repositories/{ns}/app/manifests/1/sbom",
                          params={"platform": "linux/arm64"})
        assert resp.status_code == 200 and "urllib3" in resp.text
