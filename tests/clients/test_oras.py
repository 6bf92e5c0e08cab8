"""ORAS artifacts (oras-py): arbitrary files pushed as OCI artifacts and attached to images.

Signatures, SBOMs and attestations are stored this way: an artifact manifest whose `subject`
points at an image, found again through the referrers API (OCI distribution-spec 1.1).
oras-py 0.2 has a `subject` option but no `artifactType` option, so the artifact with an
explicit artifactType is assembled from oras-py's own blob and manifest upload calls.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients.tools import (
    Registry,
    copy_in,
    descriptor_of,
    get_manifest,
    require_tool,
    sha256_digest,
    unique_repo,
)
from tests.support.images import busybox_image

oras_client = pytest.importorskip("oras.client")
import oras.defaults  # noqa: E402
import oras.oci  # noqa: E402

pytestmark = [pytest.mark.clients]

ARTIFACT_TYPE = "application/vnd.moorage.test.v1"
CONFIG_TYPE_B = "application/vnd.moorage.test.config.v1+json"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def client_for(registry: Registry) -> Any:
    """An oras-py client speaking plain HTTP to the registry."""
    return oras_client.OrasClient(hostname=registry.host, insecure=True)


def push_image(registry: Registry, tmp_path: Path, repo: str) -> dict[str, Any]:
    """Push the busybox image with skopeo; return its manifest descriptor (the subject)."""
    require_tool("skopeo")
    src = tmp_path / "image"
    digest = busybox_image(src, "v1")
    copy_in(f"oci:{src}:v1", f"docker://{registry.host}/{repo}:v1", "--preserve-digests")
    subject = descriptor_of(registry, repo, "v1")
    assert subject["digest"] == digest
    return subject


def push_typed_artifact(registry: Registry, repo: str, tag: str, payload: Path,
                        subject: dict[str, Any],
                        annotations: dict[str, str]) -> tuple[httpx.Response, dict[str, Any]]:
    """Push an artifact manifest with artifactType, an empty config and `payload` as its
    layer, referring to `subject`, through oras-py's upload_blob/upload_manifest.

    Returns (manifest PUT response, manifest as sent).
    """
    client = client_for(registry)
    container = client.get_container(f"{registry.host}/{repo}:{tag}")
    layer = oras.oci.NewLayer(str(payload), media_type="text/plain")
    layer["annotations"] = {oras.defaults.annotation_title: payload.name}
    resp = client.upload_blob(str(payload), container, layer)
    assert resp.status_code in (200, 201), f"blob upload -> {resp.status_code}: {resp.text}"

    empty = payload.parent / "empty.json"
    empty.write_bytes(b"{}")
    config = {"mediaType": EMPTY_TYPE, "digest": sha256_digest(b"{}"), "size": 2}
    resp = client.upload_blob(str(empty), container, config)
    assert resp.status_code in (200, 201), f"config upload -> {resp.status_code}: {resp.text}"

    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": config,
        "layers": [layer],
        "subject": subject,
        "annotations": annotations,
    }
    resp = client.upload_manifest(manifest, container)
    assert resp.status_code == 201, (f"PUT /v2/{repo}/manifests/{tag} -> {resp.status_code}: "
                                     f"{resp.text}")
    return resp, manifest


def test_oras_artifact_with_subject_push_and_pull(registry: Registry, tmp_path: Path) -> None:
    """An artifact referring to an image is stored verbatim and pulls back byte-identical."""
    repo = unique_repo("oras")
    subject = push_image(registry, tmp_path, repo)
    payload = tmp_path / "push" / "note.txt"
    payload.parent.mkdir()
    payload.write_bytes(b"moorage artifact payload\n" + bytes(range(256)))

    resp, sent = push_typed_artifact(registry, repo, "note", payload, subject,
                                     {"org.opencontainers.image.description": "a test note"})
    digest = resp.headers["Docker-Content-Digest"]

    stored = get_manifest(registry, repo, digest)
    assert stored.status_code == 200, stored.text
    assert sha256_digest(stored.content) == digest
    assert stored.headers["Content-Type"].split(";")[0] == MANIFEST_TYPE
    body = json.loads(stored.content)
    assert body["artifactType"] == ARTIFACT_TYPE
    assert body["subject"] == subject
    assert body == sent

    client = client_for(registry)
    for ref in (f"{repo}@{digest}", f"{repo}:note"):
        outdir = tmp_path / "pull" / hashlib.sha256(ref.encode()).hexdigest()[:8]
        files = client.pull(target=f"{registry.host}/{ref}", outdir=str(outdir))
        assert [Path(f).name for f in files] == ["note.txt"]
        assert Path(files[0]).read_bytes() == payload.read_bytes()


def test_oras_referrers_lists_artifact(registry: Registry, tmp_path: Path,
                                       peer_name: str) -> None:
    """GET /v2/<repo>/referrers/<digest>?artifactType= lists the artifacts attached to an image.

    Covers both ways artifactType is defined: explicitly (artifact A) and, for a manifest
    without one, by its config media type (artifact B, pushed by oras-py's own push()).
    """
    if peer_name == "distribution":
        pytest.skip("CNCF Distribution 2.8 has no referrers API (distribution-spec 1.1)")
    repo = unique_repo("referrers")
    subject = push_image(registry, tmp_path, repo)
    work = tmp_path / "push"
    work.mkdir()
    payload = work / "sbom.txt"
    payload.write_text("component: busybox 1.35\n")
    annotations = {"org.opencontainers.image.description": "artifact A",
                   "org.opencontainers.image.created": "2024-01-01T00:00:00Z"}

    resp_a, _ = push_typed_artifact(registry, repo, "sbom", payload, subject, annotations)
    digest_a = resp_a.headers["Docker-Content-Digest"]
    assert resp_a.headers.get("OCI-Subject") == subject["digest"], (
        "a registry with the referrers API MUST answer a manifest PUT with a subject with "
        f"OCI-Subject; headers were {dict(resp_a.headers)}")

    config_b = work / "config-b.json"
    config_b.write_text("{}")
    payload_b = work / "other.txt"
    payload_b.write_text("artifact B\n")
    resp_b = client_for(registry).push(
        target=f"{registry.host}/{repo}:other", files=[f"{payload_b}:text/plain"],
        disable_path_validation=True, subject=oras.oci.Subject(**subject),
        manifest_config=f"{config_b}:{CONFIG_TYPE_B}")
    digest_b = resp_b.headers["Docker-Content-Digest"]

    url = f"{registry.url}/v2/{repo}/referrers/{subject['digest']}"
    everything = httpx.get(url, timeout=30)
    assert everything.status_code == 200, (f"GET {url} -> {everything.status_code}: "
                                           f"{everything.text}")
    assert everything.headers["Content-Type"].split(";")[0] == INDEX_TYPE
    index = everything.json()
    assert index["schemaVersion"] == 2 and index["mediaType"] == INDEX_TYPE
    by_digest = {d["digest"]: d for d in index["manifests"]}
    assert set(by_digest) == {digest_a, digest_b}, index
    a, b = by_digest[digest_a], by_digest[digest_b]
    assert a["artifactType"] == ARTIFACT_TYPE and a["mediaType"] == MANIFEST_TYPE
    assert a["annotations"] == annotations
    assert a["size"] == len(get_manifest(registry, repo, digest_a).content)
    assert b["artifactType"] == CONFIG_TYPE_B, "artifactType must default to config.mediaType"

    filtered = httpx.get(url, params={"artifactType": ARTIFACT_TYPE}, timeout=30)
    assert filtered.status_code == 200, filtered.text
    listed = {d["digest"]: d for d in filtered.json()["manifests"]}
    assert digest_a in listed and listed[digest_a]["artifactType"] == ARTIFACT_TYPE
    if filtered.headers.get("OCI-Filters-Applied") == "artifactType":
        assert set(listed) == {digest_a}, "filter applied but other artifactTypes listed"
    else:
        # The spec lets a registry ignore the filter, but then it must not claim it applied it.
        assert set(listed) == {digest_a, digest_b}

    files = client_for(registry).pull(target=f"{registry.host}/{repo}@{digest_a}",
                                      outdir=str(tmp_path / "pulled"))
    assert [Path(f).read_bytes() for f in files] == [payload.read_bytes()]

    nothing = httpx.get(f"{registry.url}/v2/{repo}/referrers/{sha256_digest(b'no such image')}",
                        timeout=30)
    assert nothing.status_code == 200, "referrers of an unknown digest MUST be an empty index"
    assert nothing.json()["manifests"] == []
