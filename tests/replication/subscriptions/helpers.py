"""What the subscription tests share: images pushed to the upstream (Distribution), with the
referrers-index tag a client such as oras or cosign keeps where the registry has no
referrers API, and waits on subscription executions."""

from __future__ import annotations

import json
import time
from typing import Any

from moorage.oci import mediatypes as mt
from moorage.replication.copy import fallback_tag
from moorage.remote import RegistryClient, RemoteConfig, RemoteNotFound
from tests.remote.conftest import Distribution
from tests.replication.rules.conftest import BASIC_PASSWORD, BASIC_USER
from tests.replication.rules.helpers import (ADMIN, api, client_for, push_image,
                                             push_multiarch, run)
from tests.support.certs import Authority
from tests.support.server import MoorageServer

UPSTREAM = "upstream/app"


def upstream_client(distribution: Distribution, authority: Authority) -> RegistryClient:
    return RegistryClient(RemoteConfig(distribution.url, username=BASIC_USER,
                                       password=BASIC_PASSWORD,
                                       ca_file=str(authority.ca_file)))


def push_upstream(distribution: Distribution, authority: Authority, tags: list[str],
                  seed: str = "", name: str = UPSTREAM) -> dict[str, str]:
    """One small image per tag; tag → digest."""
    async def push() -> dict[str, str]:
        async with upstream_client(distribution, authority) as client:
            return {tag: (await push_image(client, name, "amd64",
                                           f"{seed} layer of {tag}".encode() * 20,
                                           tag))["digest"] for tag in tags}
    return run(push())  # type: ignore[no-any-return]


def push_signed_upstream(distribution: Distribution, authority: Authority, tag: str,
                         name: str = UPSTREAM) -> dict[str, Any]:
    """A multi-arch index with an SBOM referrer and a cosign `.sig` tag, and the index tagged
    `sha256-<hex>` that lists the SBOM (Distribution 2.8 has no referrers API)."""
    async def push() -> dict[str, Any]:
        async with upstream_client(distribution, authority) as client:
            pushed = await push_multiarch(client, name, tag, seed="subscription")
            sbom = await client.get_manifest(name, pushed["sbom"])
            index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
                {"mediaType": sbom.media_type, "digest": sbom.digest, "size": len(sbom.data),
                 "artifactType": sbom.manifest.artifact_type}]}).encode()
            await client.put_manifest(name, fallback_tag(pushed["index"]), index, mt.OCI_INDEX)
            return pushed
    return run(push())  # type: ignore[no-any-return]


def subscription(distribution: Distribution, authority: Authority, name: str,
                 repository: str, **fields: Any) -> dict[str, Any]:
    """The fields of a subscription following UPSTREAM on `distribution`."""
    return {"name": name, "url": distribution.url, "upstream": UPSTREAM,
            "username": BASIC_USER, "password": BASIC_PASSWORD,
            "ca_pem": authority.ca_file.read_text(), "repository": repository, **fields}


def create(server: MoorageServer, body: dict[str, Any]) -> dict[str, Any]:
    reply = api(server, "POST", "/subscriptions", json=body)
    assert reply.status_code == 201, reply.text
    return reply.json()  # type: ignore[no-any-return]


def run_subscription(server: MoorageServer, name: str,
                     timeout: float = 240.0) -> dict[str, Any]:
    """Run by hand and wait for the end (the timeout only bounds a hang); the execution."""
    reply = api(server, "POST", f"/subscriptions/{name}/run")
    assert reply.status_code == 202, reply.text
    number = reply.json()["id"]
    deadline = time.monotonic() + timeout
    while True:
        execution = api(server, "GET", f"/subscriptions/executions/{number}").json()
        if execution["status"] not in ("pending", "running"):
            return execution  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, execution
        time.sleep(0.5)


def log_of(server: MoorageServer, execution: dict[str, Any]) -> str:
    reply = api(server, "GET", f"/subscriptions/executions/{execution['id']}/log")
    return reply.json()["log"]  # type: ignore[no-any-return]


def local_tags(server: MoorageServer, repository: str) -> dict[str, str]:
    """tag → digest of a repository on the Moorage server (cosign tags included)."""
    async def read() -> dict[str, str]:
        async with client_for(server, *ADMIN) as client:
            out = {}
            try:
                async for tag in client.tags(repository):
                    info = await client.head_manifest(repository, tag)
                    if info is not None:
                        out[tag] = info.digest
            except RemoteNotFound:  # a repository not there yet has no tags
                pass
            return out
    return run(read())  # type: ignore[no-any-return]
