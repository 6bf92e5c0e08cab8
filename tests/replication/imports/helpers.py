"""What the import tests share: the source's content (seeded straight through the registry
client), the import API as an administrator, and waits on an import."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from moorage.oci import mediatypes as mt
from moorage.remote import BytesSource, RegistryClient, RemoteConfig
from tests.replication.rules.conftest import BASIC_PASSWORD, BASIC_USER
from tests.replication.rules.helpers import ADMIN, api, digest_of
from tests.support.server import MoorageServer, RegistryProcess

LAYER = 24 << 10  # bytes of each image's layer (distinct per repository)
BULK = 190  # bulk/app-000 … bulk/app-189
SMALL = ("team/a", "team/b", "team/c", "team/d", "team/e",
         "other/a", "other/b", "other/c", "other/d", "other/e")
FINISHED = ("succeeded", "failed", "cancelled")


@dataclass
class Seeded:
    """What the source holds: repository → (tag, manifest digest), and the bytes of the
    blobs each image has (what an import fetches for it)."""

    images: dict[str, tuple[str, str]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)

    def named(self, *prefixes: str) -> dict[str, tuple[str, str]]:
        return {k: v for k, v in self.images.items() if k.split("/")[0] in prefixes}


def source_auth(ca_file: str) -> dict[str, Any]:
    return {"username": BASIC_USER, "password": BASIC_PASSWORD,
            "ca_pem": open(ca_file).read()}


async def _image(client: RegistryClient, name: str, index: int) -> tuple[str, int]:
    """A small image of its own: a distinct layer and config (pseudo-random bytes)."""
    import hashlib
    layer = b"".join(hashlib.sha256(f"{name}/{index}/{i}".encode()).digest()
                     for i in range(LAYER // 32))
    config = json.dumps({"architecture": "amd64", "os": "linux", "name": name,
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    for blob in (layer, config):
        await client.push_blob(name, digest_of(blob), BytesSource(blob))
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
           "config": {"mediaType": mt.OCI_CONFIG, "digest": digest_of(config),
                      "size": len(config)},
           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                       "digest": digest_of(layer), "size": len(layer)}]}
    digest = await client.put_manifest(name, "1.0", json.dumps(doc).encode(), mt.OCI_MANIFEST)
    return digest, len(layer) + len(config)


async def seed(source: RegistryProcess, ca_file: str) -> Seeded:
    seeded = Seeded()
    names = [f"bulk/app-{i:03d}" for i in range(BULK)] + list(SMALL)
    gate = asyncio.Semaphore(8)
    async with RegistryClient(RemoteConfig(source.url, username=BASIC_USER,
                                           password=BASIC_PASSWORD, ca_file=ca_file)) as client:
        async def one(index: int, name: str) -> None:
            async with gate:
                digest, size = await _image(client, name, index)
            seeded.images[name] = ("1.0", digest)
            seeded.sizes[name] = size
        await asyncio.gather(*(one(i, n) for i, n in enumerate(names)))
    return seeded


def start_import(server: MoorageServer, **fields: Any) -> dict[str, Any]:
    reply = api(server, "POST", "/imports", json=fields)
    assert reply.status_code == 202, reply.text
    return reply.json()  # type: ignore[no-any-return]


def show(server: MoorageServer, import_id: int) -> dict[str, Any]:
    reply = api(server, "GET", f"/imports/{import_id}")
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


def wait_finished(server: MoorageServer, import_id: int,
                  timeout: float = 900.0) -> dict[str, Any]:
    """The import once it ended (the timeout only bounds a hang)."""
    deadline = time.monotonic() + timeout
    while True:
        found = show(server, import_id)
        if found["status"] in FINISHED:
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.5)


async def digests_at(server: MoorageServer, wanted: dict[str, tuple[str, str]],
                     prefix: str = "") -> dict[str, str | None]:
    """repository → the digest its tag names at `server` (None: missing)."""
    found: dict[str, str | None] = {}
    gate = asyncio.Semaphore(8)
    async with RegistryClient(RemoteConfig(server.url, username=ADMIN[0],
                                           password=ADMIN[1])) as client:
        async def one(name: str, tag: str) -> None:
            async with gate:
                info = await client.head_manifest(f"{prefix}{name}", tag)
            found[name] = info.digest if info else None
        await asyncio.gather(*(one(n, t) for n, (t, _) in wanted.items()))
    return found


def expected(wanted: dict[str, tuple[str, str]]) -> dict[str, str | None]:
    return {name: digest for name, (_, digest) in wanted.items()}
