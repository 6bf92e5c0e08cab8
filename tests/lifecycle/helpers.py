"""Pushing images made of chosen layers, and following jobs, over real HTTP."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from tests.access.helpers import ADMIN, api
from tests.support.server import MoorageServer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Image:
    manifest: bytes
    digest: str
    blobs: dict[str, bytes]

    @property
    def blob_sizes(self) -> dict[str, int]:
        return {d: len(b) for d, b in self.blobs.items()}


def make_image(layers: list[bytes], label: str = "",
               subject: dict[str, Any] | None = None) -> Image:
    config = json.dumps({"architecture": "amd64", "os": "linux", "label": label,
                         "rootfs": {"type": "layers",
                                    "diff_ids": [digest(layer) for layer in layers]}}).encode()
    doc: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(layer),
                    "size": len(layer)} for layer in layers],
    }
    if subject is not None:
        doc["subject"] = subject
    manifest = json.dumps(doc).encode()
    blobs = {digest(config): config, **{digest(layer): layer for layer in layers}}
    return Image(manifest, digest(manifest), blobs)


def push(client: httpx.Client, repo: str, tag: str | None, image: Image) -> httpx.Response:
    """Push the way clients do: HEAD each blob, upload what is missing, then the manifest."""
    for blob_digest, data in image.blobs.items():
        if client.head(f"/v2/{repo}/blobs/{blob_digest}").status_code == 200:
            continue
        resp = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": blob_digest},
                           content=data)
        assert resp.status_code == 201, resp.text
    return client.put(f"/v2/{repo}/manifests/{tag or image.digest}", content=image.manifest,
                      headers={"Content-Type": OCI_MANIFEST})


def pull(client: httpx.Client, repo: str, reference: str) -> Image:
    """Pull a manifest and every blob, checking each against its digest."""
    resp = client.get(f"/v2/{repo}/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
    assert resp.status_code == 200, f"pull {repo}:{reference} -> {resp.status_code} {resp.text}"
    doc = resp.json()
    blobs = {}
    for desc in [doc["config"], *doc["layers"]]:
        blob = client.get(f"/v2/{repo}/blobs/{desc['digest']}")
        assert blob.status_code == 200, f"blob {desc['digest']} of {repo}:{reference}: {blob.text}"
        assert digest(blob.content) == desc["digest"]
        blobs[desc["digest"]] = blob.content
    return Image(resp.content, digest(resp.content), blobs)


def admin_client(server: MoorageServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=ADMIN, timeout=60)


def wait_job(server: MoorageServer, job: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
    """Until the job has finished (the timeout bounds a hang only)."""
    deadline = time.monotonic() + timeout
    while job["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, f"job {job['id']} did not finish: {job}"
        time.sleep(0.1)
        job = api(server, "GET", f"/jobs/{job['id']}").json()
    return job


def run_gc(server: MoorageServer, dry_run: bool = False, grace: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"dry_run": dry_run}
    if grace is not None:
        body["grace"] = grace
    while True:
        resp = api(server, "POST", "/gc", json=body)
        if resp.status_code != 409:  # one already queued: wait for it, then ask again
            break
        time.sleep(0.2)
    assert resp.status_code == 202, resp.text
    job = wait_job(server, resp.json())
    assert job["status"] == "succeeded", job
    return job["result"]
