"""Parsing and validating manifests: pure checks, no I/O.

The registry stores manifest bytes exactly as pushed (the digest is of those bytes); this
module only reads them to learn what they reference, so that the service can check that every
blob and child manifest exists, with the size its descriptor declares, before the push is
acknowledged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from moorage.oci import mediatypes as mt
from moorage.oci.digest import parse_digest
from moorage.oci.errors import RegistryError


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a manifest means to the registry: its type and everything it points at."""

    media_type: str
    blobs: tuple[Descriptor, ...] = ()
    children: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEXES

    @property
    def descriptors(self) -> tuple[Descriptor, ...]:
        """Every descriptor the registry checks: blobs, children and the subject."""
        return self.blobs + self.children + ((self.subject,) if self.subject else ())


def _invalid(message: str) -> RegistryError:
    return RegistryError("MANIFEST_INVALID", message)


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise _invalid(f"{where} must be a descriptor object")
    media_type = value.get("mediaType")
    digest = value.get("digest")
    size = value.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise _invalid(f"{where}.mediaType is missing")
    if not isinstance(digest, str):
        raise _invalid(f"{where}.digest is missing")
    try:
        parse_digest(digest)
    except RegistryError as exc:
        raise _invalid(f"{where}.digest: {exc.message}") from None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid(f"{where}.size must be a non-negative integer")
    artifact_type = value.get("artifactType")
    annotations = value.get("annotations")
    return Descriptor(
        media_type, digest, size,
        artifact_type if isinstance(artifact_type, str) else None,
        annotations if isinstance(annotations, dict) else None,
    )


def _descriptors(value: Any, where: str) -> tuple[Descriptor, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _invalid(f"{where} must be a list")
    return tuple(_descriptor(item, f"{where}[{i}]") for i, item in enumerate(value))


def _check_sizes(descriptors: tuple[Descriptor, ...]) -> None:
    """What a manifest alone can tell about sizes: content has one size, so descriptors of
    one digest must agree, and the empty JSON blob is two bytes. Whether a size is that of
    the stored content is the service's check, against the metadata database."""
    sizes: dict[str, int] = {}
    for d in descriptors:
        if d.digest == mt.EMPTY_DIGEST and d.size != len(mt.EMPTY_JSON):
            raise _invalid(f"descriptor of the empty blob {d.digest} declares size {d.size}; "
                           f"it is {len(mt.EMPTY_JSON)} bytes")
        known = sizes.setdefault(d.digest, d.size)
        if known != d.size:
            raise _invalid(f"descriptors of {d.digest} declare two sizes, {known} and {d.size}")


def _media_type(doc: dict[str, Any], content_type: str | None) -> str:
    """Pick the manifest's type from the header and the body, refusing contradictions."""
    declared = doc.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise _invalid("mediaType must be a string")
    header = (content_type or "").split(";")[0].strip().lower() or None
    if header in mt.SCHEMA1_TYPES or declared in mt.SCHEMA1_TYPES or doc.get("schemaVersion") == 1:
        raise _invalid("Docker manifest schema 1 is not supported; push schema 2 or OCI manifests")
    if header in mt.MANIFEST_TYPES:
        if declared and declared != header:
            raise _invalid(f"mediaType {declared!r} does not match Content-Type {header!r}")
        return header
    if declared in mt.MANIFEST_TYPES:
        return declared
    if declared:
        raise _invalid(f"unsupported manifest mediaType {declared!r}")
    # OCI allows omitting mediaType; the shape tells an index from an image manifest.
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "config" in doc:
        return mt.OCI_MANIFEST
    raise _invalid(f"unsupported manifest Content-Type {header!r}")


def parse_manifest(body: bytes, content_type: str | None) -> Manifest:
    """Check a pushed manifest and list what it references; raises MANIFEST_INVALID."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _invalid("manifest is not valid JSON") from None
    except RecursionError:
        raise _invalid("manifest JSON is nested too deeply") from None
    if not isinstance(doc, dict):
        raise _invalid("manifest must be a JSON object")
    media_type = _media_type(doc, content_type)
    if doc.get("schemaVersion") != 2:
        raise _invalid("schemaVersion must be 2")
    subject = _descriptor(doc["subject"], "subject") if doc.get("subject") is not None else None
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _invalid("artifactType must be a string")
    annotations = doc.get("annotations")
    if annotations is None:
        annotations = {}
    if not isinstance(annotations, dict) or not all(
            isinstance(v, str) for v in annotations.values()):
        raise _invalid("annotations must be an object of strings")

    if media_type in mt.INDEXES:
        if "manifests" not in doc:
            raise _invalid("an index needs a manifests list")
        children = _descriptors(doc.get("manifests"), "manifests")
        manifest = Manifest(media_type, (), children, subject, artifact_type, annotations)
        _check_sizes(manifest.descriptors)
        return manifest

    if "config" not in doc:
        raise _invalid("an image manifest needs a config descriptor")
    config = _descriptor(doc["config"], "config")
    if "layers" not in doc and media_type == mt.DOCKER_MANIFEST:
        raise _invalid("a Docker manifest needs a layers list")
    layers = _descriptors(doc.get("layers"), "layers")
    # Foreign layers live elsewhere by design; the registry does not hold their bytes.
    stored = tuple(d for d in layers if d.media_type != mt.DOCKER_FOREIGN_LAYER)
    manifest = Manifest(media_type, (config, *stored), (), subject,
                        artifact_type or config.media_type, annotations)
    _check_sizes(manifest.descriptors)
    return manifest


def accepts(accept: list[str], media_type: str) -> bool:
    """Whether a client's Accept headers admit a stored manifest of this type.

    No Accept header, or a wildcard, admits everything: old clients send none and still work.
    """
    if not accept:
        return True
    kinds: set[str] = set()
    for header in accept:
        for part in header.split(","):
            kind = part.split(";")[0].strip().lower()
            if kind:
                kinds.add(kind)
    if not kinds or "*/*" in kinds or "application/*" in kinds or media_type in kinds:
        return True
    # Clients that list only the generic JSON type predate negotiation; give them what we have.
    return "application/json" in kinds and not (kinds & mt.MANIFEST_TYPES)
