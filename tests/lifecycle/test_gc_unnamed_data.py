"""GC on S3 removes the data objects no blob names, and never one a blob needs.

A chunked upload's bytes are completed at `data/<upload id>` and a pointer at the blob key
names them. A replica that dies between the two leaves a data object no pointer names; its
upload expires, and nothing else would ever delete it. Here the death is injected where it
happens (the pointer's PutObject never leaves the replica), on real parts: SeaweedFS, the
metadata store on SQLite, the core's UploadManager on two replicas' stores, GC's
collect_garbage with a clock of the test's own instead of sleeps.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from moorage.db.metadata import MetadataStore, NewManifest, open_engine, sqlite_url
from moorage.registry.gc import collect_garbage
from moorage.registry.locks import FileBlobLock, FileUploadLock
from moorage.registry.uploads import UploadManager
from moorage.store.s3 import S3BlobStore
from tests.support.seaweed import SeaweedS3

MiB = 1 << 20
GRACE = 3600.0
REPO = "team/app"
MEDIA = "application/vnd.oci.image.manifest.v1+json"


class ReplicaDied(Exception):
    """What the injected death looks like to the code that was running."""


@pytest.fixture(scope="module")
def seaweed() -> SeaweedS3:
    from tests.support.backends import shared

    return shared().bucket()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def body(data: bytes, piece: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), piece):
        yield data[start:start + piece]


def die_before_the_pointer(store: S3BlobStore) -> Any:
    """The replica dies as it is about to write a pointer (after completing the run)."""
    def check(params: dict[str, Any], **_: Any) -> None:
        if "moorage-data" in (params.get("Metadata") or {}):
            raise ReplicaDied(params["Key"])

    store.client.meta.events.register("provide-client-params.s3.PutObject", check)
    return check


def data_objects(store: S3BlobStore) -> dict[str, int]:
    listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix=store._key("data/"))
    return {o["Key"]: o["Size"] for o in listed.get("Contents", [])}


def referenced(db: MetadataStore, digest: str, size: int) -> None:
    """A tagged manifest of REPO referencing the blob: it is live, whatever the clock."""
    content = json.dumps({"schemaVersion": 2, "mediaType": MEDIA, "layers": [
        {"mediaType": "application/octet-stream", "digest": digest, "size": size}]}).encode()
    db.put_manifest(REPO, NewManifest(digest=digest_of(content), media_type=MEDIA,
                                      content=content, subject=None, artifact_type=None,
                                      annotations=None, blob_digests=(digest,),
                                      child_digests=()), ["v1"])


@pytest.fixture
def replicas(seaweed: SeaweedS3, tmp_path: Path
             ) -> Iterator[tuple[MetadataStore, list[S3BlobStore], list[UploadManager],
                                 FileBlobLock]]:
    db = MetadataStore(open_engine(sqlite_url(tmp_path)))
    db.create_schema()
    prefix = f"tests/{uuid.uuid4().hex}"
    stores = [S3BlobStore(seaweed.bucket, prefix, endpoint=seaweed.endpoint,
                          region=seaweed.region, access_key=seaweed.access_key,
                          secret_key=seaweed.secret_key, part_size=5 * MiB) for _ in range(2)]
    lock = FileBlobLock(tmp_path / "locks" / "blobs")
    managers = [UploadManager(db, store, lock, FileUploadLock(tmp_path / "upload-locks"))
                for store in stores]
    yield db, stores, managers, lock
    for store in stores:
        store.close()
    db.engine.dispose()


def test_gc_removes_the_data_a_dead_commit_left_and_never_a_blobs(replicas) -> None:
    db, (a, b), (on_a, on_b), lock = replicas
    live = bytes([1]) * 5 * MiB + bytes([2]) * (6 * MiB + 5)
    lost = bytes([3]) * 5 * MiB + bytes([4]) * 5 * MiB
    now = time.time()

    def gc(at: float) -> Any:
        return collect_garbage(db, a, lock, GRACE, clock=lambda: at)

    async def push_until_the_pointer(manager: UploadManager, data: bytes) -> str:
        upload_id = await manager.start(REPO)
        for start in range(0, len(data), 6 * MiB):
            piece = data[start:start + 6 * MiB]
            await manager.append(REPO, upload_id, body(piece), length=len(piece))
        with pytest.raises(ReplicaDied):
            await manager.finish(REPO, upload_id, digest_of(data))
        return upload_id

    async def run() -> tuple[str, str]:
        crash = die_before_the_pointer(a)
        first = await push_until_the_pointer(on_a, live)
        second = await push_until_the_pointer(on_a, lost)
        a.client.meta.events.unregister("provide-client-params.s3.PutObject", crash)
        assert set(data_objects(a)) == {a.data_key(first), a.data_key(second)}
        assert a.size(digest_of(live)) is None and a.size(digest_of(lost)) is None

        # Both uploads are still there (their clients may retry the PUT): however old their
        # data objects look, GC keeps them, as a pointer may be about to name them.
        result = gc(now + 10 * GRACE)
        assert result.unnamed == 0
        assert set(data_objects(a)) == {a.data_key(first), a.data_key(second)}

        # The first client retries its PUT, on the other replica: the blob is the run's.
        assert await on_b.finish(REPO, first, digest_of(live)) == len(live)
        # The second gives up: its upload is cancelled, and leaves its data object behind.
        await on_b.cancel(REPO, second)
        assert b.upload_size(second) is None
        return first, second

    first, second = asyncio.run(run())
    referenced(db, digest_of(live), len(live))
    assert set(data_objects(a)) == {a.data_key(first), a.data_key(second)}

    # within the grace period nothing goes; a dry run past it says what would
    assert gc(now).unnamed == 0 and len(data_objects(a)) == 2
    dry = collect_garbage(db, a, lock, GRACE, dry_run=True, clock=lambda: now + 2 * GRACE)
    assert (dry.unnamed, dry.unnamed_bytes) == (1, len(lost)) and len(data_objects(a)) == 2

    result = gc(now + 2 * GRACE)
    assert (result.unnamed, result.unnamed_bytes) == (1, len(lost))
    assert result.as_dict()["unnamed_data_deleted"] == 1
    remaining = data_objects(a)
    assert remaining == {a.data_key(first): len(live)}  # the live blob's data object stays
    assert b"".join(b.read(digest_of(live))) == live
    assert b"".join(a.read(digest_of(live))) == live
    assert db.blob_size_in_repository(REPO, digest_of(live)) == len(live)
    assert gc(now + 100 * GRACE).unnamed == 0 and data_objects(a) == remaining


def test_gc_removes_the_data_of_the_commit_that_lost_a_race_for_one_digest(replicas) -> None:
    """Two uploads of the same bytes commit at once on two replicas: both find no blob, both
    complete their runs, and the last pointer written wins. The loser's data object is then
    named by nothing. The interleaving is made exact: replica B's whole commit runs at the
    moment replica A is about to write its pointer."""
    db, (a, b), (on_a, on_b), lock = replicas
    data = bytes([5]) * 5 * MiB + bytes([6]) * (5 * MiB + 1)
    digest = digest_of(data)
    now = time.time()
    raced: list[str] = []

    async def staged(manager: UploadManager) -> str:
        upload_id = await manager.start(REPO)
        for start in range(0, len(data), 5 * MiB):
            piece = data[start:start + 5 * MiB]
            await manager.append(REPO, upload_id, body(piece), length=len(piece))
        return upload_id

    first, second = asyncio.run(staged(on_a)), asyncio.run(staged(on_b))

    def b_commits_now(params: dict[str, Any], **_: Any) -> None:
        if "moorage-data" in (params.get("Metadata") or {}) and not raced:
            raced.append(params["Key"])
            assert asyncio.run(on_b.finish(REPO, second, digest)) == len(data)

    a.client.meta.events.register("provide-client-params.s3.PutObject", b_commits_now)
    assert asyncio.run(on_a.finish(REPO, first, digest)) == len(data)
    a.client.meta.events.unregister("provide-client-params.s3.PutObject", b_commits_now)
    assert raced == [a.blob_key(digest)]
    referenced(db, digest, len(data))
    # A's pointer came last: B's data object is named by nothing, its upload is gone
    assert set(data_objects(a)) == {a.data_key(first), a.data_key(second)}
    head = a.client.head_object(Bucket=a.bucket, Key=a.blob_key(digest))
    assert head["Metadata"]["moorage-data"] == a.data_key(first)

    assert collect_garbage(db, a, lock, GRACE, clock=lambda: now).unnamed == 0
    result = collect_garbage(db, b, lock, GRACE, clock=lambda: now + 2 * GRACE)
    assert (result.unnamed, result.unnamed_bytes) == (1, len(data))
    assert data_objects(a) == {a.data_key(first): len(data)}
    assert b"".join(b.read(digest)) == data and b"".join(a.read(digest)) == data
