"""What a person looking at a repository wants to know: each tag's size and platforms, a
manifest's layers and config, an index's children, and what refers to it (signatures, SBOMs,
attestations).

Read-only, and bounded everywhere: pages of tags come from the database a page at a time;
a manifest's lists, a config's size, the referrers tree's depth and breadth all have a
ceiling, and what is cut says so (`truncated`). A manifest's summary (its size and
platforms) depends only on immutable content, so it is kept per digest in this process.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moorage.db.browse import BrowseStore, ManifestRow
from moorage.oci import mediatypes as mt
from moorage.oci.digest import is_digest, parse_digest
from moorage.oci.errors import RegistryError
from moorage.oci.names import check_name, lookup_kind
from moorage.store.base import BlobStore

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
IMAGE_CONFIGS = frozenset({mt.OCI_CONFIG, DOCKER_CONFIG})
MAX_CONFIG_BYTES = 1 << 20  # a config larger than this is described, not read
MAX_ITEMS = 1000  # layers, children, history entries, env entries, labels shown
MAX_TEXT = 4096  # characters of one value (a history line, a label) shown
MAX_REFERRER_DEPTH = 4  # referrers of referrers of ... this many levels down
MAX_REFERRERS = 200  # nodes in a referrers tree
MAX_TAGS_SHOWN = 100  # tags named on a manifest's page
SUMMARY_CACHE = 20_000  # manifest summaries kept per process
SUPPLY_CHAIN_SUFFIXES = {"sig": "signature", "att": "attestation", "sbom": "sbom"}


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None

    @property
    def label(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    @property
    def known(self) -> bool:
        return self.os != "unknown" and self.architecture != "unknown"


@dataclass(frozen=True, slots=True)
class PlatformSize:
    """One platform of an index: the child manifest for it, and that image's size."""

    platform: Platform
    digest: str
    size: int | None  # config and layers; None when the child is not stored here

    @property
    def os(self) -> str:
        return self.platform.os

    @property
    def architecture(self) -> str:
        return self.platform.architecture

    @property
    def variant(self) -> str | None:
        return self.platform.variant

    @property
    def label(self) -> str:
        return self.platform.label


@dataclass(frozen=True, slots=True)
class Summary:
    """A manifest at a glance."""

    kind: str  # image | index | artifact | unknown
    size: int | None  # image: config + layers; index: its images' distinct blobs
    platforms: tuple[PlatformSize, ...] = ()
    blobs: tuple[tuple[str, int], ...] = ()  # (digest, size) of an image's config and layers


@dataclass(frozen=True, slots=True)
class TagInfo:
    name: str
    digest: str
    updated_at: float
    pulled_at: float | None
    media_type: str | None
    artifact_type: str | None
    kind: str
    size: int | None
    platforms: tuple[PlatformSize, ...]
    immutable: bool
    immutable_rule: int | None
    referrer: bool  # its manifest refers to another (a signature, an SBOM…)


@dataclass(frozen=True, slots=True)
class Layer:
    digest: str
    media_type: str
    size: int
    title: str | None = None  # org.opencontainers.image.title (artifacts' files)
    foreign: bool = False  # stored elsewhere by design (Windows base layers)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    created: str | None
    created_by: str | None
    comment: str | None
    empty_layer: bool


@dataclass
class ImageConfig:
    digest: str
    media_type: str
    size: int
    read: bool = False  # whether the fields below come from the blob
    note: str | None = None  # why not, when it was not read
    created: str | None = None
    author: str | None = None
    architecture: str | None = None
    os: str | None = None
    variant: str | None = None
    os_version: str | None = None
    user: str | None = None
    working_dir: str | None = None
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    exposed_ports: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    stop_signal: str | None = None
    history: list[HistoryEntry] = field(default_factory=list)
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Child:
    digest: str
    media_type: str
    size: int  # of the child manifest itself
    platform: Platform | None
    image_size: int | None  # its config and layers, when stored here
    attestation: bool = False  # buildx's attestation manifest for a sibling


