"""Calling the management API over real HTTP, and making the accounts and images tests need."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from typing import Any

import httpx

from tests.conftest import ADMIN_PASSWORD
from tests.support.server import MoorageServer

ADMIN = ("admin", ADMIN_PASSWORD)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
USER_PASSWORD = "password-of-a-test-user"

# One client for all calls: creating an httpx.Client loads the CA bundle (~70 ms here).
_http = httpx.Client(timeout=30)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def api(server: MoorageServer, method: str, path: str,
        auth: tuple[str, str] | None = ADMIN, **kwargs: Any) -> httpx.Response:
    return _http.request(method, f"{server.url}/api/v1{path}", auth=auth, **kwargs)


def error(resp: httpx.Response) -> tuple[str, str]:
    """(code, message) of an error answer, checking it has the one documented shape."""
    body = resp.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    return body["error"]["code"], body["error"]["message"]


def make_user(server: MoorageServer, prefix: str = "user", admin: bool = False) -> tuple[str, str]:
    username = unique(prefix)
    resp = api(server, "POST", "/users", json={"username": username, "password": USER_PASSWORD,
                                               "is_admin": admin})
    assert resp.status_code == 201, resp.text
    return username, USER_PASSWORD


def make_namespace(server: MoorageServer, auth: tuple[str, str] = ADMIN, prefix: str = "ns",
                   **fields: Any) -> str:
    name = unique(prefix)
    resp = api(server, "POST", "/namespaces", auth=auth, json={"name": name, **fields})
    assert resp.status_code == 201, resp.text
    return name


def grant(server: MoorageServer, namespace: str, username: str, role: str) -> None:
    resp = api(server, "PUT", f"/namespaces/{namespace}/members/{username}", json={"role": role})
    assert resp.status_code == 200, resp.text


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_image(server: MoorageServer, repo: str, tag: str,
               auth: tuple[str, str] = ADMIN) -> str:
    """Push a tiny image through /v2 with Basic credentials; returns the manifest digest."""
    layer = os.urandom(64)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [digest(layer)]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest(layer), "size": len(layer)}],
    }).encode()
    for data in (config, layer):
        resp = _http.post(f"{server.url}/v2/{repo}/blobs/uploads/", auth=auth,
                          params={"digest": digest(data)}, content=data)
        assert resp.status_code == 201, resp.text
    resp = _http.put(f"{server.url}/v2/{repo}/manifests/{tag}", auth=auth, content=manifest,
                     headers={"Content-Type": OCI_MANIFEST})
    assert resp.status_code == 201, resp.text
    return digest(manifest)


def server_log(server: MoorageServer) -> str:
    """The whole log file (MoorageServer.log() keeps only its tail)."""
    return server.log_path.read_text(errors="replace")
