"""An SBOM stored as an OCI 1.1 referrer of its image, through the registry core.

The document becomes the one layer of an artifact manifest whose `artifactType` and layer
media type are the format's (`application/vnd.cyclonedx+json`, `application/spdx+json`),
whose config is the empty descriptor and whose `subject` is the image. So `oras discover`
and `GET /v2/<name>/referrers/<digest>?artifactType=…` find it, replication carries it like
any other manifest, and deleting the image lets GC take it.

Written through `Registry.push_blob` and `Registry.put_manifest`, the same calls a client's
push ends in (quota, policies and events included), never over HTTP to ourselves.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Literal

from moorage.oci import mediatypes as mt
from moorage.oci.errors import RegistryError
from moorage.registry.service import Registry
from moorage.scan.sbom.cyclonedx import MEDIA_TYPE as CYCLONEDX
from moorage.scan.sbom.image import generator_version
from moorage.scan.sbom.spdx import MEDIA_TYPE as SPDX

SbomFormat = Literal["cyclonedx", "spdx"]
MEDIA_TYPES: dict[str, str] = {"cyclonedx": CYCLONEDX, "spdx": SPDX}
# The layer's file name: `oras pull` writes a layer to a file only when it has a title.
FILE_NAMES: dict[str, str] = {"cyclonedx": "sbom.cdx.json", "spdx": "sbom.spdx.json"}
TITLE_ANNOTATION = "org.opencontainers.image.title"
GENERATOR_ANNOTATION = "io.moorage.sbom.generator"
CREATED_ANNOTATION = "org.opencontainers.image.created"
# A document larger than this is refused (one of a few thousand packages is about 1-3 MiB).
MAX_DOCUMENT_BYTES = 64 << 20
# How many existing referrers of the same type are compared for idempotence; an image with
# more SBOMs than that of one format gets one more rather than a slow attach.
MAX_COMPARED = 100


async def attach_sbom(registry: Registry, repository: str, subject_digest: str,
                      document: bytes, format: SbomFormat, *,
                      created: datetime.datetime | None = None) -> str:
    """Store `document` as a referrer of the image `repository@subject_digest`; return the
    referrer manifest's digest. Attaching the same document again changes nothing and
    returns the digest stored before.

    Raises RegistryError (MANIFEST_UNKNOWN when the image is not in the repository,
    DENIED for a quota or policy) and ValueError for an unknown format or a document over
    the size bound.
    """
    media_type = MEDIA_TYPES.get(format)
    if media_type is None:
        raise ValueError(f"unknown SBOM format {format!r}: expected cyclonedx or spdx")
    if len(document) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"the SBOM is {len(document)} bytes; at most {MAX_DOCUMENT_BYTES}")
    subject = await asyncio.to_thread(registry.get_manifest, repository, subject_digest, [],
                                      pull=False)
    if subject.media_type not in mt.MANIFEST_TYPES:
        raise RegistryError("MANIFEST_INVALID",
                            f"{subject_digest} is {subject.media_type}, not an image")
    doc_digest = "sha256:" + hashlib.sha256(document).hexdigest()

    existing = await asyncio.to_thread(_existing, registry, repository, subject_digest,
                                       media_type, doc_digest)
    if existing is not None:
        return existing

    await registry.push_blob(repository, doc_digest, _once(document), len(document))
    created = created or datetime.datetime.now(datetime.timezone.utc)
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": media_type,
        "config": {"mediaType": mt.OCI_EMPTY, "digest": mt.EMPTY_DIGEST,
                   "size": len(mt.EMPTY_JSON)},
        "layers": [{"mediaType": media_type, "digest": doc_digest, "size": len(document),
                    "annotations": {TITLE_ANNOTATION: FILE_NAMES[format]}}],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest,
                    "size": subject.size},
        "annotations": {
            CREATED_ANNOTATION: created.astimezone(datetime.timezone.utc)
            .strftime("%Y-%m-%dT%H:%M:%SZ"),
            GENERATOR_ANNOTATION: f"moorage {generator_version()}",
        },
    }
    body = json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    pushed = await asyncio.to_thread(registry.put_manifest, repository, digest, body,
                                     mt.OCI_MANIFEST)
    return pushed.digest


def stored_sbom(registry: Registry, repository: str, subject_digest: str,
                format: SbomFormat) -> bytes | None:
    """The newest stored SBOM of `format` of an image (by its `created` annotation), as its
    bytes; None when it has none. What `moorage sbom` and the API will answer from. Reads
    the database and the blob store: call it from a worker thread."""
    media_type = MEDIA_TYPES.get(format)
    if media_type is None:
        raise ValueError(f"unknown SBOM format {format!r}: expected cyclonedx or spdx")
    found = registry.db.referrers(repository, subject_digest, media_type)
    found.sort(key=lambda r: ((r.annotations or {}).get(CREATED_ANNOTATION, ""), r.digest),
               reverse=True)
    for ref in found[:MAX_COMPARED]:
        stored = registry.get_manifest(repository, ref.digest, [], pull=False)
        try:
            layers = json.loads(stored.content).get("layers") or []
        except (ValueError, AttributeError):
            continue
        if len(layers) != 1 or layers[0].get("mediaType") != media_type:
            continue  # someone else's artifact of this type, shaped otherwise
        digest, size = str(layers[0].get("digest", "")), layers[0].get("size")
        if not isinstance(size, int) or not 0 <= size <= MAX_DOCUMENT_BYTES:
            continue
        if registry.blob_size(repository, digest) != size:
            continue
        data = b"".join(registry.store.read(digest))
        if "sha256:" + hashlib.sha256(data).hexdigest() == digest:
            return data
    return None


def _existing(registry: Registry, repository: str, subject: str, media_type: str,
              doc_digest: str) -> str | None:
    """The digest of a referrer of this type that already carries this document."""
    for ref in registry.db.referrers(repository, subject, media_type)[:MAX_COMPARED]:
        stored = registry.get_manifest(repository, ref.digest, [], pull=False)
        try:
            layers = json.loads(stored.content).get("layers") or []
        except (ValueError, AttributeError):
            continue
        if len(layers) == 1 and layers[0].get("digest") == doc_digest:
            return ref.digest
    return None


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
