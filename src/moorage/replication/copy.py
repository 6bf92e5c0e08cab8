"""The copy engine: one artifact tree from a source to a destination, verified, resumable.

    copier = Copier(source, target, on_progress=report, bucket=TokenBucket(50 << 20))
    result = await copier.copy("library/app", "1.0", "mirror/app", tag="1.0")

Either end is this instance (`LocalEndpoint`) or another registry (`RemoteEndpoint`). A tree is
a manifest with what it references: an image's config and layers, an index's children (every
platform), and then, recursively, the referrers of each manifest in it (the referrers API, and
cosign's `sha256-<hex>.sig` / `.att` / `.sbom` tags), so signatures, SBOMs and attestations
travel with their subject.

Why it is safe to run again at any time (after a crash, a timeout, or as a full sync):
- a manifest the destination already has by digest is a finished tree (registries accept a
  manifest only once what it references is there, and we put children first), so it is
  skipped with one HEAD; a blob the destination has (HEAD) is skipped; a tag that already
  names the same digest is no change at all;
- a large blob goes in segments whose upload location is remembered (ResumeStore), so a
  later attempt sends only what the destination does not hold yet;
- bytes are copied verbatim and every digest is checked: by the source client as it reads,
  by the destination when it commits, and the manifest digest the destination answers is
  compared with the source's. Nothing unverified becomes visible at the destination.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from moorage.oci import mediatypes as mt
from moorage.oci.manifest import Descriptor
from moorage.remote import ManifestInfo, RemoteError, RemoteManifest
from moorage.replication.bandwidth import LimitedSource, TokenBucket
from moorage.replication.endpoints import Endpoint, NoResume, ResumeStore

log = logging.getLogger("moorage.replication")

# cosign's tag schema for what it attaches to a subject: sha256-<hex>.sig and friends.
ATTACHED_SUFFIXES = ("sig", "att", "sbom")
# Referrers of referrers (a signature of an SBOM of an image) are followed this deep.
MAX_DEPTH = 4


class CopyError(Exception):
    """A copy that cannot go on; the message says which artifact and why."""


@dataclass
class Progress:
    """How far a copy has come, handed to the `on_progress` callback after every step."""

    artifacts_done: int = 0  # manifests copied or found present
    artifacts_total: int = 0  # manifests known so far (grows as trees are read)
    bytes: int = 0  # blob bytes sent to the destination
    blobs_copied: int = 0
    blobs_skipped: int = 0  # present at the destination already
    blobs_mounted: int = 0
    manifests_copied: int = 0
    manifests_skipped: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class CopyResult:
    digest: str
    changed: bool  # whether anything was written at the destination
    progress: Progress = field(default_factory=Progress)


def fallback_tag(digest: str) -> str:
    """The tag of the referrers index kept for registries without the referrers API."""
    algorithm, _, hex_ = digest.partition(":")
    return f"{algorithm}-{hex_}"


def is_fallback_tag(tag: str) -> bool:
    algorithm, _, hex_ = tag.partition("-")
    return algorithm == "sha256" and len(hex_) == 64 and all(c in "0123456789abcdef"
                                                              for c in hex_)


def _descriptor_json(d: Descriptor) -> dict[str, object]:
    out: dict[str, object] = {"mediaType": d.media_type, "digest": d.digest, "size": d.size}
    if d.artifact_type:
        out["artifactType"] = d.artifact_type
    if d.annotations:
        out["annotations"] = dict(d.annotations)
    return out


def attached_tags(digest: str) -> list[str]:
    algorithm, _, hex_ = digest.partition(":")
    return [f"{algorithm}-{hex_}.{suffix}" for suffix in ATTACHED_SUFFIXES]


class Copier:
    """Copies trees from `source` to `target`. One Copier may copy many trees (one
    execution); its `progress` adds them up."""

    def __init__(self, source: Endpoint, target: Endpoint, *,
                 on_progress: Callable[[Progress], None] | None = None,
                 bucket: TokenBucket | None = None, resume: ResumeStore | None = None,
                 log_line: Callable[[str], None] | None = None,
                 check: Callable[[], None] | None = None) -> None:
        self.source, self.target = source, target
        self.on_progress = on_progress or (lambda _p: None)
        self.bucket = bucket
        self.resume = resume or NoResume()
        self.log = log_line or (lambda line: log.info("%s", line))
        self.check = check or (lambda: None)
        self.progress = Progress()

    def _tell(self) -> None:
        self.on_progress(self.progress)

    async def copy(self, source_name: str, reference: str, target_name: str,
                   tag: str | None = None) -> CopyResult:
        """Copy the tree `reference` names in `source_name` into `target_name`, tagging it
        `tag` there when given (a digest reference with no tag copies untagged)."""
        before = self.progress.manifests_copied
        manifest = await self.source.get_manifest(source_name, reference)
        self.progress.artifacts_total += 1
        self._tell()
        await self._tree(source_name, manifest, target_name, set(), 0)
        changed = self.progress.manifests_copied > before
        if tag is not None:
            current = await self.target.head_manifest(target_name, tag)
            if current is None or current.digest != manifest.digest:
                await self._put(target_name, tag, manifest)
                changed = True
                self.log(f"tagged {target_name}:{tag} -> {manifest.digest}")
        return CopyResult(manifest.digest, changed, self.progress)

    async def _tree(self, source_name: str, manifest: RemoteManifest, target_name: str,
                    seen: set[str], depth: int) -> None:
        """The manifest and all it references, then its referrers."""
        if manifest.digest in seen:
            return
        seen.add(manifest.digest)
        self.check()
        present = await self.target.head_manifest(target_name, manifest.digest)
        if present is None:
            children = list(manifest.manifest.children)
            self.progress.artifacts_total += len(children)
            for child in children:
                fetched = await self.source.get_manifest(source_name, child.digest)
                await self._tree(source_name, fetched, target_name, seen, depth)
            for blob in manifest.manifest.blobs:
                await self._blob(source_name, blob, target_name)
            await self._put(target_name, manifest.digest, manifest)
            if manifest.manifest.subject is not None:
                await self._index_referrer(target_name, manifest)
            self.progress.manifests_copied += 1
            self.log(f"copied {target_name}@{manifest.digest} ({manifest.media_type})")
        else:
            self.progress.manifests_skipped += 1
        self.progress.artifacts_done += 1
        self._tell()
        if depth < MAX_DEPTH:
            await self._referrers(source_name, manifest.digest, target_name, seen, depth + 1)

    async def _referrers(self, source_name: str, digest: str, target_name: str,
                         seen: set[str], depth: int) -> None:
        referrers: list[Descriptor] = await self.source.referrers(source_name, digest)
        new = [r for r in referrers if r.digest not in seen]
        self.progress.artifacts_total += len(new)
        for descriptor in new:
            fetched = await self.source.get_manifest(source_name, descriptor.digest)
            await self._tree(source_name, fetched, target_name, seen, depth)
        for tag in attached_tags(digest):
            info: ManifestInfo | None = await self.source.head_manifest(source_name, tag)
            if info is None:
                continue
            if info.digest not in seen:
                self.progress.artifacts_total += 1
                fetched = await self.source.get_manifest(source_name, info.digest)
                await self._tree(source_name, fetched, target_name, seen, depth)
            current = await self.target.head_manifest(target_name, tag)
            if current is None or current.digest != info.digest:
                fetched = await self.source.get_manifest(source_name, info.digest)
                await self._put(target_name, tag, fetched)
                self.log(f"tagged {target_name}:{tag}")

    async def _index_referrer(self, target_name: str, manifest: RemoteManifest) -> None:
        """A destination without the referrers API (Distribution 2.8) would lose the link
        from subject to referrer: add it to the index tagged `<alg>-<hex>` of the subject,
        as the OCI 1.1 spec asks of clients (and cosign and oras do), which is where the
        registry client looks for referrers there."""
        subject = manifest.manifest.subject
        assert subject is not None
        known = await self.target.referrers(target_name, subject.digest)
        if any(d.digest == manifest.digest for d in known):
            return  # the registry links them itself, or the tag index has it already
        entries = [_descriptor_json(d) for d in known]
        entries.append(_descriptor_json(Descriptor(
            manifest.media_type, manifest.digest, len(manifest.data),
            manifest.manifest.artifact_type, manifest.manifest.annotations or None)))
        data = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                           "manifests": entries}).encode()
        await self.target.put_manifest(target_name, fallback_tag(subject.digest), data,
                                       mt.OCI_INDEX)
        self.log(f"{target_name}: {manifest.digest} added to the referrers tag of "
                 f"{subject.digest}")

    async def _put(self, target_name: str, reference: str, manifest: RemoteManifest) -> None:
        stored = await self.target.put_manifest(target_name, reference, manifest.data,
                                                manifest.media_type)
        if stored != manifest.digest:
            raise CopyError(f"{target_name}@{manifest.digest}: the destination stored "
                            f"{stored}")

    async def _blob(self, source_name: str, blob: Descriptor, target_name: str) -> None:
        self.check()
        if await self.target.blob_size(target_name, blob.digest) is not None:
            self.progress.blobs_skipped += 1
            return
        if self.target.same_registry(self.source) and source_name != target_name:
            try:
                if await self.target.mount_blob(target_name, blob.digest, source_name):
                    self.progress.blobs_mounted += 1
                    return
            except RemoteError:
                pass  # no mount: copy the bytes instead

        def counted(amount: int) -> None:
            self.progress.bytes += amount
            self._tell()

        source = LimitedSource(self.source.source(source_name, blob.digest, blob.size),
                               self.bucket, counted)
        await self.target.write_blob(target_name, blob.digest, source, self.resume)
        self.progress.blobs_copied += 1
        self.log(f"blob {blob.digest} ({blob.size} bytes) -> {target_name}")
