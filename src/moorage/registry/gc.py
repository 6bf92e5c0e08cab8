"""Online garbage collection: mark and sweep over the metadata while pushes and pulls go on.

Nothing here needs read-only mode. Unlinked manifests go first, then blob links that no
manifest of their repository references (and that nobody touched within the grace period),
then blobs that nothing links or references. Each deletion re-checks its condition inside its
own transaction, so a push that references something at the last moment keeps it; bytes are
removed only after their row, under a lock that upload commits share, so an upload of the
same digest finishing at that instant cannot lose its bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from moorage.db.metadata import MetadataStore
from moorage.registry.events import Event, EventBus
from moorage.registry.locks import BlobLock
from moorage.store.base import BlobStore

Report = Callable[[str], None]
Progress = Callable[[int, int | None, str], None]

# Who the audit log says deleted what a GC run deleted.
GC_ACTOR = "gc"


LISTED = 1000  # entries of each kind a result lists; the counts are always whole


@dataclass
class GCResult:
    """What a run removed (or, dry, would remove): counts, and the items themselves, so
    that an operator sees which digests, repositories and bytes a run is about."""

    dry_run: bool
    manifests: list[str] = field(default_factory=list)
    links: int = 0
    blobs: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    seconds: float = 0.0
    sizes: dict[str, int] = field(default_factory=dict)  # blob digest -> bytes
    link_list: list[tuple[str, str]] = field(default_factory=list)  # (repository, digest)

    def as_dict(self) -> dict[str, object]:
        return {"dry_run": self.dry_run, "manifests_deleted": len(self.manifests),
                "links_deleted": self.links, "blobs_deleted": len(self.blobs),
                "bytes_freed": self.bytes_freed, "seconds": round(self.seconds, 3),
                "manifests": self.manifests[:LISTED], "blobs": self.blobs[:LISTED],
                "blob_sizes": [{"digest": d, "size": self.sizes.get(d, 0)}
                               for d in self.blobs[:LISTED]],
                "links": [{"repository": r, "digest": d} for r, d in self.link_list[:LISTED]]}


def collect_garbage(db: MetadataStore, store: BlobStore, lock: BlobLock, grace_seconds: float,
                    dry_run: bool = False, report: Report = lambda _: None,
                    progress: Progress = lambda *_: None,
                    holds: Sequence[Callable[[], int]] = ()) -> GCResult:
    """`holds` (Registry.gc_holds) run once the cutoff is fixed and before anything is
    marked: each re-touches the blob links its feature still needs although no manifest of
    their repository references them yet, so they are younger than the cutoff."""
    started = time.monotonic()
    cutoff = time.time() - grace_seconds
    for hold in holds:
        held = hold()
        if held:
            report(f"kept {held} blob link(s) that content on its way still needs")
    result = GCResult(dry_run)
    if dry_run:
        result.manifests, result.link_list, candidates = db.gc_preview(cutoff)
        result.links = len(result.link_list)
        result.blobs = [d for d, _ in candidates]
        result.sizes = dict(candidates)
        result.bytes_freed = sum(size for _, size in candidates)
        report(f"dry run: would delete {len(result.manifests)} manifests, {result.links} blob "
               f"links and {len(result.blobs)} blobs ({result.bytes_freed} bytes)")
        result.seconds = time.monotonic() - started
        return result

    result.manifests, result.links = db.gc_mark(cutoff)
    report(f"marked: {len(result.manifests)} unlinked manifests deleted, {result.links} "
           f"unreferenced blob links dropped")
    while True:
        candidates = db.gc_blob_candidates(cutoff, limit=1000)
        if not candidates:
            break
        swept = 0
        for digest, size in candidates:
            with lock.sweeping(digest):
                if db.gc_delete_blob(digest, cutoff):
                    store.delete(digest)
                    result.blobs.append(digest)
                    result.sizes[digest] = size
                    result.bytes_freed += size
                    swept += 1
            progress(len(result.blobs), None, "sweeping blobs")
        if swept == 0:
            break  # everything left was claimed back by pushes meanwhile
    result.seconds = time.monotonic() - started
    report(f"swept: {len(result.blobs)} blobs deleted, {result.bytes_freed} bytes freed in "
           f"{result.seconds:.2f}s")
    return result


def announce(bus: EventBus, result: GCResult) -> None:
    """One event per real run, done by GC_ACTOR, saying what it deleted: the audit log's
    record of deletions nobody asked for one by one. A dry run deletes nothing: no event."""
    if result.dry_run:
        return
    bus.publish(Event("gc", target="blobs", actor=GC_ACTOR, address="", detail={
        "manifests_deleted": len(result.manifests), "links_deleted": result.links,
        "blobs_deleted": len(result.blobs), "bytes_freed": result.bytes_freed,
        "manifests": result.manifests[:100]}))
