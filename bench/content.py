"""Images for the benchmark and the HTTP calls that put them into a registry.

Both registries receive the same bytes through the same OCI Distribution API calls (monolithic
uploads, cross-repository mounts, manifest PUTs), so their content is identical; only the
credentials differ (Basic admin on Moorage, none on Distribution).
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.rawhttp import Connection, HTTPError, Response, path_of  # noqa: E402
from tests.support.images import (CREATED, MEDIA_CONFIG, MEDIA_LAYER_GZIP,  # noqa: E402
                                  MEDIA_MANIFEST, Descriptor, Entry, canonical_json,
                                  gzip_bytes, init_layout, make_tar, sha256_digest,
                                  tag_in_layout, write_blob)

MiB = 1 << 20
ACCEPT = ", ".join([MEDIA_MANIFEST, "application/vnd.oci.image.index.v1+json",
                    "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json"])
T = TypeVar("T")


@dataclass
class Image:
    manifest: bytes
    digest: str
    config: tuple[str, bytes]
    layers: list[tuple[str, bytes]]

    @property
    def blobs(self) -> list[tuple[str, bytes]]:
        return [*self.layers, self.config]


def _config(diff_ids: list[str], label: str) -> bytes:
    return canonical_json({
        "created": CREATED, "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/true"], "Labels": {"bench": label}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })


def _manifest(config: bytes, layers: list[bytes]) -> bytes:
    return canonical_json({
        "schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": sha256_digest(config),
                   "size": len(config)},
        "layers": [{"mediaType": MEDIA_LAYER_GZIP, "digest": sha256_digest(b), "size": len(b)}
                   for b in layers],
    })


def small_image(label: str, layer_size: int = 16 << 10, seed: int = 0) -> Image:
    """A one-layer image of `layer_size` random bytes; distinct labels give distinct blobs."""
    rng = random.Random(f"{label}/{seed}")
    tar = make_tar([Entry("data/"), Entry(f"data/{label}.bin", rng.randbytes(layer_size))])
    layer = gzip_bytes(tar, level=1)
    config = _config([sha256_digest(tar)], label)
    manifest = _manifest(config, [layer])
    return Image(manifest, sha256_digest(manifest), (sha256_digest(config), config),
                 [(sha256_digest(layer), layer)])


def push_layout(dest: Path, tag: str, big_mib: int, small_layers: int, small_kib: int,
                seed: int) -> tuple[str, int, Descriptor]:
    """An OCI layout holding one image: one `big_mib` MiB layer and `small_layers` small ones.

    Layer bytes are random (seeded), so nothing deduplicates against earlier rounds. The big
    layer is gzip with stored blocks (level 0): a real gzip stream that skopeo pushes as is,
    built in a second instead of minutes. Returns (manifest digest, bytes of all blobs, the big
    layer's descriptor).
    """
    root = init_layout(dest)
    rng = random.Random(seed)
    big = b"".join(rng.randbytes(MiB) for _ in range(big_mib))  # randbytes(256 MiB) overflows
    tars = [make_tar([Entry("data/"), Entry("data/big.bin", big)])]
    del big
    tars += [make_tar([Entry("data/"), Entry(f"data/small-{i}.bin", rng.randbytes(small_kib << 10))])
             for i in range(small_layers)]
    layers = [write_blob(root, gzip_bytes(t, level=0 if i == 0 else 1), MEDIA_LAYER_GZIP)
              for i, t in enumerate(tars)]
    config = _config([sha256_digest(t) for t in tars], f"push-{seed}")
    config_desc = write_blob(root, config, MEDIA_CONFIG)
    manifest = canonical_json({"schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
                               "config": config_desc.to_json(),
                               "layers": [d.to_json() for d in layers]})
    desc: Descriptor = write_blob(root, manifest, MEDIA_MANIFEST)
    tag_in_layout(root, tag, desc)
    total = sum(d.size for d in layers) + config_desc.size + desc.size
    return desc.digest, total, layers[0]


# -- registry calls ---------------------------------------------------------------------------
class SeedError(RuntimeError):
    pass


def _expect(resp: Response, statuses: Iterable[int], what: str) -> Response:
    if resp.status not in statuses:
        raise SeedError(f"{what}: HTTP {resp.status} {resp.body[:300]!r}")
    return resp


def with_digest(location: str, digest: str) -> str:
    path = path_of(location)
    return f"{path}{'&' if '?' in path else '?'}digest={quote(digest)}"


async def start_upload(conn: Connection, repo: str, auth: dict[str, str]) -> str:
    """POST …/blobs/uploads/: the new upload's Location."""
    started = _expect(await conn.request("POST", f"/v2/{repo}/blobs/uploads/", auth), (202,),
                      f"start upload to {repo}")
    return started.headers["location"]


async def upload_blob(conn: Connection, repo: str, digest: str, data: bytes | memoryview,
                      auth: dict[str, str]) -> None:
    """A monolithic upload: POST, then PUT with the whole body."""
    location = await start_upload(conn, repo, auth)
    _expect(await conn.request("PUT", with_digest(location, digest),
                               {**auth, "content-type": "application/octet-stream"}, data),
            (201,), f"upload {digest[:19]} to {repo}")


async def mount_blob(conn: Connection, repo: str, digest: str, source: str,
                     auth: dict[str, str]) -> None:
    _expect(await conn.request(
        "POST", f"/v2/{repo}/blobs/uploads/?mount={quote(digest)}&from={quote(source)}", auth),
        (201,), f"mount {digest[:19]} from {source} into {repo}")


async def put_manifest(conn: Connection, repo: str, reference: str, manifest: bytes,
                       auth: dict[str, str]) -> None:
    _expect(await conn.request("PUT", f"/v2/{repo}/manifests/{reference}",
                               {**auth, "content-type": MEDIA_MANIFEST}, manifest),
            (201,), f"put manifest {repo}:{reference}")


async def post_blob(conn: Connection, repo: str, digest: str, data: bytes,
                    auth: dict[str, str]) -> None:
    """A monolithic upload in one request (POST ?digest=); Distribution 2.8 lacks it."""
    _expect(await conn.request("POST", f"/v2/{repo}/blobs/uploads/?digest={quote(digest)}",
                               {**auth, "content-type": "application/octet-stream"}, data),
            (201,), f"post {digest[:19]} to {repo}")


async def push_image(conn: Connection, repo: str, tag: str, image: Image,
                     auth: dict[str, str], one_request: bool = False) -> None:
    for digest, data in image.blobs:
        if one_request:
            await post_blob(conn, repo, digest, data, auth)
        else:
            await upload_blob(conn, repo, digest, data, auth)
    await put_manifest(conn, repo, tag, image.manifest, auth)


async def pool(host: str, port: int, connections: int, items: list[T],
               job: Callable[[Connection, T], Awaitable[None]]) -> None:
    """Run `job(conn, item)` for every item on `connections` keep-alive connections."""
    queue: asyncio.Queue[T] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)

    async def worker() -> None:
        conn = Connection(host, port)
        try:
            while True:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await job(conn, item)
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(max(1, min(connections, len(items))))))


