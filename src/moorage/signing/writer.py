"""Signatures written into a repository through the registry core, as a client's push would
write them (quota, policies and events included), never over HTTP to ourselves.

- The legacy `.sig` manifest: the layers already there are read back with their bytes, the
  new one appended (cosign's own read-modify-write), and the manifest pushed again at the
  tag. The read-modify-write runs under the core's per-id lock (`UploadLock`: a file lock
  on one machine, a Redis lease across replicas), so two signers of one image, on any
  workers or replicas, both keep their layer.
- The Sigstore bundle: an OCI 1.1 referrer of the image, pushed by digest.

Blocking parts (the database, the blob store) run through `asyncio.to_thread`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from moorage.registry.service import Registry
from moorage.signing import artifacts
from moorage.signing.errors import SigningError
from moorage.signing.keys import PublicKey
from moorage.signing.signer import Material
from moorage.signing.verify import MAX_LAYERS

MAX_SIGNATURE_LAYERS = MAX_LAYERS  # signatures on one `.sig` manifest (what the verifier reads)
MAX_LAYER_BYTES = 1 << 20  # one signature layer or bundle read back
LOCK_WAIT = 300.0  # how long a signer waits for another's write of the same `.sig` tag


def read_blob(registry: Registry, repository: str, digest: object,
              max_bytes: int) -> bytes | None:
    """A blob the repository may read, if it is at most `max_bytes` (and MAX_LAYER_BYTES);
    None otherwise. Its digest is checked. Blocking."""
    if not isinstance(digest, str):
        return None
    try:
        size = registry.db.blob_size_in_repository(repository, digest)
        if size is None or size > min(max_bytes, MAX_LAYER_BYTES):
            return None
        data = b"".join(registry.store.read(digest))
    except Exception:  # noqa: BLE001 - an unreadable blob is a signature that fails
        return None
    if len(data) != size or "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        return None
    return data


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class SignatureWriter:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def _push_blobs(self, repository: str, blobs: Sequence[artifacts.Blob]) -> None:
        for blob in blobs:
            have = await asyncio.to_thread(self.registry.db.blob_size_in_repository,
                                           repository, blob.digest)
            if have != blob.size:
                await self.registry.push_blob(repository, blob.digest, _once(blob.data),
                                              blob.size)

    async def legacy(self, repository: str, digest: str, material: Material) -> dict[str, Any]:
        """One more layer on the image's `.sig` manifest (the same signature again: none)."""
        tag = artifacts.signature_tag(digest)
        layer = artifacts.legacy_signature_layer(
            material.payload, artifacts.legacy_layer_annotations(material.payload_signature))
        lock_id = "signature-" + hashlib.sha256(f"{repository}\0{tag}".encode()).hexdigest()
        async with self.registry.uploads.upload_lock.hold(lock_id, wait=LOCK_WAIT) as lease:
            try:
                layers = await asyncio.to_thread(self._layers, repository, tag)
                if any(x.digest == layer.digest and x.annotations == layer.annotations
                       for x in layers):
                    return {"tag": tag, "layers": len(layers)}
                if len(layers) >= MAX_SIGNATURE_LAYERS:
                    raise SigningError(f"{repository}:{tag} holds {len(layers)} signatures "
                                       f"already (at most {MAX_SIGNATURE_LAYERS})")
                artifact = artifacts.legacy_signature_manifest([*layers, layer])
                await self._push_blobs(repository, artifact.blobs)
                lease.check()
                pushed = await asyncio.to_thread(self.registry.put_manifest, repository, tag,
                                                 artifact.manifest, artifact.media_type)
            finally:
                lease.end()  # its lock file goes (waiters then take a new one)
        return {"tag": tag, "manifest": pushed.digest, "layers": len(layers) + 1}

    def _layers(self, repository: str, tag: str) -> list[artifacts.Blob]:
        """The layers of the `.sig` manifest there now, with their bytes (to add one)."""
        current = self.registry.db.tag_digest(repository, tag)
        if current is None:
            return []
        stored = self.registry.get_manifest(repository, current, [], pull=False)
        try:
            layers = json.loads(stored.content).get("layers")
        except (ValueError, AttributeError):
            layers = None
        if not isinstance(layers, list):
            raise SigningError(f"{repository}:{tag} is not a signature manifest")
        if len(layers) >= MAX_SIGNATURE_LAYERS:
            raise SigningError(f"{repository}:{tag} holds {len(layers)} signatures already "
                               f"(at most {MAX_SIGNATURE_LAYERS})")
        out = []
        for layer in layers:
            size = layer.get("size") if isinstance(layer, dict) else None
            data = read_blob(self.registry, repository, layer.get("digest"), MAX_LAYER_BYTES) \
                if type(size) is int else None
            if data is None or len(data) != size:
                raise SigningError(f"{repository}:{tag} has a layer that cannot be read")
            notes = layer.get("annotations")
            out.append(artifacts.Blob(str(layer.get("mediaType", "")), data,
                                      dict(notes) if isinstance(notes, dict) else None))
        return out

    async def bundle(self, repository: str, image: Any, material: Material,
                     public: PublicKey) -> dict[str, Any]:
        """The Sigstore bundle of the statement, as a referrer of `image`."""
        bundle = artifacts.sigstore_bundle(material.statement, material.statement_signature,
                                           public)
        artifact = artifacts.bundle_referrer(
            artifacts.Descriptor(image.media_type, image.digest, image.size), bundle)
        await self._push_blobs(repository, artifact.blobs)
        pushed = await asyncio.to_thread(self.registry.put_manifest, repository,
                                         artifact.digest, artifact.manifest,
                                         artifact.media_type)
        return {"manifest": pushed.digest}
