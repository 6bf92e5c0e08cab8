"""Threat blocking through real clients: skopeo and podman pulls of a vulnerable and of an
unscanned image are refused with the policy's reason in their error output, and pass after
the fix (a clean re-push, an allowlist entry); an expired allowlist entry blocks again; a
fresh push is blocked as unscanned at once; HEAD, signatures and SBOMs of a blocked image
stay readable; exempted robots pull."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from tests.blocking.helpers import (ADMIN, CLEAN, VULNERABLE, api, blocking_ids, error_of,
                                    image, manifest, new_namespace, podman_pull, push,
                                    set_policy, skopeo_pull, token, wait_report)
from tests.clients.tools import ContainerStore
from tests.support.server import MoorageServer

pytestmark = [pytest.mark.clients, pytest.mark.slow]


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[ContainerStore]:
    import shutil
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (apt-get install podman)")
    store = ContainerStore("podman", tmp_path / "podman", "vfs")
    yield store
    store.cleanup()


def test_a_vulnerable_image_is_refused_until_its_findings_are_accepted(
        server: MoorageServer, tmp_path: Path, podman: ContainerStore) -> None:
    with api(server) as client:
        ns = new_namespace(client)
        repo = f"{ns}/app"
        push(server, image(tmp_path, "vuln", VULNERABLE), f"{repo}:1.0")
        found = wait_report(client, repo, "1.0")
        high = blocking_ids(found, ("critical", "high"))
        assert high, found["summary"]
        set_policy(client, ns, severity="high")

        # refused, with the policy and a named vulnerability in each client's error output
        pulled = skopeo_pull(server, f"{repo}:1.0", tmp_path / "out")
        assert pulled.returncode != 0
        assert f"pull policy of namespace {ns}" in pulled.stderr, pulled.stderr
        assert "vulnerability" in pulled.stderr and " in " in pulled.stderr
        assert any(i in pulled.stderr for i in high) or "CVE-" in pulled.stderr
        pulled = podman_pull(podman, server, f"{repo}:1.0")
        assert pulled.returncode != 0
        assert f"pull policy of namespace {ns}" in pulled.stderr, pulled.stderr
        assert "(severity rule)" in pulled.stderr

        # every blocking finding accepted: the next pull passes, without any rescan
        findings = [f for f in found["findings"]
                    if f["severity"]["level"] in ("critical", "high")]
        for f in findings:
            resp = client.post(f"/namespaces/{ns}/cve-allowlist",
                               json={"id": f["id"], "reason": "not reachable here"})
            assert resp.status_code in (200, 201), resp.text
        pulled = skopeo_pull(server, f"{repo}:1.0", tmp_path / "out2")
        assert pulled.returncode == 0, pulled.stderr
        assert podman_pull(podman, server, f"{repo}:1.0").returncode == 0

        # one entry now expired (an expiry in the past): blocked again, naming it
        victim = findings[0]
        past = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()
        resp = client.post(f"/namespaces/{ns}/cve-allowlist",
                           json={"id": victim["id"], "reason": "was accepted",
                                 "expires_at": past})
        assert resp.status_code == 200 and resp.json()["expired"], resp.text
        bearer = token(server, repo)
        refused = manifest(server, repo, "1.0", bearer)
        assert refused.status_code == 403
        names = {victim["id"], *victim["aliases"]}
        assert any(n in error_of(refused)["message"] for n in names), refused.text
        assert error_of(refused)["code"] == "DENIED"


def test_a_clean_repush_passes_once_scanned_and_is_refused_as_unscanned_until_then(
        server: MoorageServer, tmp_path: Path) -> None:
    with api(server) as client:
        ns = new_namespace(client)
        repo = f"{ns}/app"
        push(server, image(tmp_path, "vuln", VULNERABLE), f"{repo}:1.0")
        wait_report(client, repo, "1.0")
        set_policy(client, ns, severity="high", block_unscanned=True)
        bearer = token(server, repo)
        first = manifest(server, repo, "1.0", bearer)
        assert first.status_code == 403 and "(severity rule)" in error_of(first)["message"]

        digest = push(server, image(tmp_path, "clean", CLEAN), f"{repo}:1.0")
        # right after the push, before any scan could finish: blocked as unscanned
        refused = manifest(server, repo, "1.0", bearer)
        if refused.status_code == 403:
            assert "not scanned yet" in error_of(refused)["message"], refused.text
        else:  # the scan won the race: then it must have finished, clean
            assert client.get(f"/repositories/{repo}/manifests/{digest}/vulnerabilities"
                              ).json()["status"] == "done"
        wait_report(client, repo, "1.0", until=lambda r: r["digest"] == digest)
        passed = manifest(server, repo, "1.0", bearer)
        assert passed.status_code == 200, passed.text
        assert passed.headers["docker-content-digest"] == digest
        assert skopeo_pull(server, f"{repo}:1.0", tmp_path / "out").returncode == 0


def test_an_unscanned_image_is_refused_until_scanned(server: MoorageServer, tmp_path: Path,
                                                     podman: ContainerStore) -> None:
    with api(server) as client:
        ns = new_namespace(client, scan_on_push=False)
        repo = f"{ns}/app"
        push(server, image(tmp_path, "clean", CLEAN), f"{repo}:2.0")
        set_policy(client, ns, block_unscanned=True)
        pulled = skopeo_pull(server, f"{repo}:2.0", tmp_path / "out")
        assert pulled.returncode != 0 and "not scanned yet" in pulled.stderr, pulled.stderr
        pulled = podman_pull(podman, server, f"{repo}:2.0")
        assert pulled.returncode != 0 and "not scanned yet" in pulled.stderr, pulled.stderr
        # HEAD is never refused
        bearer = token(server, repo)
        assert manifest(server, repo, "2.0", bearer, "HEAD").status_code == 200

        resp = client.post(f"/repositories/{repo}/scans", json={"reference": "2.0"})
        assert resp.status_code == 202, resp.text
        wait_report(client, repo, "2.0")
        pulled = skopeo_pull(server, f"{repo}:2.0", tmp_path / "out2")
        assert pulled.returncode == 0, pulled.stderr
        assert podman_pull(podman, server, f"{repo}:2.0").returncode == 0


def test_evidence_of_a_blocked_image_stays_readable(server: MoorageServer,
                                                    tmp_path: Path) -> None:
    """Its SBOM referrer (attached by the scan), a cosign signature tag pushed beside it,
    and HEAD of the image itself."""
    with api(server) as client:
        ns = new_namespace(client)
        repo = f"{ns}/app"
        digest = push(server, image(tmp_path, "vuln", VULNERABLE), f"{repo}:1.0")
        wait_report(client, repo, "1.0")
        set_policy(client, ns, severity="low", block_unscanned=True)
    signature = _push_signature(server, repo, digest)
    bearer = token(server, repo)
    assert manifest(server, repo, "1.0", bearer).status_code == 403
    assert manifest(server, repo, digest, bearer).status_code == 403
    head = manifest(server, repo, "1.0", bearer, "HEAD")
    assert head.status_code == 200 and head.headers["docker-content-digest"] == digest

    sig_tag = f"sha256-{digest.split(':')[1]}.sig"
    found = manifest(server, repo, sig_tag, bearer)
    assert found.status_code == 200, found.text
    assert found.headers["docker-content-digest"] == signature
    assert manifest(server, repo, signature, bearer).status_code == 200
    referrers = httpx.get(f"{server.url}/v2/{repo}/referrers/{digest}", timeout=60,
                          headers={"Authorization": f"Bearer {bearer}"}).json()["manifests"]
    assert referrers, "the scan attaches an SBOM referrer"
    for ref in referrers:
        assert manifest(server, repo, ref["digest"], bearer).status_code == 200


def _push_signature(server: MoorageServer, repo: str, digest: str) -> str:
    """A manifest shaped as cosign stores a signature (simple-signing payload layer with its
    annotation, an image config), under the `sha256-<hex>.sig` tag."""
    import hashlib
    import json

    bearer_push = _push_token(server, repo)
    headers = {"Authorization": f"Bearer {bearer_push}"}
    payload = json.dumps({"critical": {"identity": {"docker-reference": repo},
                                       "image": {"docker-manifest-digest": digest},
                                       "type": "cosign container image signature"},
                          "optional": None}).encode()
    config = json.dumps({"architecture": "", "os": "", "rootfs": {"type": "layers",
                         "diff_ids": []}, "config": {}}).encode()
    blobs = []
    for data in (config, payload):
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        start = httpx.post(f"{server.url}/v2/{repo}/blobs/uploads/", headers=headers,
                           timeout=60)
        assert start.status_code == 202, start.text
        location = start.headers["location"]
        if location.startswith("/"):
            location = f"{server.url}{location}"
        sep = "&" if "?" in location else "?"
        done = httpx.put(f"{location}{sep}digest={d}", content=data, timeout=60,
                         headers={**headers, "Content-Type": "application/octet-stream"})
        assert done.status_code == 201, done.text
        blobs.append({"digest": d, "size": len(data)})
    body = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **blobs[0]},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                    **blobs[1], "annotations": {
                        "dev.cosignproject.cosign/signature": "MEUCIQDtest"}}]}).encode()
    tag = f"sha256-{digest.split(':')[1]}.sig"
    put = httpx.put(f"{server.url}/v2/{repo}/manifests/{tag}", content=body, timeout=60,
                    headers={**headers,
                             "Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert put.status_code == 201, put.text
    return put.headers["docker-content-digest"]


def _push_token(server: MoorageServer, repo: str) -> str:
    resp = httpx.get(f"{server.url}/auth/token", auth=ADMIN, timeout=60, params={
        "service": server.host, "scope": f"repository:{repo}:pull,push"})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["token"])