async def token(host: str, port: int, basic: str, scopes: list[str],
                service: str = "moorage") -> str:
    """A bearer token from Moorage's /auth/token (the Docker token flow, Basic credentials)."""
    conn = Connection(host, port)
    try:
        query = "&".join([f"service={service}", *(f"scope={quote(s)}" for s in scopes)])
        resp = _expect(await conn.request("GET", f"/auth/token?{query}",
                                          {"authorization": basic}), (200,), "token")
        return str(json.loads(resp.body)["token"])
    finally:
        await conn.close()


async def tokens_for(host: str, port: int, basic: str, repos: list[str], action: str = "pull",
                     connections: int = 8) -> dict[str, str]:
    """One token per repository, as a client's token cache would hold them."""
    found: dict[str, str] = {}

    async def one(conn: Connection, repo: str) -> None:
        query = f"service=moorage&scope={quote(f'repository:{repo}:{action}')}"
        resp = _expect(await conn.request("GET", f"/auth/token?{query}",
                                          {"authorization": basic}), (200,), "token")
        found[repo] = str(json.loads(resp.body)["token"])

    await pool(host, port, connections, repos, one)
    return found


async def walk(conn: Connection, first: str, key: str, auth: dict[str, str]) -> tuple[int, int]:
    """Follow `Link: <…>; rel="next"` from `first`; returns (items, pages)."""
    path: str | None = first
    items = pages = 0
    while path:
        resp = await conn.request("GET", path, auth)
        if resp.status != 200:
            raise HTTPError(f"GET {path}: HTTP {resp.status} {resp.body[:200]!r}")
        items += len(json.loads(resp.body)[key] or [])
        pages += 1
        link = resp.headers.get("link")
        path = path_of(link.split(";")[0].strip().strip("<>")) if link else None
    return items, pages
