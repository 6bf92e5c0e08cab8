"""What the replication rule tests share: the management API as an administrator, waits on
executions, and artifacts built by hand through the registry client (a multi-arch index with
an SBOM referrer and a cosign `.sig` tag)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from moorage.oci import mediatypes as mt
from moorage.remote import BytesSource, RegistryClient, RemoteConfig
from moorage.signing import artifacts
from moorage.signing.keys import KeyPair
from tests.conftest import ADMIN_PASSWORD
from tests.support.server import MoorageServer, RegistryProcess

ADMIN = ("admin", ADMIN_PASSWORD)
SBOM_TYPE = "application/spdx+json"


# One client for all api() calls, which the tests also poll with: httpx.request() makes a
# client per call, and so loads the CA bundle each time (~30 ms of CPU, measured). Its cookie
# jar is emptied after each call, as with a client per call.
_http = httpx.Client(timeout=120)


def api(server: MoorageServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    kwargs.setdefault("auth", ADMIN)
    try:
        return _http.request(method, f"{server.url}/api/v1{path}", **kwargs)
    finally:
        _http.cookies.clear()


def create_rule(server: MoorageServer, **fields: Any) -> dict[str, Any]:
    reply = api(server, "POST", "/replication/rules", json=fields)
    assert reply.status_code == 201, reply.text
    return reply.json()  # type: ignore[no-any-return]


def executions(server: MoorageServer, rule: str) -> list[dict[str, Any]]:
    reply = api(server, "GET", f"/replication/rules/{rule}/executions?limit=500")
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


def wait_finished(server: MoorageServer, rule: str, count: int = 1,
                  timeout: float = 240.0) -> list[dict[str, Any]]:
    """The rule's executions once at least `count` exist and none is pending or running
    (the timeout only bounds a hang)."""
    deadline = time.monotonic() + timeout
    while True:
        found = executions(server, rule)
        if len(found) >= count and all(e["status"] not in ("pending", "running")
                                       for e in found):
            return found
        assert time.monotonic() < deadline, f"executions still running: {found}"
        time.sleep(0.5)


def run_rule(server: MoorageServer, rule: str, timeout: float = 240.0) -> dict[str, Any]:
    """Run a full sync by hand and wait for its end; the execution."""
    reply = api(server, "POST", f"/replication/rules/{rule}/run")
    assert reply.status_code == 202, reply.text
    execution_id = reply.json()["id"]
    deadline = time.monotonic() + timeout
    while True:
        execution = api(server, "GET", f"/replication/executions/{execution_id}").json()
        if execution["status"] not in ("pending", "running"):
            return execution  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, execution
        time.sleep(0.5)


def client_for(server: RegistryProcess, user: str | None = None, password: str | None = None,
               ca_file: str | None = None) -> RegistryClient:
    return RegistryClient(RemoteConfig(server.url, username=user, password=password,
                                       ca_file=ca_file))


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def push_blob(client: RegistryClient, name: str, data: bytes) -> dict[str, Any]:
    digest = digest_of(data)
    await client.push_blob(name, digest, BytesSource(data))
    return {"digest": digest, "size": len(data)}


async def push_image(client: RegistryClient, name: str, arch: str, layer: bytes,
                     tag: str | None = None) -> dict[str, Any]:
    config = json.dumps({"architecture": arch, "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
           "config": {"mediaType": mt.OCI_CONFIG, **await push_blob(client, name, config)},
           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                       **await push_blob(client, name, layer)}]}
    data = json.dumps(doc).encode()
    digest = await client.put_manifest(name, tag or digest_of(data), data, mt.OCI_MANIFEST)
    return {"mediaType": mt.OCI_MANIFEST, "digest": digest, "size": len(data),
            "platform": {"architecture": arch, "os": "linux"}}


async def push_multiarch(client: RegistryClient, name: str, tag: str,
                         seed: str = "") -> dict[str, Any]:
    """An index of two platforms, an SBOM referring to the index, and a cosign `.sig` tag
    for it. Returns every digest the destination must end up with."""
    children = [await push_image(client, name, arch, f"{seed}{arch} layer {tag}".encode() * 50)
                for arch in ("amd64", "arm64")]
    index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                        "manifests": children}).encode()
    index_digest = await client.put_manifest(name, tag, index, mt.OCI_INDEX)
    subject = {"mediaType": mt.OCI_INDEX, "digest": index_digest, "size": len(index)}
    sbom = json.dumps({"spdxVersion": "SPDX-2.3", "name": f"{name}:{tag}"}).encode()
    sbom_doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": SBOM_TYPE,
                "config": {"mediaType": mt.OCI_EMPTY, "digest": mt.EMPTY_DIGEST, "size": 2},
                "layers": [{"mediaType": SBOM_TYPE, **await push_blob(client, name, sbom)}],
                "subject": subject}
    await push_blob(client, name, mt.EMPTY_JSON)
    sbom_data = json.dumps(sbom_doc).encode()
    sbom_digest = await client.put_manifest(name, digest_of(sbom_data), sbom_data,
                                            mt.OCI_MANIFEST)
    key = KeyPair.generate()
    payload = artifacts.simple_signing_payload(f"example.test/{name}", index_digest)
    layer = artifacts.legacy_signature_layer(
        payload, artifacts.legacy_layer_annotations(key.sign(payload)))
    signature = artifacts.legacy_signature_manifest([layer])
    for blob in signature.blobs:
        await push_blob(client, name, blob.data)
    sig_tag = artifacts.signature_tag(index_digest)
    sig_digest = await client.put_manifest(name, sig_tag, signature.manifest,
                                           signature.media_type)
    return {"index": index_digest, "children": [c["digest"] for c in children],
            "sbom": sbom_digest, "sig_tag": sig_tag, "sig": sig_digest}


async def manifest_digest(client: RegistryClient, name: str, reference: str) -> str | None:
    info = await client.head_manifest(name, reference)
    return info.digest if info else None


def run(coro):  # type: ignore[no-untyped-def]
    """Run a coroutine to its end, in a thread of its own: Playwright's sync API keeps an
    event loop running in the test's thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
