"""The two ends of a copy: this instance's own registry (`LocalEndpoint`, through the core
`Registry`, no HTTP) or another registry (`RemoteEndpoint`, through `remote.RegistryClient`).

Both answer the same small set of questions (does the manifest exist, what are its bytes,
does the blob exist, stream it from an offset, write it, list referrers and tags), so the
copy engine (copy.py) never asks which side is which. Everything is async; the local side
runs its blocking database and file work in worker threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Protocol

from moorage.oci import mediatypes as mt
from moorage.oci.errors import RegistryError
from moorage.oci.manifest import Descriptor, parse_manifest
from moorage.remote.auth import repository_scope
from moorage.remote import (MANIFEST_ACCEPT, BlobSource, ManifestInfo, RegistryClient,
                            RemoteError, RemoteManifest, RemoteNotFound)

if TYPE_CHECKING:
    from moorage.registry.service import Registry
    from moorage.store.base import BlobStore

# How many bytes one local append (a resumable step) holds: a crash loses at most this much.
LOCAL_SEGMENT = 32 << 20


class ResumeStore(Protocol):
    """Where an unfinished blob upload is remembered between attempts (and restarts): the
    upload's location at the destination, by (destination repository, digest)."""

    def get(self, repository: str, digest: str) -> str | None: ...
    def put(self, repository: str, digest: str, location: str) -> None: ...
    def drop(self, repository: str, digest: str) -> None: ...


class NoResume:
    """Nothing remembered: an interrupted blob starts again from byte 0."""

    def get(self, repository: str, digest: str) -> str | None:
        return None

    def put(self, repository: str, digest: str, location: str) -> None:
        pass

    def drop(self, repository: str, digest: str) -> None:
        pass


class Endpoint(Protocol):
    label: str

    def same_registry(self, other: "Endpoint") -> bool: ...
    async def head_manifest(self, name: str, reference: str) -> ManifestInfo | None: ...
    async def get_manifest(self, name: str, reference: str) -> RemoteManifest: ...
    async def put_manifest(self, name: str, reference: str, data: bytes,
                           media_type: str) -> str: ...
    async def delete_manifest(self, name: str, digest: str) -> bool: ...
    async def delete_tag(self, name: str, tag: str) -> bool: ...
    async def blob_size(self, name: str, digest: str) -> int | None: ...
    def source(self, name: str, digest: str, size: int) -> BlobSource: ...
    async def mount_blob(self, name: str, digest: str, source_name: str) -> bool: ...
    async def write_blob(self, name: str, digest: str, source: BlobSource,
                         resume: ResumeStore) -> int: ...
    async def referrers(self, name: str, digest: str) -> list[Descriptor]: ...
    async def tags(self, name: str) -> list[str]: ...
    async def catalog(self) -> list[str]: ...


