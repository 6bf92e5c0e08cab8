"""What the remote client's tests share: clients for the fixtures' registries, a counting
transport, injectable clock and sleep, and deterministic blob sources of any size."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx

from moorage.oci import mediatypes as mt
from moorage.remote import BytesSource, RegistryClient, RemoteConfig
from moorage.remote.config import Limits, RetryPolicy, Timeouts
from tests.support.server import RegistryProcess

MiB = 1 << 20


class Counting(httpx.AsyncBaseTransport):
    """httpx's own transport, recording each request it sends (method, path, query)."""

    def __init__(self, **kwargs: Any) -> None:
        self.inner = httpx.AsyncHTTPTransport(**kwargs)
        self.requests: list[tuple[str, str, str]] = []
        self.ranges: list[str | None] = []  # the Range header of each request

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path, request.url.query.decode()))
        self.ranges.append(request.headers.get("range"))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def count(self, method: str, contains: str = "") -> int:
        return sum(1 for m, p, _ in self.requests if m == method and contains in p)


class CuttingProxy:
    """A TCP proxy on loopback that drops both sides of one connection once, as soon as
    that connection has carried `cut_after` bytes in one direction: towards the registry (a
    network failure mid-PATCH) or, with `downwards`, towards the client (mid-download)."""

    def __init__(self, upstream_port: int, cut_after: int, downwards: bool = False) -> None:
        self.upstream_port, self.cut_after = upstream_port, cut_after
        self.downwards = downwards
        self.cuts = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    may_cut: bool) -> None:
        carried = 0
        while data := await reader.read(1 << 16):
            carried += len(data)
            if may_cut and self.cuts == 0 and carried > self.cut_after:
                self.cuts += 1
                writer.write(data[: len(data) // 2])
                await writer.drain()
                return
            writer.write(data)
            await writer.drain()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        tasks = [asyncio.create_task(self._pump(reader, up_writer, not self.downwards)),
                 asyncio.create_task(self._pump(up_reader, writer, self.downwards))]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for w in (writer, up_writer):
            w.transport.abort()

    async def aclose(self) -> None:
        if self.server is not None:
            self.server.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sleeps:
    """An injected sleep: records each wait, waits for none."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def client_for(server: RegistryProcess, *, user: str | None = None, password: str | None = None,
               transport: httpx.AsyncBaseTransport | None = None, **kwargs: Any) -> RegistryClient:
    config_fields = {k: kwargs.pop(k) for k in ("ca_file", "insecure", "timeouts", "retry",
                                                "limits") if k in kwargs}
    config = RemoteConfig(server.url, username=user, password=password, **config_fields)
    return RegistryClient(config, transport=transport, **kwargs)


class PatternSource:
    """`size` pseudo-random bytes from a seed, made chunk by chunk (never held whole)."""

    def __init__(self, size: int, seed: int = 1, chunk: int = MiB) -> None:
        self.size, self.seed, self.chunk = size, seed, chunk
        hasher = hashlib.sha256()
        for piece in self._pieces(0):
            hasher.update(piece)
        self.digest = "sha256:" + hasher.hexdigest()
        self.largest_chunk = 0

    def _pieces(self, offset: int) -> "list[bytes] | Any":
        rng = random.Random(self.seed)
        position = 0
        while position < self.size:
            piece = rng.randbytes(min(self.chunk, self.size - position))
            end = position + len(piece)
            if end > offset:
                yield piece[max(0, offset - position):]
            position = end

    async def open(self, offset: int) -> AsyncIterator[bytes]:
        for piece in self._pieces(offset):
            self.largest_chunk = max(self.largest_chunk, len(piece))
            yield piece


async def push_image(client: RegistryClient, name: str, tag: str | None,
                     layer: bytes = b"layer", subject: dict[str, Any] | None = None,
                     artifact_type: str | None = None) -> tuple[str, bytes]:
    """A small OCI image (or, with `subject`, an artifact pointing at another manifest)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
    blobs = []
    for data in (config, layer):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        await client.push_blob(name, digest, BytesSource(data))
        blobs.append({"digest": digest, "size": len(data)})
    doc: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, **blobs[0]},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **blobs[1]}]}
    if subject is not None:
        doc["subject"] = subject
    if artifact_type is not None:
        doc["artifactType"] = artifact_type
    data = json.dumps(doc).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    await client.put_manifest(name, tag or digest, data, mt.OCI_MANIFEST)
    return digest, data


async def digest_read_back(client: RegistryClient, name: str, digest: str, size: int) -> str:
    """The digest of a blob as read back from a registry, hashed here (not by the client)."""
    hasher = hashlib.sha256()
    async with client.open_blob(name, digest, size=size) as blob:
        async for chunk in blob.chunks():
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def fast_retries(attempts: int = 3) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, base_delay=1.0, max_delay=8.0, max_retry_after=60.0)


__all__ = ["Clock", "Counting", "CuttingProxy", "Limits", "MiB", "PatternSource", "Sleeps",
           "Timeouts", "client_for", "digest_read_back", "fast_retries", "push_image"]