@dataclass
class ReferrerNode:
    digest: str
    media_type: str
    artifact_type: str | None
    size: int
    kind: str  # signature | sbom | attestation | artifact
    tag: str | None = None  # found under the tag scheme (sha256-<hex>.sig), not as a referrer
    created: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    referrers: list["ReferrerNode"] = field(default_factory=list)


@dataclass
class ManifestInfo:
    repository: str
    digest: str
    media_type: str
    size: int
    kind: str
    artifact_type: str | None
    pushed_at: float | None
    tags: list[str]
    annotations: dict[str, str]
    subject: str | None
    total_size: int | None
    config: ImageConfig | None = None
    layers: list[Layer] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)
    indexes: list[str] = field(default_factory=list)  # indexes here that list this manifest
    referrers: list[ReferrerNode] = field(default_factory=list)
    referrers_truncated: bool = False
    truncated: bool = False


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:MAX_TEXT]


def _strings(value: Any) -> list[str] | None:
    if not isinstance(value, list):
        return None
    return [str(v)[:MAX_TEXT] for v in value[:MAX_ITEMS]]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _platform(value: Any) -> Platform | None:
    if not isinstance(value, dict):
        return None
    os_, arch = value.get("os"), value.get("architecture")
    if not isinstance(os_, str) or not isinstance(arch, str):
        return None
    variant, version = value.get("variant"), value.get("os.version")
    return Platform(os_[:64], arch[:64], variant[:64] if isinstance(variant, str) else None,
                    version[:64] if isinstance(version, str) else None)


