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
# Blobs the sweep lists at a time (one query, walking the blobs once in digest order), and
# blobs it deletes at a time: their rows in one transaction (one commit), then their bytes,
# under the sweep lock of them all, held that long and no longer.
SWEEP_PAGE = 1000
SWEEP_BATCH = 100


@dataclass
class GCResult:
    """What a run removed (or, dry, would remove): counts, and the items themselves, so
    that an operator sees which digests, repositories and bytes a run is about."""

    dry_run: bool
    manifests: list[str] = field(default_factory=list)
    links: int = 0
    blobs: list[str] = field(default_factory=list)  # the first LISTED of them
    bytes_freed: int = 0
    seconds: float = 0.0
    sizes: dict[str, int] = field(default_factory=dict)  # blob digest -> bytes, of `blobs`
    link_list: list[tuple[str, str]] = field(default_factory=list)  # (repository, digest)
    blob_count: int = 0  # all of them: a run over millions of blobs keeps counts, not lists
    # bytes kept apart from any blob that no blob names any more (store.sweep_unnamed)
    unnamed: int = 0
    unnamed_bytes: int = 0

    def add_blob(self, digest: str, size: int) -> None:
        self.blob_count += 1
        self.bytes_freed += size
        if len(self.blobs) < LISTED:
            self.blobs.append(digest)
            self.sizes[digest] = size

    def as_dict(self) -> dict[str, object]:
        return {"dry_run": self.dry_run, "manifests_deleted": len(self.manifests),
                "links_deleted": self.links, "blobs_deleted": self.blob_count,
                "bytes_freed": self.bytes_freed, "seconds": round(self.seconds, 3),
                "unnamed_data_deleted": self.unnamed, "unnamed_bytes_freed": self.unnamed_bytes,
                "manifests": self.manifests[:LISTED], "blobs": self.blobs[:LISTED],
                "blob_sizes": [{"digest": d, "size": self.sizes.get(d, 0)}
                               for d in self.blobs[:LISTED]],
                "links": [{"repository": r, "digest": d} for r, d in self.link_list[:LISTED]]}


def collect_garbage(db: MetadataStore, store: BlobStore, lock: BlobLock, grace_seconds: float,
                    dry_run: bool = False, report: Report = lambda _: None,
                    progress: Progress = lambda *_: None,
                    holds: Sequence[Callable[[], int]] = (),
                    clock: Callable[[], float] = time.time) -> GCResult:
    """`holds` (Registry.gc_holds) run once the cutoff is fixed and before anything is
    marked: each re-touches the blob links its feature still needs although no manifest of
    their repository references them yet, so they are younger than the cutoff. `clock`:
    the time the grace period counts back from (a test's own)."""
    started = time.monotonic()
    cutoff = clock() - grace_seconds
    for hold in holds:
        held = hold()
        if held:
            report(f"kept {held} blob link(s) that content on its way still needs")
    result = GCResult(dry_run)
    if dry_run:
        result.manifests, result.link_list, candidates = db.gc_preview(cutoff)
        result.links = len(result.link_list)
        for digest, size in candidates:
            result.add_blob(digest, size)
        report(f"dry run: would delete {len(result.manifests)} manifests, {result.links} blob "
               f"links and {result.blob_count} blobs ({result.bytes_freed} bytes)")
        _sweep_unnamed(store, cutoff, result, report, dry_run=True)
        result.seconds = time.monotonic() - started
        return result

    result.manifests, result.links = db.gc_mark(cutoff)
    report(f"marked: {len(result.manifests)} unlinked manifests deleted, {result.links} "
           f"unreferenced blob links dropped")
    after: str | None = None
    # one walk over the blobs, in digest order: a blob that becomes unreferenced behind it
    # waits for the next run
    while True:
        candidates = db.gc_blob_candidates(cutoff, limit=SWEEP_PAGE, after=after)
        if not candidates:
            break
        after = candidates[-1][0]
        for start in range(0, len(candidates), SWEEP_BATCH):
            batch = dict(candidates[start:start + SWEEP_BATCH])
            with lock.sweeping_many(list(batch)):
                gone = db.gc_delete_blobs(list(batch), cutoff)
                for digest in gone:
                    store.delete(digest)
            for digest in gone:
                result.add_blob(digest, batch[digest])
            progress(result.blob_count, None, "sweeping blobs")
    _sweep_unnamed(store, cutoff, result, report)
    result.seconds = time.monotonic() - started
    report(f"swept: {result.blob_count} blobs deleted, {result.bytes_freed} bytes freed in "
           f"{result.seconds:.2f}s")
    return result


def _sweep_unnamed(store: BlobStore, cutoff: float, result: GCResult, report: Report,
                   dry_run: bool = False) -> None:
    """Bytes that no blob names (S3: a data object whose pointer a concurrent commit of the
    same digest overwrote, or a commit died before writing), older than the grace period.
    The store itself keeps this safe against commits in progress (see sweep_unnamed)."""
    sweep = getattr(store, "sweep_unnamed", None)
    if sweep is None:
        return
    result.unnamed, result.unnamed_bytes = sweep(cutoff, dry_run)
    if result.unnamed:
        report(f"{'would delete' if dry_run else 'deleted'} {result.unnamed} data object(s) "
               f"no blob names ({result.unnamed_bytes} bytes)")


def announce(bus: EventBus, result: GCResult) -> None:
    """One event per real run, done by GC_ACTOR, saying what it deleted: the audit log's
    record of deletions nobody asked for one by one. A dry run deletes nothing: no event."""
    if result.dry_run:
        return
    bus.publish(Event("gc", target="blobs", actor=GC_ACTOR, address="", detail={
        "manifests_deleted": len(result.manifests), "links_deleted": result.links,
        "blobs_deleted": result.blob_count, "bytes_freed": result.bytes_freed,
        "manifests": result.manifests[:100]}))
