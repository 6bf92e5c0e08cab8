"""The registry's decisions: what may be pushed, pulled, mounted and deleted.

Handlers call this; it calls the metadata store and the blob store through their interfaces and
announces what happened on the event bus. It never touches HTTP.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from moorage.cache.lru import LRUCache
from moorage.cache.outage import Unavailable
from moorage.cache.tags import NoTagCache, TagCache
from moorage.db.holders import Guard, Holder, inspect_with
from moorage.db.metadata import (MetadataStore, MissingReferences, NewManifest, Referrer,
                                 StorageQuotaExceeded, StoredManifest, WrongSizes)
from moorage.oci import mediatypes as mt
from moorage.oci.digest import digest_of, is_digest, parse_digest
from moorage.oci.errors import RegistryError
from moorage.oci.manifest import Manifest, accepts, parse_manifest
from moorage.oci.names import check_name, check_tag, is_valid_name, lookup_kind
from moorage.db.browse import BrowseStore
from moorage.registry.browse import RepositoryBrowser
from moorage.registry.events import Event, EventBus
from moorage.registry.locks import BlobLock, UploadLock
from moorage.registry.pulls import PullClock
from moorage.registry.small_blobs import SmallBlobs
from moorage.registry.uploads import UploadManager
from moorage.registry.upstreams import Upstreams
from moorage.store.base import BlobStore


@dataclass(frozen=True, slots=True)
class PushedManifest:
    digest: str
    subject: str | None


class Registry:
    def __init__(self, db: MetadataStore, store: BlobStore, lock: BlobLock,
                 upload_lock: UploadLock, bus: EventBus | None = None,
                 manifest_cache_bytes: int = 64 << 20,
                 small_blob_cache_bytes: int = 32 << 20) -> None:
        self.db = db
        self.store = store
        self.lock = lock
        self.bus = bus or EventBus()
        # How stale a blob link may get before an existence check refreshes it; well inside
        # the GC grace period, so that what a client saw still exists when it references it.
        self.touch_interval = 60.0
        self.tags_cache: TagCache = NoTagCache()
        self.uploads = UploadManager(db, store, lock, upload_lock)
        # Checks a pushed manifest must pass (edition limits, policies); each raises to refuse.
        self.manifest_checks: list[Callable[[str, Manifest], None]] = []
        # Checks before a tag moves or goes: (repository, tag, old digest, new digest or None).
        self.tag_checks: list[Callable[[str, str, str, str | None], None]] = []
        # Asked before a manifest GET (never a HEAD) is answered and announced: (repository,
        # the manifest, the tag it was asked by or None). A check refuses by raising
        # RegistryError("DENIED", ...); features (threat blocking) register them in app.py.
        self.pull_checks: list[Callable[[str, StoredManifest, str | None], None]] = []
        # Run by GC before it marks (registry/gc.py): each re-touches blob links that no
        # manifest references yet but that content on its way needs (a proxy cache's pending
        # manifests), and says how many; features register them in app.py.
        self.gc_holds: list[Callable[[], int]] = []
        # Asked, inside the deleting transaction, before a manifest, blob or repository goes.
        self.guards: list[Guard] = []
        # Manifest bytes are immutable per digest, so caching them never serves stale data;
        # whether a repository holds a digest is always asked of the database.
        self._manifests: LRUCache[str, StoredManifest] = LRUCache(manifest_cache_bytes)
        # Small blobs' bytes by digest, where the store has no file to send (small_blobs.py).
        self.small_blobs = SmallBlobs(store, small_blob_cache_bytes)
        # When each tag was last pulled: written at most once a minute per tag, off the
        # request path (pulls.py).
        self.pulls = PullClock(db)
        # Read-only views of a repository's tags and manifests (the console, the API).
        self.browse = RepositoryBrowser(BrowseStore(db.engine), store)
        # Told of each lookup in the manifest cache and the tag cache: ("manifest" | "tag",
        # hit?). A hook for metrics (app.py sets it); it must be cheap and never raise.
        self.on_cache_lookup: Callable[[str, bool], None] = _ignore_lookup
        # Repositories served from another registry (a proxy cache registers a finder);
        # registry/upstreams.py says what the handlers ask of them.
        self.upstreams = Upstreams()

    # -- blobs --------------------------------------------------------------------------
    def blob_size(self, name: str, digest: str) -> int:
        """Size of a blob this repository may read; BLOB_UNKNOWN otherwise."""
        check_name(name)
        parse_digest(digest)
        size = self.db.blob_size_in_repository(name, digest)
        if size is None:
            raise RegistryError("BLOB_UNKNOWN", detail={"digest": digest})
        return size

    def saw_blob(self, name: str, digest: str) -> None:
        """A client checked that a blob exists; keep it safe from GC while it pushes on."""
        self.db.touch_blob(name, digest, self.touch_interval)

    def delete_repository(self, name: str, force: bool = False) -> bool:
        """Refused while a guard protects a tag in it, unless `force` (the caller decided
        who may force); a forced delete says so in its event, with the tags it overrode."""
        check_name(name)
        overridden: list[Holder] = []
        self.tags_cache.before_change(name)
        if force:
            def inspect(holders: list[Holder]) -> None:
                overridden.extend(h for guard in self.guards for h in guard.protected(holders))
            deleted = self.db.delete_repository(name, inspect)
        else:
            deleted = self.db.delete_repository(
                name, inspect_with(self.guards, f"repository {name}", contains=True))
        self.tags_cache.invalidate(name)
        if deleted:
            detail: dict[str, object] = {"repository": True}
            if force:
                detail.update(forced=True, immutable_tags=sorted({h.tag for h in overridden}))
            self.bus.publish(Event("delete", name, target=name, detail=detail))
        return deleted

    def blob_file(self, digest: str) -> Path | None:
        return self.store.local_path(digest)

    def delete_blob(self, name: str, digest: str) -> None:
        check_name(name)
        parse_digest(digest)
        if not self.db.unlink_blob(name, digest,
                                   inspect_with(self.guards, f"blob {digest} of {name}")):
            raise RegistryError("BLOB_UNKNOWN", detail={"digest": digest})
        self.bus.publish(Event("blob.delete", name, digest))

    def mount(self, name: str, digest: str, source: str | None) -> int | None:
        """Link a blob another repository holds; None when it cannot (the client uploads).

        Without `source`, any blob already stored on the instance is mounted; the access layer
        decides beforehand whether the caller may read it.
        """
        check_name(name)
        parse_digest(digest)
        if source is not None:
            if not is_valid_name(source):
                return None  # a bad `from` is no reason to fail: the client uploads instead
            size = self.db.blob_size_in_repository(source, digest)
        else:
            size = self.db.blob_size(digest)
        if size is None:
            return None
        with self.lock.committing(digest):  # GC cannot delete the bytes before the link
            if self.store.size(digest) is None:
                return None
            self.db.link_blob(name, digest, size)
        self.bus.publish(Event("blob.mount", name, digest, size=size))
        return size

    async def push_blob(self, name: str, digest: str, body: AsyncIterator[bytes],
                        length: int | None, owner: str | None = None) -> int:
        """A monolithic upload in one request; nothing stays behind if it fails. A body whose
        declared length would pass the storage quota is refused before it is read."""
        check_name(name)
        parse_digest(digest)
        if length is not None:
            try:
                self.db.check_blob_quota(name, digest, length)
            except StorageQuotaExceeded as exc:
                raise self._refused_by_quota(name, exc, digest) from None
        upload_id = await self.uploads.start(name, owner)
        try:
            size = await self.uploads.finish(name, upload_id, digest, body, length)
        except StorageQuotaExceeded as exc:
            raise self._refused_by_quota(name, exc, digest) from None
        except BaseException:
            try:
                await self.uploads.cancel(name, upload_id)
            except Unavailable:
                await self.uploads.abandon(upload_id)
            except RegistryError:
                pass  # already gone (a digest mismatch removes it)
            raise
        self.bus.publish(Event("blob.push", name, digest, size=size))
        return size

    async def finish_upload(self, name: str, upload_id: str, digest: str,
                            body: AsyncIterator[bytes] | None, length: int | None,
                            start: int | None = None) -> int:
        check_name(name)
        try:
            size = await self.uploads.finish(name, upload_id, digest, body, length, start)
        except StorageQuotaExceeded as exc:
            raise self._refused_by_quota(name, exc, digest) from None
        self.bus.publish(Event("blob.push", name, digest, size=size))
        return size

    def _refused_by_quota(self, name: str, exc: StorageQuotaExceeded, digest: str,
                          media_type: str | None = None) -> RegistryError:
        """Announce a storage quota refusal and undo what the refused push left: a repository
        that it made and that holds no manifest goes, with the blobs only it linked (swept
        at once, under the same lock as GC's sweep, so a push that claims one meanwhile keeps
        it). The error to raise: 403 DENIED, naming the quota."""
        self.bus.publish(Event("quota", name, digest, media_type, result="failure",
                               detail={"namespace": exc.namespace, "quota": exc.quota,
                                       "used": exc.used, "adding": exc.adding}))
        try:
            for linked in self.db.forget_if_empty(name) or []:
                with self.lock.sweeping(linked):
                    if self.db.gc_delete_blob(linked, cutoff=time.time() + 3600):  # any age
                        self.store.delete(linked)
        except Unavailable:
            pass  # no sweep lock while Redis is away: GC takes what is left, unreferenced
        return RegistryError("DENIED", str(exc), detail={"reason": "quota"})

    # -- manifests ----------------------------------------------------------------------
    def put_manifest(self, name: str, reference: str, body: bytes, content_type: str | None,
                     extra_tags: list[str] | None = None) -> PushedManifest:
        check_name(name)
        tags = [t for t in (extra_tags or [])]
        if is_digest(reference):
            wanted = parse_digest(reference)
            digest = digest_of(body, wanted.algorithm)
            if digest != reference:
                raise RegistryError("DIGEST_INVALID",
                                    f"manifest digest is {digest}, not {reference}")
        else:
            tags.insert(0, reference)
            digest = digest_of(body)
        for tag in tags:
            check_tag(tag)
        manifest = parse_manifest(body, content_type)
        for check in self.manifest_checks:
            check(name, manifest)

        blob_digests = [d.digest for d in manifest.blobs]
        if mt.EMPTY_DIGEST in blob_digests:
            # The empty JSON blob is implied by the spec; clients need not upload it first.
            with self.lock.committing(mt.EMPTY_DIGEST):
                self.store.put(mt.EMPTY_DIGEST, mt.EMPTY_JSON)
                self.db.link_blob(name, mt.EMPTY_DIGEST, len(mt.EMPTY_JSON))
        if tags:
            current = self.db.tag_digests(name, tags)
            for tag in tags:
                if current.get(tag, digest) != digest:
                    for check in self.tag_checks:
                        check(name, tag, current[tag], digest)
        subject = manifest.subject.digest if manifest.subject else None
        if tags:
            self.tags_cache.before_change(name)
        try:
            self.db.put_manifest(name, NewManifest(
                digest=digest, media_type=manifest.media_type, content=body, subject=subject,
                artifact_type=manifest.artifact_type, annotations=manifest.annotations or None,
                blob_digests=tuple(blob_digests),
                child_digests=tuple(d.digest for d in manifest.children),
                declared_sizes=tuple({d.digest: d.size for d in manifest.descriptors}.items())),
                tags)
        except MissingReferences as exc:
            raise RegistryError("MANIFEST_BLOB_UNKNOWN",
                                f"manifest references unknown content: "
                                f"{', '.join(exc.digests[:5])}",
                                detail={"digests": exc.digests}) from None
        except WrongSizes as exc:
            raise RegistryError(
                "MANIFEST_INVALID", "manifest declares wrong sizes: " + "; ".join(
                    f"{d} is {actual} bytes, not {declared}"
                    for d, declared, actual in exc.wrong[:5]),
                detail={"sizes": [{"digest": d, "declared": declared, "size": actual}
                                  for d, declared, actual in exc.wrong]}) from None
        except StorageQuotaExceeded as exc:
            raise self._refused_by_quota(name, exc, digest, manifest.media_type) from None
        if tags:
            self.tags_cache.invalidate(name)
        self._manifests.put(digest, StoredManifest(digest, manifest.media_type, len(body), body),
                            len(body))
        for tag in tags or [None]:
            self.bus.publish(Event("push", name, digest, manifest.media_type, tag,
                                           len(body)))
        return PushedManifest(digest, subject)

    def resolve(self, name: str, reference: str) -> str:
        """The digest a tag or digest reference names in this repository."""
        check_name(name)
        if lookup_kind(reference) == "digest":
            parse_digest(reference)
            if not self.db.manifest_in_repository(name, reference):
                raise RegistryError("MANIFEST_UNKNOWN", detail={"reference": reference})
            return reference
        generation, digest = self.tags_cache.get(name, reference)
        if generation or digest is not None:  # the cache answered (none without Redis)
            self.on_cache_lookup("tag", digest is not None)
        if digest is None:
            digest = self.db.tag_digest(name, reference)
            if digest is None:
                raise RegistryError("MANIFEST_UNKNOWN", detail={"tag": reference})
            self.tags_cache.put(name, generation, reference, digest)
        return digest

    def get_manifest(self, name: str, reference: str, accept: list[str],
                     pull: bool = True, supplied: StoredManifest | None = None
                     ) -> StoredManifest:
        """The manifest a reference names; `pull` announces it (GET does, HEAD does not).
        `supplied`: a manifest an upstream (upstreams.py) serves that is not stored yet; it
        passes the same Accept and pull checks, and its pull is announced the same way."""
        stored: StoredManifest | None
        if supplied is not None:
            check_name(name)
            digest, stored = supplied.digest, supplied
        else:
            digest = self.resolve(name, reference)
            stored = self._manifests.get(digest)
            self.on_cache_lookup("manifest", stored is not None)
        if stored is None:
            stored = self.db.manifest(digest)
            if stored is None:
                raise RegistryError("MANIFEST_UNKNOWN", detail={"reference": reference})
            self._manifests.put(digest, stored, stored.size)
        if not is_digest(reference) and not accepts(accept, stored.media_type):
            raise RegistryError(
                "MANIFEST_UNKNOWN",
                f"manifest is {stored.media_type}, which the Accept header does not allow",
                detail={"mediaType": stored.media_type})
        if pull:
            tag = None if is_digest(reference) else reference
            if self.pull_checks:
                for check in self.pull_checks:
                    check(name, stored, tag)
            if tag is not None:
                self.pulls.pulled(name, tag)
            self.bus.publish(Event("pull", name, digest, stored.media_type, tag, stored.size))
        return stored

    def delete_manifest(self, name: str, reference: str) -> None:
        check_name(name)
        self.tags_cache.before_change(name)
        if lookup_kind(reference) == "digest":
            parse_digest(reference)
            # The guards see every tag that holds it: its own, and any index's above it.
            deleted = self.db.delete_manifest(
                name, reference, inspect_with(self.guards, f"manifest {reference} of {name}"))
        else:
            current = self.db.tag_digest(name, reference)
            if current is not None:
                for check in self.tag_checks:
                    check(name, reference, current, None)
            deleted = self.db.delete_tag(name, reference)
        self.tags_cache.invalidate(name)
        if not deleted:
            raise RegistryError("MANIFEST_UNKNOWN", detail={"reference": reference})
        if is_digest(reference):
            self.bus.publish(Event("delete", name, reference))
        else:
            self.bus.publish(Event("delete", name, current, tag=reference))

    # -- listings -----------------------------------------------------------------------
    def tags(self, name: str, limit: int | None, last: str | None) -> list[str]:
        check_name(name)
        found = self.db.list_tags(name, limit, last)
        if found is None:
            raise RegistryError("NAME_UNKNOWN", detail={"name": name})
        return found

    def catalog(self, limit: int | None, last: str | None,
                visible: tuple[set[str], bool] | None = None) -> list[str]:
        """Repository names; `visible` = (namespaces, include public ones) narrows the list."""
        return self.db.catalog(limit, last, visible)

    def repositories_with_blob(self, digest: str, limit: int = 50) -> list[str]:
        parse_digest(digest)
        return self.db.repositories_with_blob(digest, limit)

    def referrers(self, name: str, digest: str, artifact_type: str | None) -> bytes:
        """The referrers index; an unknown subject has an empty one, never a 404."""
        check_name(name)
        parse_digest(digest)
        descriptors = [_referrer_descriptor(r) for r in
                       self.db.referrers(name, digest, artifact_type)]
        return json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                           "manifests": descriptors}).encode()


def _ignore_lookup(cache: str, hit: bool) -> None:
    return None


def _referrer_descriptor(ref: Referrer) -> dict[str, object]:
    descriptor: dict[str, object] = {"mediaType": ref.media_type, "digest": ref.digest,
                                     "size": ref.size}
    if ref.artifact_type:
        descriptor["artifactType"] = ref.artifact_type
    if ref.annotations:
        descriptor["annotations"] = ref.annotations
    return descriptor