def _descriptors(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [d for d in value if isinstance(d, dict) and isinstance(d.get("digest"), str)]


def _size(descriptor: dict[str, Any]) -> int:
    size = descriptor.get("size")
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else 0


def _load(content: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(content)
    except (ValueError, RecursionError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _is_index(media_type: str, doc: dict[str, Any]) -> bool:
    return media_type in mt.INDEXES or ("manifests" in doc and "config" not in doc)


def _attestation(descriptor: dict[str, Any]) -> bool:
    notes = _dict(descriptor.get("annotations"))
    return notes.get("vnd.docker.reference.type") == "attestation-manifest"


def referrer_kind(artifact_type: str | None, tag: str | None = None) -> str:
    """signature, sbom, attestation or artifact: by the tag scheme's suffix, else by the
    artifact type's words (cosign, Notation, in-toto, SPDX, CycloneDX…)."""
    if tag and "." in tag:
        kind = SUPPLY_CHAIN_SUFFIXES.get(tag.rsplit(".", 1)[1])
        if kind:
            return kind
    text = (artifact_type or "").lower()
    if any(w in text for w in ("spdx", "cyclonedx", "sbom", "syft")):
        return "sbom"
    if any(w in text for w in ("in-toto", "intoto", "attestation", "provenance", "slsa",
                               "dsse", "vex")):
        return "attestation"
    if any(w in text for w in ("signature", "notary", "cosign.artifact.sig", ".sig.")):
        return "signature"
    return "artifact"


class RepositoryBrowser:
    def __init__(self, reads: BrowseStore, store: BlobStore) -> None:
        self.reads = reads
        self.store = store
        self._summaries: OrderedDict[str, Summary] = OrderedDict()
        self._lock = threading.Lock()

    # -- summaries ------------------------------------------------------------------------
    def _cached(self, digest: str) -> Summary | None:
        with self._lock:
            found = self._summaries.get(digest)
            if found is not None:
                self._summaries.move_to_end(digest)
            return found

    def _keep(self, digest: str, summary: Summary) -> None:
        with self._lock:
            self._summaries[digest] = summary
            while len(self._summaries) > SUMMARY_CACHE:
                self._summaries.popitem(last=False)

    @staticmethod
    def _image_summary(media_type: str, doc: dict[str, Any]) -> Summary:
        config = _dict(doc.get("config"))
        blobs: dict[str, int] = {}
        if isinstance(config.get("digest"), str):
            blobs[config["digest"]] = _size(config)
        for layer in _descriptors(doc.get("layers")):
            blobs[layer["digest"]] = _size(layer)
        kind = ("image" if config.get("mediaType") in IMAGE_CONFIGS
                and not doc.get("artifactType") else
                "artifact" if config or doc.get("artifactType") else "unknown")
        if media_type not in mt.IMAGE_MANIFESTS and "config" not in doc:
            kind = "unknown"
        return Summary(kind, sum(blobs.values()), (), tuple(blobs.items()))

    def summaries(self, manifests: dict[str, tuple[str, bytes]]) -> dict[str, Summary]:
        """The summary of each manifest given as digest -> (media type, bytes); the
        children of indexes are read from the database, in one query for all."""
        found: dict[str, Summary] = {}
        indexes: dict[str, list[dict[str, Any]]] = {}
        for digest, (media_type, content) in manifests.items():
            cached = self._cached(digest)
            if cached is not None:
                found[digest] = cached
                continue
            doc = _load(content)
            if _is_index(media_type, doc):
                indexes[digest] = _descriptors(doc.get("manifests"))[:MAX_ITEMS]
            else:
                found[digest] = self._image_summary(media_type, doc)
                self._keep(digest, found[digest])
        if not indexes:
            return found
        wanted = {c["digest"] for children in indexes.values() for c in children}
        images: dict[str, Summary | None] = {d: self._cached(d) for d in wanted}
        missing = [d for d, s in images.items() if s is None]
        for digest, (media_type, content) in self.reads.contents(missing).items():
            images[digest] = self._image_summary(media_type, _load(content))
            self._keep(digest, images[digest])  # type: ignore[arg-type]
        for digest, children in indexes.items():
            platforms: list[PlatformSize] = []
            blobs: dict[str, int] = {}
            complete = True
            for child in children:
                image = images.get(child["digest"])
                if image is None:
                    complete = False
                else:
                    blobs.update(image.blobs)
                platform = _platform(child.get("platform"))
                if platform is not None and platform.known and not _attestation(child):
                    platforms.append(PlatformSize(platform, child["digest"],
                                                  image.size if image else None))
            summary = Summary("index", sum(blobs.values()) if complete else None,
                              tuple(platforms))
            found[digest] = summary
            if complete:
                self._keep(digest, summary)
        return found

    # -- tags -----------------------------------------------------------------------------
    def tags(self, repository: str, search: str, sort: str, limit: int, offset: int,
             protecting: Callable[[str, str], int | None]
             ) -> tuple[list[TagInfo], int] | None:
        """A page of tags with their summaries; `protecting(repository, tag)` is the id of
        the enabled immutability rule that protects a tag, or None. None: no repository."""
        check_name(repository)
        page = self.reads.tag_page(repository, search, sort, limit, offset)
        if page is None:
            return None
        rows, total = page
        uncached = {r.digest for r in rows if self._cached(r.digest) is None}
        contents = self.reads.contents(uncached) if uncached else {}
        summaries = self.summaries({r.digest: contents.get(r.digest, (r.media_type or "", b""))
                                    for r in rows if r.media_type is not None})
        infos = []
        for r in rows:
            summary = summaries.get(r.digest) or Summary("unknown", None)
            rule = protecting(repository, r.name)
            # A referrer pushed under a tag stays manageable (policy/immutability.py).
            locked = rule is not None and r.subject is None
            infos.append(TagInfo(r.name, r.digest, r.updated_at, r.pulled_at, r.media_type,
                                 r.artifact_type, summary.kind, summary.size, summary.platforms,
                                 locked, rule if locked else None, r.subject is not None))
        return infos, total

    # -- one manifest ---------------------------------------------------------------------
    def manifest(self, repository: str, reference: str,
                 resolve: Callable[[str, str], str]) -> ManifestInfo:
        """Everything about one manifest of the repository, by tag or digest; `resolve`
        turns the reference into a digest the repository holds (MANIFEST_UNKNOWN if not)."""
        check_name(repository)
        if lookup_kind(reference) == "digest":
            parse_digest(reference)
        digest = resolve(repository, reference)
        row = self.reads.manifest(repository, digest)
        if row is None:
            raise RegistryError("MANIFEST_UNKNOWN", detail={"reference": reference})
        doc = _load(row.content)
        summary = self.summaries({digest: (row.media_type, row.content)}).get(digest)
        info = ManifestInfo(
            repository=repository, digest=digest, media_type=row.media_type, size=row.size,
            kind=summary.kind if summary else "unknown",
            artifact_type=row.artifact_type if summary and summary.kind != "image" else None,
            pushed_at=row.pushed_at, tags=self.reads.tags_of(repository, digest, MAX_TAGS_SHOWN),
            annotations={k: str(v)[:MAX_TEXT] for k, v in
                         list(_dict(doc.get("annotations")).items())[:MAX_ITEMS]},
            subject=row.subject, total_size=summary.size if summary else None)
        if _is_index(row.media_type, doc):
            self._children(info, doc)
        else:
            self._image(info, doc)
        info.indexes = self.reads.indexes_holding(repository, digest, MAX_TAGS_SHOWN)
        info.referrers, info.referrers_truncated = self.referrer_tree(repository, digest)
        return info

    def _image(self, info: ManifestInfo, doc: dict[str, Any]) -> None:
        layers = _descriptors(doc.get("layers"))
        info.truncated = len(layers) > MAX_ITEMS
        for layer in layers[:MAX_ITEMS]:
            notes = _dict(layer.get("annotations"))
            title = notes.get("org.opencontainers.image.title")
            info.layers.append(Layer(layer["digest"], str(layer.get("mediaType", ""))[:255],
                                     _size(layer), _text(title) if title else None,
                                     layer.get("mediaType") == mt.DOCKER_FOREIGN_LAYER))
        config = _dict(doc.get("config"))
        if isinstance(config.get("digest"), str):
            info.config = self.config(str(config["digest"]), str(config.get("mediaType", "")),
                                      _size(config))

    def _children(self, info: ManifestInfo, doc: dict[str, Any]) -> None:
        children = _descriptors(doc.get("manifests"))
        info.truncated = len(children) > MAX_ITEMS
        children = children[:MAX_ITEMS]
        contents = self.reads.contents(c["digest"] for c in children)
        images = self.summaries(contents)
        for child in children:
            image = images.get(child["digest"])
            info.children.append(Child(child["digest"], str(child.get("mediaType", ""))[:255],
                                       _size(child), _platform(child.get("platform")),
                                       image.size if image else None, _attestation(child)))

    def config(self, digest: str, media_type: str, size: int) -> ImageConfig:
        """An image config's fields, read from the blob when it is one and not too big."""
        found = ImageConfig(digest, media_type, size)
        if media_type not in IMAGE_CONFIGS:
            found.note = "not an image configuration"
            return found
        if size > MAX_CONFIG_BYTES:
            found.note = f"larger than {MAX_CONFIG_BYTES} bytes; not read"
            return found
        try:
            parse_digest(digest)
            data = b"".join(self.store.read(digest, 0, size))
        except Exception:  # noqa: BLE001 - missing bytes, a store away: say so, not fail
            found.note = "the configuration blob could not be read"
            return found
        doc = _load(data[:MAX_CONFIG_BYTES])
        inner = _dict(doc.get("config"))
        found.read = True
        found.created = _text(doc.get("created"))
        found.author = _text(doc.get("author"))
        found.architecture = _text(doc.get("architecture"))
        found.os = _text(doc.get("os"))
        found.variant = _text(doc.get("variant"))
        found.os_version = _text(doc.get("os.version"))
        found.user = _text(inner.get("User")) or None
        found.working_dir = _text(inner.get("WorkingDir")) or None
        found.entrypoint = _strings(inner.get("Entrypoint"))
        found.cmd = _strings(inner.get("Cmd"))
        found.env = _strings(inner.get("Env")) or []
        found.labels = {str(k)[:MAX_TEXT]: str(v)[:MAX_TEXT]
                        for k, v in list(_dict(inner.get("Labels")).items())[:MAX_ITEMS]}
        found.exposed_ports = list(_dict(inner.get("ExposedPorts")))[:MAX_ITEMS]
        found.volumes = list(_dict(inner.get("Volumes")))[:MAX_ITEMS]
        found.stop_signal = _text(inner.get("StopSignal"))
        history = [h for h in (doc.get("history") or []) if isinstance(h, dict)] \
            if isinstance(doc.get("history"), list) else []
        found.truncated = len(history) > MAX_ITEMS or any(
            isinstance(v, list) and len(v) > MAX_ITEMS for v in (inner.get("Env"),))
        found.history = [HistoryEntry(_text(h.get("created")), _text(h.get("created_by")),
                                      _text(h.get("comment")), bool(h.get("empty_layer")))
                         for h in history[:MAX_ITEMS]]
        return found

    # -- referrers ------------------------------------------------------------------------
    def referrer_tree(self, repository: str, digest: str) -> tuple[list[ReferrerNode], bool]:
        """What refers to the manifest: OCI referrers (a `subject`) and the tag scheme's
        signatures, attestations and SBOMs (`sha256-<hex>.sig`), and what refers to them in
        turn, MAX_REFERRER_DEPTH levels down, MAX_REFERRERS nodes in all. (nodes, cut)"""
        roots: list[ReferrerNode] = []
        level: dict[str, list[ReferrerNode]] = {digest: roots}
        seen = {digest}
        count = 0
        cut = False
        for _ in range(MAX_REFERRER_DEPTH):
            if not level or count >= MAX_REFERRERS:
                break
            found = self.reads.referrers(repository, level, MAX_REFERRERS - count + 1)
            scheme = {f"{d.replace(':', '-')}.{suffix}": d
                      for d in level if is_digest(d) for suffix in SUPPLY_CHAIN_SUFFIXES}
            tagged = self.reads.tag_digests(repository, scheme)
            rows: dict[str, ManifestRow | None] = {}
            for target in set(tagged.values()):
                rows[target] = self.reads.manifest(repository, target)
            following: dict[str, list[ReferrerNode]] = {}
            for subject, siblings in level.items():
                candidates: list[ReferrerNode] = []
                for ref in found.get(subject, []):
                    notes = {k: str(v)[:MAX_TEXT] for k, v in
                             list((ref.annotations or {}).items())[:50]}
                    candidates.append(ReferrerNode(
                        ref.digest, ref.media_type, ref.artifact_type, ref.size,
                        referrer_kind(ref.artifact_type), None,
                        notes.get("org.opencontainers.image.created"), notes))
                for tag, target in sorted(tagged.items()):
                    row = rows.get(target)
                    if scheme.get(tag) != subject or row is None:
                        continue
                    candidates.append(ReferrerNode(
                        target, row.media_type, row.artifact_type, row.size,
                        referrer_kind(row.artifact_type, tag), tag))
                for node in candidates:
                    if node.digest in seen:
                        continue  # a referrer and a tag of one manifest; or a cycle
                    if count >= MAX_REFERRERS:
                        cut = True
                        break
                    seen.add(node.digest)
                    siblings.append(node)
                    following[node.digest] = node.referrers
                    count += 1
            level = following
        else:
            if level and self.reads.referrers(repository, level, 1):
                cut = True
        return roots, cut


__all__ = ["RepositoryBrowser", "Summary", "TagInfo", "ManifestInfo", "referrer_kind",
           "MAX_CONFIG_BYTES", "MAX_REFERRER_DEPTH", "MAX_REFERRERS"]
