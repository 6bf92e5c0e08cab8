"""Small building blocks for protocol tests: digests, pushes and error checks over real HTTP.

They speak the wire protocol directly (no registry client library), so a test sees exactly
the status codes, headers and bytes a container client would see.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

EMPTY_JSON = b"{}"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

_CODE_RE = re.compile(r"^[A-Z_]+$")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


def unique_repo(prefix: str = "t") -> str:
    """A repository name no other test uses, so tests can share one server safely."""
    return f"{prefix}/{uuid.uuid4().hex[:16]}"


def canonical(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


# -- blobs --------------------------------------------------------------------------------


def push_blob(client: httpx.Client, repo: str, data: bytes) -> str:
    """Monolithic POST ?digest= (end-4b); returns the digest."""
    digest = sha256(data)
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
    assert r.status_code == 201, (r.status_code, r.text)
    return digest


def start_upload(client: httpx.Client, repo: str) -> str:
    """POST (end-4a); returns the upload Location."""
    r = client.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202, (r.status_code, r.text)
    return r.headers["location"]


def upload_range_end(client: httpx.Client, location: str) -> int:
    """The inclusive end of what an upload holds, from `Range: 0-<end>` of GET (end-13).

    `0-0` is ambiguous in the protocol (nothing, or one byte); tests never stop at one byte.
    """
    r = client.get(location)
    assert r.status_code == 204, (r.status_code, r.text)
    return range_end(r.headers["range"])


def range_end(value: str) -> int:
    """The inclusive end of an upload `Range` header (`0-<end>`, with or without `bytes=`)."""
    match = re.fullmatch(r"(?:bytes=)?0-(\d+)", value.strip())
    assert match, f"malformed upload Range header {value!r}"
    return int(match[1])


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


# -- manifests ----------------------------------------------------------------------------


def put_manifest(client: httpx.Client, repo: str, reference: str, body: bytes,
                 media_type: str | None, **kwargs: Any) -> httpx.Response:
    headers = {"Content-Type": media_type} if media_type else {}
    return client.put(f"/v2/{repo}/manifests/{reference}", content=body, headers=headers,
                      **kwargs)


@dataclass
class Image:
    """An image pushed to a repository: its manifest bytes and the blobs behind it."""

    repo: str
    manifest: bytes
    media_type: str
    config: bytes
    layers: list[bytes] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest,
                "size": len(self.manifest), **extra}


def image_manifest(config: bytes, layers: list[bytes], docker: bool = False,
                   **extra: Any) -> tuple[bytes, str]:
    """Manifest bytes and media type for a config and layers (OCI, or Docker schema 2)."""
    if docker:
        doc = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
               "config": descriptor(DOCKER_CONFIG, config),
               "layers": [descriptor(DOCKER_LAYER, layer) for layer in layers], **extra}
        return canonical(doc), DOCKER_MANIFEST
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": descriptor(OCI_CONFIG, config),
           "layers": [descriptor(OCI_LAYER, layer) for layer in layers], **extra}
    return canonical(doc), OCI_MANIFEST


def push_image(client: httpx.Client, repo: str, tag: str | None = "latest", layers: int = 1,
               docker: bool = False, layer_size: int = 256, **extra: Any) -> Image:
    """Push random blobs and a manifest naming them; by tag, or by digest when tag is None."""
    config = canonical({"architecture": "amd64", "os": "linux",
                        "moorage-test": uuid.uuid4().hex})
    layer_data = [random_bytes(layer_size) for _ in range(layers)]
    for blob in (config, *layer_data):
        push_blob(client, repo, blob)
    body, media_type = image_manifest(config, layer_data, docker=docker, **extra)
    reference = tag if tag is not None else sha256(body)
    r = put_manifest(client, repo, reference, body, media_type)
    assert r.status_code == 201, (r.status_code, r.text)
    return Image(repo, body, media_type, config, layer_data)


def index_manifest(children: list[dict[str, Any]], docker: bool = False,
                   **extra: Any) -> tuple[bytes, str]:
    media_type = DOCKER_LIST if docker else OCI_INDEX
    return canonical({"schemaVersion": 2, "mediaType": media_type, "manifests": children,
                      **extra}), media_type


def artifact_manifest(artifact_type: str, blobs: list[bytes], subject: dict[str, Any] | None,
                      annotations: dict[str, str] | None = None) -> bytes:
    """An OCI 1.1 artifact: artifactType, the empty config, optional subject/annotations."""
    doc: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2},
        "layers": [descriptor("application/octet-stream", b) for b in blobs],
    }
    if subject is not None:
        doc["subject"] = subject
    if annotations:
        doc["annotations"] = annotations
    return canonical(doc)


# -- errors -------------------------------------------------------------------------------


def error_codes(r: httpx.Response) -> list[str]:
    """The codes of a spec error body, after checking the body has the spec's shape."""
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body, dict) and isinstance(body.get("errors"), list), body
    assert body["errors"], "an error body must list at least one error"
    codes = []
    for error in body["errors"]:
        assert isinstance(error, dict), error
        assert isinstance(error.get("code"), str) and _CODE_RE.match(error["code"]), error
        assert isinstance(error.get("message", ""), str), error
        codes.append(error["code"])
    return codes


def assert_error(r: httpx.Response, status: int, code: str | None) -> None:
    """The response is the spec's JSON error with this status (and code, when given)."""
    assert r.status_code == status, (r.status_code, r.request.method, str(r.request.url),
                                     r.text[:500])
    if r.request.method == "HEAD":
        return  # HEAD responses carry no body to inspect
    codes = error_codes(r)
    if code is not None:
        assert code in codes, (codes, r.text[:500])