class RemoteEndpoint:
    """Another registry. A blob larger than the client's `monolithic_max` goes in chunks
    whose upload location is remembered, so that an attempt after a crash asks the registry
    how far it got and sends only the rest."""

    def __init__(self, client: RegistryClient, label: str = "") -> None:
        self.client = client
        self.label = label or client.registry

    def same_registry(self, other: Endpoint) -> bool:
        return isinstance(other, RemoteEndpoint) and self.client.same_registry(other.client)

    async def head_manifest(self, name: str, reference: str) -> ManifestInfo | None:
        return await self.client.head_manifest(name, reference)

    async def get_manifest(self, name: str, reference: str) -> RemoteManifest:
        return await self.client.get_manifest(name, reference)

    async def put_manifest(self, name: str, reference: str, data: bytes,
                           media_type: str) -> str:
        return await self.client.put_manifest(name, reference, data, media_type)

    async def delete_manifest(self, name: str, digest: str) -> bool:
        return await self.client.delete_manifest(name, digest)

    async def delete_tag(self, name: str, tag: str) -> bool:
        """A DELETE of the tag itself (OCI 1.1; Moorage), so that the manifest and its other
        tags stay. A registry that deletes only by digest (Distribution 2.8 answers 400 or
        405) loses the manifest the tag names, with every tag on it: the nearest it has."""
        session = self.client.session
        reply = await session.request(
            "DELETE", session.url(f"/v2/{name}/manifests/{tag}"),
            scopes=(repository_scope(name, "delete"),), what=f"tag {tag} (DELETE)",
            repository=name, read_limit=self.client.limits.error_bytes)
        if reply.status in (200, 202, 204):
            return True
        info = await self.client.head_manifest(name, tag)
        if info is None:
            return False
        if reply.status not in (400, 405):
            raise session.fail(reply, f"tag {tag} (DELETE)", name)
        return await self.client.delete_manifest(name, info.digest)

    async def blob_size(self, name: str, digest: str) -> int | None:
        return await self.client.blob_size(name, digest, for_push=True)

    def source(self, name: str, digest: str, size: int) -> BlobSource:
        return self.client.source(name, digest, size)

    async def mount_blob(self, name: str, digest: str, source_name: str) -> bool:
        return await self.client.mount_blob(name, digest, source_name)

    async def write_blob(self, name: str, digest: str, source: BlobSource,
                         resume: ResumeStore) -> int:
        if source.size <= self.client.limits.monolithic_max:
            return (await self.client.push_blob(name, digest, source,
                                                check_exists=False)).sent
        upload = None
        location = resume.get(name, digest)
        if location:
            try:
                upload = await self.client.resume_upload(name, location)
            except RemoteError:
                upload = None  # the registry forgot it: start again
        if upload is None:
            upload = await self.client.start_upload(name)
            resume.put(name, digest, upload.location)
        result = await upload.send(source, digest)
        resume.drop(name, digest)
        return result.sent

    async def referrers(self, name: str, digest: str) -> list[Descriptor]:
        return await self.client.referrers(name, digest)

    async def tags(self, name: str) -> list[str]:
        try:
            return [tag async for tag in self.client.tags(name)]
        except RemoteNotFound:
            return []

    async def catalog(self) -> list[str]:
        return [name async for name in self.client.catalog()]


def _not_found(exc: RegistryError) -> bool:
    return exc.code in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN")


