"""GC's sweep over many blobs: page after page, batch after batch, exact, and with counts
rather than lists (issue 20, the scaling series). Real parts: the metadata store on SQLite,
the filesystem blob store and the file lock that upload commits share."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from moorage.db.metadata import MetadataStore, NewManifest, open_engine, sqlite_url
from moorage.db.schema import blobs, manifest_references, manifests
from moorage.registry import gc
from moorage.registry.locks import FileBlobLock
from moorage.store.filesystem import FilesystemBlobStore

MEDIA = "application/vnd.oci.image.manifest.v1+json"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def parts(tmp_path: Path) -> tuple[MetadataStore, FilesystemBlobStore, FileBlobLock]:
    db = MetadataStore(open_engine(sqlite_url(tmp_path)))
    db.create_schema()
    yield db, FilesystemBlobStore(tmp_path), FileBlobLock(tmp_path / "locks" / "blobs")
    db.engine.dispose()


def stored(store: FilesystemBlobStore, label: str, count: int) -> dict[str, int]:
    """`count` blobs with their bytes in the store; digest -> size."""
    found = {}
    for i in range(count):
        data = f"{label} {i} ".encode() * (i + 1)
        store.put(digest_of(data), data)
        found[digest_of(data)] = len(data)
    return found


def referenced(db: MetadataStore, repo: str, layers: dict[str, int]) -> None:
    """A manifest of `repo` referencing these blobs (linked first, as a push does)."""
    for digest, size in layers.items():
        db.link_blob(repo, digest, size)
    content = json.dumps({"schemaVersion": 2, "mediaType": MEDIA, "layers": [
        {"mediaType": "application/octet-stream", "digest": d, "size": s}
        for d, s in layers.items()]}).encode()
    db.put_manifest(repo, NewManifest(digest=digest_of(content), media_type=MEDIA,
                                      content=content, subject=None, artifact_type=None,
                                      annotations=None, blob_digests=tuple(layers),
                                      child_digests=()), ["v1"])


def test_gc_sweeps_page_after_page_and_deletes_exactly_the_garbage(
        parts, monkeypatch: pytest.MonkeyPatch) -> None:
    db, store, lock = parts
    # pages and batches far smaller than the blobs: the walk must cross many of each
    monkeypatch.setattr(gc, "SWEEP_PAGE", 16)
    monkeypatch.setattr(gc, "SWEEP_BATCH", 5)
    monkeypatch.setattr(gc, "LISTED", 10)
    kept = stored(store, "kept", 20)
    referenced(db, "team/app", kept)
    stale = stored(store, "stale", 13)  # linked, referenced by nothing
    for digest, size in stale.items():
        db.link_blob("team/other", digest, size)
    orphans = stored(store, "orphan", 47)  # rows without any link
    with db.engine.begin() as conn:
        conn.execute(insert(blobs), [{"digest": d, "size": s, "created_at": time.time()}
                                     for d, s in orphans.items()])
    time.sleep(0.05)  # everything above is older than the cutoff of a zero grace period

    result = gc.collect_garbage(db, store, lock, grace_seconds=0)

    garbage = {**stale, **orphans}
    assert result.blob_count == len(garbage) == 60
    assert result.as_dict()["blobs_deleted"] == 60
    assert result.bytes_freed == sum(garbage.values())
    assert len(result.blobs) == 10 and set(result.blobs) <= set(garbage)  # listed, capped
    assert {d: result.sizes[d] for d in result.blobs} == {d: garbage[d] for d in result.blobs}
    assert result.links == len(stale)
    with db.engine.connect() as conn:
        assert set(conn.execute(select(blobs.c.digest)).scalars()) == set(kept)
    on_disk = {f"sha256:{p.name}" for p in (store.blob_root / "sha256").glob("*/*")}
    assert on_disk == set(kept)
    for digest in kept:  # what is referenced still reads whole
        assert db.blob_size_in_repository("team/app", digest) == kept[digest]

    again = gc.collect_garbage(db, store, lock, grace_seconds=0)
    assert again.blob_count == 0 and again.bytes_freed == 0


def test_a_blob_claimed_back_before_its_batch_is_deleted_stays(parts) -> None:
    db, store, _ = parts
    orphans = stored(store, "orphan", 3)
    with db.engine.begin() as conn:
        conn.execute(insert(blobs), [{"digest": d, "size": s, "created_at": 0.0}
                                     for d, s in orphans.items()])
    listed = [d for d, _ in db.gc_blob_candidates(time.time(), limit=10)]
    assert sorted(listed) == listed and set(listed) == set(orphans)
    claimed = listed[1]
    db.link_blob("team/app", claimed, orphans[claimed])  # a push mounts it meanwhile

    gone = db.gc_delete_blobs(listed, time.time())

    assert sorted(gone) == sorted(d for d in listed if d != claimed)
    assert db.blob_size_in_repository("team/app", claimed) == orphans[claimed]
    # the walk goes on after the last digest it saw, never back over it
    assert db.gc_blob_candidates(time.time(), limit=10, after=listed[-1]) == []


def test_gc_drops_every_slice_of_many_unlinked_manifests(parts) -> None:
    """They are deleted 1,000 to a statement (one IN list of them all would pass stock
    SQLite's 32,766 bound parameters, or PostgreSQL's 65,535): none may be left over."""
    db, _, _ = parts
    count = 2_500
    rows = [{"digest": f"sha256:{i:064x}", "media_type": MEDIA, "size": 2, "content": b"{}",
             "created_at": 0.0} for i in range(count)]
    with db.engine.begin() as conn:
        conn.execute(insert(manifests), rows)
        conn.execute(insert(manifest_references), [
            {"manifest_digest": r["digest"], "target_digest": "sha256:" + "f" * 64,
             "kind": "blob"} for r in rows])

    gone, _ = db.gc_mark(time.time())

    assert len(gone) == count
    with db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(manifests)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(manifest_references)
                            ).scalar_one() == 0
