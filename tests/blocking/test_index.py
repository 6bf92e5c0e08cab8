"""An index counts its platforms' findings (the worst of them): pulled by tag it is refused
when any platform breaks the rule; each platform pulled by digest is decided on its own."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.blocking.helpers import (ADMIN, CLEAN, api, error_of, image, manifest,
                                    new_namespace, set_policy, skopeo_pull, token,
                                    wait_report)
from tests.clients.tools import copy_in
from tests.support.server import MoorageServer

pytestmark = [pytest.mark.clients, pytest.mark.slow]


def _index(tmp_path: Path, platforms: dict[str, Path]) -> tuple[Path, str, dict[str, str]]:
    """An OCI layout of an index over these single-image layouts; (folder, index digest,
    platform → child digest)."""
    folder = tmp_path / "idx"
    folder.mkdir()
    (folder / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    children, digests = [], {}
    for arch, src in platforms.items():
        for blob in (src / "blobs" / "sha256").iterdir():
            target = folder / "blobs" / "sha256" / blob.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob.read_bytes())
        desc = json.loads((src / "index.json").read_text())["manifests"][0]
        desc.pop("annotations")
        children.append({**desc, "platform": {"os": "linux", "architecture": arch}})
        digests[arch] = desc["digest"]
    index = json.dumps({"schemaVersion": 2,
                        "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": children}).encode()
    digest = hashlib.sha256(index).hexdigest()
    (folder / "blobs" / "sha256" / digest).write_bytes(index)
    (folder / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": f"sha256:{digest}",
        "size": len(index), "annotations": {"org.opencontainers.image.ref.name": "t"}}]}))
    return folder, f"sha256:{digest}", digests


def test_an_index_is_refused_for_its_worst_platform(server: MoorageServer,
                                                    tmp_path: Path) -> None:
    clean = image(tmp_path, "amd", CLEAN)
    vulnerable = image(tmp_path, "arm", (("urllib3", "1.24.1"),))
    folder, digest, children = _index(tmp_path, {"amd64": clean, "arm64": vulnerable})
    with api(server) as client:
        ns = new_namespace(client)
        repo = f"{ns}/app"
        copy_in(f"oci:{folder}:t", f"docker://{server.host}/{repo}:1", "--all",
                "--dest-creds", f"{ADMIN[0]}:{ADMIN[1]}", "--preserve-digests")
        found = wait_report(client, repo, "1",
                            until=lambda r: all(i["status"] == "done" for i in r["images"]))
        assert found["digest"] == digest
        blocking = [f for f in found["findings"]
                    if f["severity"]["level"] in ("critical", "high", "medium", "low")]
        assert blocking and {f["platform"] for f in blocking} == {"linux/arm64"}
        set_policy(client, ns, severity="low", block_unscanned=True)
        bearer = token(server, repo)
        by_tag = manifest(server, repo, "1", bearer)
        assert by_tag.status_code == 403, by_tag.text
        assert "urllib3 1.24.1" in error_of(by_tag)["message"]
        assert manifest(server, repo, children["arm64"], bearer).status_code == 403
        assert manifest(server, repo, children["amd64"], bearer).status_code == 200
        refused = skopeo_pull(server, f"{repo}:1", tmp_path / "out")
        assert refused.returncode != 0 and "urllib3 1.24.1" in refused.stderr

        for f in blocking:
            resp = client.post(f"/namespaces/{ns}/cve-allowlist",
                               json={"id": f["id"], "reason": "not used on arm64"})
            assert resp.status_code in (200, 201), resp.text
        assert manifest(server, repo, "1", bearer).status_code == 200
        assert manifest(server, repo, children["arm64"], bearer).status_code == 200
