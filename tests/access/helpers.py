"""HTTP helpers for access tests: tokens, authenticated pushes, API calls."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import httpx

from tests.conftest import ADMIN_PASSWORD
from tests.support.server import MoorageServer

ADMIN = ("admin", ADMIN_PASSWORD)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def token(server: MoorageServer, scope: str | list[str], auth: tuple[str, str] | None = None,
          **params: str) -> str:
    scopes = [scope] if isinstance(scope, str) else scope
    resp = httpx.get(f"{server.url}/auth/token",
                     params=[("service", "moorage"), *(("scope", s) for s in scopes),
                             *params.items()], auth=auth)
    assert resp.status_code == 200, resp.text
    return resp.json()["token"]


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def image(seed: str | None = None, config_type: str = "application/vnd.oci.image.config.v1+json",
          artifact_type: str | None = None) -> tuple[dict[str, bytes], bytes]:
    """A tiny image: its blobs by digest, and its manifest bytes."""
    layer = f"layer {seed or uuid.uuid4().hex}".encode()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [digest(layer)]}}).encode()
    manifest: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_type, "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(layer),
                    "size": len(layer)}],
    }
    if artifact_type:
        manifest["artifactType"] = artifact_type
    return {digest(config): config, digest(layer): layer}, json.dumps(manifest).encode()


def push(server: MoorageServer, repo: str, tag: str, headers: dict[str, str],
         artifact_type: str | None = None) -> httpx.Response:
    """Push a tiny image with the given auth headers; returns the first refusal or the PUT."""
    blobs, manifest = image(artifact_type=artifact_type)
    with httpx.Client(base_url=server.url, headers=headers) as client:
        for blob_digest, data in blobs.items():
            resp = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": blob_digest},
                               content=data)
            if resp.status_code != 201:
                return resp
        return client.put(f"/v2/{repo}/manifests/{tag}", content=manifest,
                          headers={"Content-Type": OCI_MANIFEST})


def admin_push(server: MoorageServer, repo: str, tag: str = "v1") -> httpx.Response:
    resp = push(server, repo, tag, bearer(token(server, f"repository:{repo}:pull,push", ADMIN)))
    assert resp.status_code == 201, resp.text
    return resp


# One client for all api() calls: httpx.request() makes a client per call, and so loads the
# CA bundle each time (~30 ms of CPU, measured). Its cookie jar is emptied after each call,
# so that nothing carries over from one call to the next, as with a client per call.
_http = httpx.Client()


def api(server: MoorageServer, method: str, path: str, auth: tuple[str, str] | None = ADMIN,
        **kwargs: Any) -> httpx.Response:
    try:
        return _http.request(method, f"{server.url}/api/v1{path}", auth=auth, **kwargs)
    finally:
        _http.cookies.clear()


def error_code(resp: httpx.Response) -> str:
    return resp.json()["errors"][0]["code"]


def error_message(resp: httpx.Response) -> str:
    return resp.json()["errors"][0]["message"]


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"
