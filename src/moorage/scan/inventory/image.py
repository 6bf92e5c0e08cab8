"""The entry point: the Inventory of an image (or of each platform of an index) held in
Moorage's blob store.

Manifests are JSON the caller hands over, or digests that `manifests` (default: the blob
store, as an OCI layout keeps them) turns into bytes; the config and layers are read through
the `BlobStore` interface in chunks. Each layer's result comes from the per-layer cache when
it has it, so a base layer shared by many images is read once.

Blocking and CPU-bound throughout: a scan job calls it in a worker thread or process
(`asyncio.to_thread(inventory_of, ...)`), never on the event loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from moorage.oci import mediatypes as mt
from moorage.scan.inventory.cache import LayerCache, cache_key
from moorage.scan.inventory.combine import inventory
from moorage.scan.inventory.limits import Limits
from moorage.scan.inventory.read import read_layer, short
from moorage.scan.inventory.records import LayerResult
from moorage.scan.model import Inventory, ScanProblems
from moorage.store.base import BlobStore

MAX_MANIFEST_BYTES = 4 << 20
MAX_CONFIG_BYTES = 1 << 20
MAX_LAYERS = 1000
MAX_PLATFORMS = 256
Manifests = Callable[[str], bytes | None]


class InventoryError(ValueError):
    """The manifest itself cannot be inventoried (not JSON, not an image or index, absent);
    what is wrong inside its layers is an inventory problem instead."""


def inventory_of(store: BlobStore, manifest: bytes | str, *, manifests: Manifests | None = None,
                 cache: LayerCache | None = None, limits: Limits | None = None,
                 platform: str | None = None) -> Inventory:
    """The Inventory of one image: an image manifest, or the `platform` ("linux/amd64") of
    an index; an index without `platform` is refused with the platforms it has."""
    found = inventories_of(store, manifest, manifests=manifests, cache=cache, limits=limits)
    if platform is not None:
        if platform not in found:
            raise InventoryError(f"no image for {platform}; it has {', '.join(found) or 'none'}")
        return found[platform]
    if len(found) != 1:
        raise InventoryError(f"an index of {len(found)} platforms ({', '.join(found)}): "
                             "name one")
    return next(iter(found.values()))


def inventories_of(store: BlobStore, manifest: bytes | str, *,
                   manifests: Manifests | None = None, cache: LayerCache | None = None,
                   limits: Limits | None = None) -> dict[str, Inventory]:
    """One Inventory per platform ("linux/arm64/v8"): of each image of an index (attestation
    manifests left out), or of the one image a manifest is."""
    limits = limits or Limits()
    fetch = manifests or (lambda digest: _blob(store, digest, MAX_MANIFEST_BYTES))
    doc = _document(manifest, fetch)
    reader = _LayerReader(store, cache, limits)
    if not _is_index(doc):
        return {_platform_of_config(store, doc): _image(doc, reader, limits)}
    out: dict[str, Inventory] = {}
    children = [c for c in doc.get("manifests") or [] if isinstance(c, dict)]
    for child in children[:MAX_PLATFORMS]:
        platform = child.get("platform") if isinstance(child.get("platform"), dict) else {}
        annotations = child.get("annotations") if isinstance(child.get("annotations"),
                                                             dict) else {}
        if (platform.get("os") == "unknown"
                or annotations.get("vnd.docker.reference.type") == "attestation-manifest"):
            continue
        digest = child.get("digest")
        if not isinstance(digest, str):
            continue
        image = _document(digest, fetch)
        if _is_index(image):
            continue  # nested indexes are not images of a platform
        name = _platform(platform) or _platform_of_config(store, image)
        out[name if name not in out else f"{name} ({digest[:19]})"] = _image(image, reader,
                                                                              limits)
    return out


def _blob(store: BlobStore, digest: str, cap: int) -> bytes | None:
    size = store.size(digest)
    if size is None or size > cap:
        return None
    return b"".join(store.read(digest, 0, size))


def _document(manifest: bytes | str, fetch: Manifests) -> dict[str, Any]:
    if isinstance(manifest, str):
        data = fetch(manifest)
        if data is None:
            raise InventoryError(f"manifest {manifest[:80]} is not stored here (or too large)")
    else:
        data = manifest
    if len(data) > MAX_MANIFEST_BYTES:
        raise InventoryError("the manifest is larger than 4 MiB")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InventoryError("the manifest is not JSON") from exc
    if not isinstance(doc, dict):
        raise InventoryError("the manifest is not a JSON object")
    return doc


def _is_index(doc: dict[str, Any]) -> bool:
    return doc.get("mediaType") in mt.INDEXES or ("manifests" in doc and "config" not in doc)


def _platform(value: dict[str, Any]) -> str:
    parts = [value.get("os"), value.get("architecture"), value.get("variant")]
    return "/".join(str(p)[:50] for p in parts if isinstance(p, str) and p)


def _platform_of_config(store: BlobStore, doc: dict[str, Any]) -> str:
    config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    digest = config.get("digest")
    try:
        data = _blob(store, digest, MAX_CONFIG_BYTES) if isinstance(digest, str) else None
        found = json.loads(data) if data else {}
    except Exception:  # noqa: BLE001 - a missing or odd config only costs the platform name
        found = {}
    return _platform(found if isinstance(found, dict) else {}) or "unknown"


def _image(doc: dict[str, Any], reader: _LayerReader, limits: Limits) -> Inventory:
    if "layers" not in doc or not isinstance(doc["layers"], list):
        raise InventoryError("not an image manifest (it has no layers)")
    problems = ScanProblems()
    descriptors = [d for d in doc["layers"] if isinstance(d, dict)
                   and isinstance(d.get("digest"), str)]
    if len(descriptors) > MAX_LAYERS:
        problems.add(f"{len(descriptors)} layers; only the first {MAX_LAYERS} were read")
        descriptors = descriptors[:MAX_LAYERS]
    layers = [reader.layer(d["digest"]) for d in descriptors]
    return inventory(layers, limits, problems)


class _LayerReader:
    """Layer results by digest: this call's memo, then the cache, then the blob itself."""

    def __init__(self, store: BlobStore, cache: LayerCache | None, limits: Limits) -> None:
        self._store = store
        self._cache = cache
        self._limits = limits
        self._key = cache_key(limits)
        self._seen: dict[str, LayerResult] = {}

    def layer(self, digest: str) -> LayerResult:
        if digest in self._seen:
            return self._seen[digest]
        result = self._cached(digest)
        if result is None:
            result = self._read(digest)
            if result.complete and self._cache is not None:
                self._cache.put(digest, self._key, result.dumps())
        self._seen[digest] = result
        return result

    def _cached(self, digest: str) -> LayerResult | None:
        if self._cache is None:
            return None
        data = self._cache.get(digest, self._key)
        if data is None:
            return None
        try:
            return LayerResult.loads(data)
        except (ValueError, KeyError, TypeError):
            return None  # a damaged row: read the layer again

    def _read(self, digest: str) -> LayerResult:
        try:
            size = self._store.size(digest)
        except Exception:  # noqa: BLE001 - reported below as not readable
            size = None
        if size is None:
            return LayerResult(digest, problems=[f"layer {short(digest)}: not stored here; "
                                                 "its packages are not known"], complete=False)
        return read_layer(digest, self._store.read(digest, 0, size), self._limits)