class LocalEndpoint:
    """This instance's registry. Writes go through the core's checks (quotas, immutability,
    policies) and announce events like any push; the caller wraps a copy in
    `events.acting_as("replication:<rule>")` so those events name the rule, which is what
    keeps them from triggering push rules again (service.py)."""

    label = "local"

    def __init__(self, registry: Registry, owner: str | None = None) -> None:
        self.registry = registry
        self.owner = owner

    def same_registry(self, other: Endpoint) -> bool:
        return isinstance(other, LocalEndpoint)

    async def head_manifest(self, name: str, reference: str) -> ManifestInfo | None:
        try:
            stored = await asyncio.to_thread(self.registry.get_manifest,
                                             name, reference, list(MANIFEST_ACCEPT), False)
        except RegistryError as exc:
            if _not_found(exc):
                return None
            raise
        return ManifestInfo(stored.digest, stored.media_type, stored.size)

    async def get_manifest(self, name: str, reference: str) -> RemoteManifest:
        stored = await asyncio.to_thread(self.registry.get_manifest,
                                         name, reference, list(MANIFEST_ACCEPT), False)
        parsed = parse_manifest(stored.content, stored.media_type)
        return RemoteManifest(stored.digest, stored.media_type, stored.content, parsed)

    async def put_manifest(self, name: str, reference: str, data: bytes,
                           media_type: str) -> str:
        pushed = await asyncio.to_thread(self.registry.put_manifest,
                                         name, reference, data, media_type)
        return str(pushed.digest)

    async def delete_manifest(self, name: str, digest: str) -> bool:
        return await self._delete(name, digest)

    async def delete_tag(self, name: str, tag: str) -> bool:
        return await self._delete(name, tag)

    async def _delete(self, name: str, reference: str) -> bool:
        try:
            await asyncio.to_thread(self.registry.delete_manifest,
                                    name, reference)
        except RegistryError as exc:
            if _not_found(exc):
                return False
            raise
        return True

    async def blob_size(self, name: str, digest: str) -> int | None:
        try:
            return int(await asyncio.to_thread(self.registry.blob_size,
                                               name, digest))
        except RegistryError as exc:
            if _not_found(exc):
                return None
            raise

    def source(self, name: str, digest: str, size: int) -> BlobSource:
        return LocalBlobSource(self.registry.store, digest, size)

    async def mount_blob(self, name: str, digest: str, source_name: str) -> bool:
        size = await asyncio.to_thread(self.registry.mount,
                                       name, digest, source_name)
        return size is not None

    async def write_blob(self, name: str, digest: str, source: BlobSource,
                         resume: ResumeStore) -> int:
        """Stream into a staged upload in segments of LOCAL_SEGMENT bytes (each appended
        all or nothing), remembering the upload id, then commit it: the upload manager
        hashes the whole and refuses a mismatch, so nothing unverified becomes visible."""
        uploads = self.registry.uploads
        upload_id = resume.get(name, digest)
        offset = 0
        if upload_id:
            try:
                offset = await uploads.offset(name, upload_id)
            except RegistryError:
                upload_id = None
        if not upload_id:
            upload_id = await uploads.start(name, self.owner)
            resume.put(name, digest, upload_id)
            offset = 0
        sent = 0
        stream = source.open(offset)
        try:
            async for segment in _segments(stream, LOCAL_SEGMENT):
                offset = await uploads.append(name, upload_id, _once(segment), offset,
                                              len(segment))
                sent += len(segment)
        finally:
            await stream.aclose()
        try:
            await self.registry.finish_upload(name, upload_id, digest, None,
                                              None)
        finally:
            resume.drop(name, digest)
        return sent

    async def referrers(self, name: str, digest: str) -> list[Descriptor]:
        body = await asyncio.to_thread(self.registry.referrers,
                                       name, digest, None)
        return list(parse_manifest(body, mt.OCI_INDEX).children)

    async def tags(self, name: str) -> list[str]:
        try:
            return list(await asyncio.to_thread(self.registry.tags,
                                                name, None, None))
        except RegistryError as exc:
            if _not_found(exc):
                return []
            raise

    async def catalog(self) -> list[str]:
        return list(await asyncio.to_thread(self.registry.catalog,
                                            None, None))


async def _segments(stream: AsyncIterator[bytes], size: int) -> AsyncIterator[bytes]:
    """Regroup a chunk stream into pieces of `size` bytes (the last one shorter). A segment
    is held in memory: LOCAL_SEGMENT bounds it."""
    pending: list[bytes] = []
    held = 0
    async for chunk in stream:
        pending.append(chunk)
        held += len(chunk)
        while held >= size:
            joined = b"".join(pending)
            yield joined[:size]
            rest = joined[size:]
            pending, held = ([rest] if rest else []), len(rest)
    if held:
        yield b"".join(pending)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class LocalBlobSource:
    """A blob of this instance's store, read in a worker thread one chunk at a time."""

    def __init__(self, store: BlobStore, digest: str, size: int, chunk: int = 1 << 20) -> None:
        self.store, self.digest, self.size, self._chunk = store, digest, size, chunk

    async def open(self, offset: int) -> AsyncIterator[bytes]:
        reader = self.store.read(self.digest, offset, None, self._chunk)
        done = object()
        try:
            while True:
                chunk = await asyncio.to_thread(next, reader, done)
                if chunk is done:
                    return
                yield chunk  # type: ignore[misc]
        finally:
            close: Callable[[], None] | None = getattr(reader, "close", None)
            if close is not None:
                await asyncio.to_thread(close)

