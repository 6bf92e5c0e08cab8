"""The core's UploadManager on the S3 store, as two replicas sharing a database and a bucket.

This is the reason all upload state lives in the bucket: replica B takes a chunk that replica A
started, rebuilds the running hash from the staged chunks (upload_read), and A commits the
whole after B's chunk (rebuilding again, as its in-memory hash is stale). A failed chunk in
the middle leaves nothing and the upload carries on.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from moorage.db.metadata import MetadataStore, open_engine, sqlite_url
from moorage.oci.errors import RegistryError
from moorage.registry.locks import FileBlobLock, FileUploadLock
from moorage.registry.uploads import UploadManager
from tests.store.conftest import s3_store
from tests.support.seaweed import SeaweedS3

MiB = 1 << 20


async def body(data: bytes, piece: int = 256 * 1024, fail_after: int | None = None
               ) -> AsyncIterator[bytes]:
    for start in range(0, len(data), piece):
        if fail_after is not None and start >= fail_after:
            raise ConnectionError("client went away")
        yield data[start:start + piece]


def test_upload_moves_between_replicas(seaweed: SeaweedS3, tmp_path: Path) -> None:
    db = MetadataStore(open_engine(sqlite_url(tmp_path)))
    db.create_schema()
    prefix = f"tests/{uuid.uuid4().hex}"
    stores = [s3_store(seaweed, prefix), s3_store(seaweed, prefix)]
    a, b = (UploadManager(db, s, FileBlobLock(tmp_path / "lock"),
                          FileUploadLock(tmp_path / "upload-locks")) for s in stores)
    one, two, three = b"x" * 1000, bytes(range(256)) * 40_000, b"tail"  # two: ~9.8 MiB
    data = one + two + three
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    async def run() -> None:
        upload_id = await a.start("library/app")
        assert await a.append("library/app", upload_id, body(one)) == len(one)
        with pytest.raises(ConnectionError):  # a chunk that breaks off halfway leaves nothing
            await b.append("library/app", upload_id, body(two, fail_after=len(two) // 2))
        assert await b.offset("library/app", upload_id) == len(one)
        assert await b.append("library/app", upload_id, body(two)) == len(one + two)
        size = await a.finish("library/app", upload_id, digest, body(three))
        assert size == len(data)

        wrong = await a.start("library/app")
        await b.append("library/app", wrong, body(b"abc"))
        with pytest.raises(RegistryError) as info:
            await a.finish("library/app", wrong, "sha256:" + "0" * 64)
        assert info.value.code == "DIGEST_INVALID"
        assert stores[1].upload_size(wrong) is None  # a mismatch leaves nothing behind

    asyncio.run(run())
    assert db.blob_size_in_repository("library/app", digest) == len(data)
    assert b"".join(stores[1].read(digest)) == data
    for store in stores:
        store.close()


def test_monolithic_upload_is_staged_at_its_blob_key(seaweed: SeaweedS3, tmp_path: Path) -> None:
    """A PUT that brings the whole blob with its digest is staged where the blob will live
    and revealed only once the digest is checked: a wrong digest leaves nothing, not even an
    unfinished multipart upload; a right one makes the blob, with no upload left behind."""
    db = MetadataStore(open_engine(sqlite_url(tmp_path)))
    db.create_schema()
    store = s3_store(seaweed, f"tests/{uuid.uuid4().hex}", part_size=5 * MiB)
    manager = UploadManager(db, store, FileBlobLock(tmp_path / "lock"),
                            FileUploadLock(tmp_path / "upload-locks"))
    data = bytes(range(256)) * 30_000  # ~7.3 MiB: one part and a tail
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    lying = "sha256:" + hashlib.sha256(b"something else").hexdigest()

    def unfinished() -> list[str]:
        found = store.client.list_multipart_uploads(Bucket=store.bucket,
                                                    Prefix=f"{store.prefix}/")
        return [u["Key"] for u in found.get("Uploads", []) or []]

    async def run() -> None:
        wrong = await manager.start("library/app")
        with pytest.raises(RegistryError) as info:
            await manager.finish("library/app", wrong, lying, body(data))
        assert info.value.code == "DIGEST_INVALID"
        assert store.upload_size(wrong) is None and store.size(lying) is None
        assert unfinished() == []

        right = await manager.start("library/app")
        assert await manager.finish("library/app", right, digest, body(data)) == len(data)
        assert store.upload_size(right) is None and unfinished() == []

    asyncio.run(run())
    assert db.blob_size_in_repository("library/app", digest) == len(data)
    assert b"".join(store.read(digest)) == data
    store.close()


def test_chunked_upload_in_big_chunks_commits_its_run(seaweed: SeaweedS3, tmp_path: Path) -> None:
    """PATCHes of 5 MiB (the way Docker's and the bench's clients send them) become parts of
    one multipart upload that the commit completes where it is, after the digest is checked.
    A wrong digest leaves nothing; a replica without the running hash reads the run back
    (sealing it) and the upload still commits to the right bytes."""
    db = MetadataStore(open_engine(sqlite_url(tmp_path)))
    db.create_schema()
    prefix = f"tests/{uuid.uuid4().hex}"
    stores = [s3_store(seaweed, prefix, part_size=5 * MiB) for _ in range(2)]
    a, b = (UploadManager(db, s, FileBlobLock(tmp_path / "lock"),
                          FileUploadLock(tmp_path / "upload-locks")) for s in stores)
    chunks = [bytes([n]) * 5 * MiB for n in range(3)]
    data = b"".join(chunks)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    def leftovers() -> tuple[list[str], list[str]]:
        store = stores[0]
        found = store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=f"{prefix}/")
        listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix=f"{prefix}/")
        return ([u["Key"] for u in found.get("Uploads", []) or []],
                [o["Key"][len(prefix) + 1:] for o in listed.get("Contents", [])])

    async def run() -> None:
        wrong = await a.start("library/app")
        for chunk in chunks:
            await a.append("library/app", wrong, body(chunk))
        with pytest.raises(RegistryError) as info:
            await a.finish("library/app", wrong, "sha256:" + "0" * 64)
        assert info.value.code == "DIGEST_INVALID"
        assert leftovers() == ([], [])  # no blob, no upload, no run, no data object

        upload_id = await a.start("library/app")
        await a.append("library/app", upload_id, body(chunks[0]))
        await b.append("library/app", upload_id, body(chunks[1]))  # b re-hashes: seals the run
        await a.append("library/app", upload_id, body(chunks[2]))  # a's hash is stale: again
        assert await a.finish("library/app", upload_id, digest) == len(data)

        same = await a.start("library/app")  # one replica all along: nothing is copied
        for chunk in reversed(chunks):
            await a.append("library/app", same, body(chunk))
        assert await a.finish("library/app", same, other) == len(data)
        head = stores[0].client.head_object(Bucket=stores[0].bucket,
                                            Key=stores[0].blob_key(other))
        assert head["ContentLength"] == 0 and head["Metadata"]["moorage-data"] == \
            stores[0].data_key(same)  # a pointer to the run, completed where it was

    other = "sha256:" + hashlib.sha256(b"".join(reversed(chunks))).hexdigest()
    asyncio.run(run())
    assert db.blob_size_in_repository("library/app", digest) == len(data)
    for store in stores:
        assert b"".join(store.read(digest)) == data
        assert b"".join(store.read(other)) == b"".join(reversed(chunks))
    unfinished, objects = leftovers()
    assert unfinished == [] and not any(key.startswith("uploads/") for key in objects)
    for store in stores:
        store.close()


def test_announced_chunks_stream_their_parts_and_a_wrong_length_leaves_nothing(
        seaweed: SeaweedS3, tmp_path: Path) -> None:
    """A PATCH that says its length (Content-Length) has its parts sent to the bucket while
    its body still arrives. A body shorter or longer than announced, or one that breaks off,
    fails with nothing of it kept: the upload stays at its size and carries on, and the
    commit makes exactly the bytes of the chunks that were accepted."""
    db = MetadataStore(open_engine(sqlite_url(tmp_path)))
    db.create_schema()
    prefix = f"tests/{uuid.uuid4().hex}"
    store = s3_store(seaweed, prefix, part_size=5 * MiB)
    manager = UploadManager(db, store, FileBlobLock(tmp_path / "lock"),
                            FileUploadLock(tmp_path / "upload-locks"))
    first, second, third = (bytes([7]) * 5 * MiB, bytes(range(256)) * 49_153,  # 12 MiB + 256
                            bytes([9]) * (5 * MiB + 3))
    data = first + second + third
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    seen_streaming: list[bool] = []

    async def watched(chunk: bytes) -> AsyncIterator[bytes]:
        """The chunk's body; before its last piece, is a part already on its way?"""
        async for piece in body(chunk[:-1]):
            yield piece
        await asyncio.sleep(0.2)  # (only lets the part's request start; asserts no timing)
        seen_streaming.append(any(t.name == "moorage-s3-part" for t in threading.enumerate()))
        yield chunk[-1:]

    async def run() -> None:
        upload_id = await manager.start("library/app")
        assert await manager.append("library/app", upload_id, watched(first),
                                    length=len(first)) == len(first)
        for bad, length in ((second[:-1], len(second)), (second + b"x", len(second))):
            with pytest.raises(RegistryError) as info:  # shorter, then longer than announced
                await manager.append("library/app", upload_id, body(bad), length=length)
            assert info.value.code == "SIZE_INVALID"
            assert await manager.offset("library/app", upload_id) == len(first)
        with pytest.raises(ConnectionError):  # a client that goes away mid-part
            await manager.append("library/app", upload_id,
                                 body(second, fail_after=7 * MiB), length=len(second))
        assert await manager.offset("library/app", upload_id) == len(first)
        assert await manager.append("library/app", upload_id, watched(second),
                                    length=len(second)) == len(first + second)
        assert await manager.append("library/app", upload_id, body(third),
                                    length=len(third)) == len(data)
        names = [o["Key"][len(store.upload_prefix(upload_id)):] for o in store.client.
                 list_objects_v2(Bucket=store.bucket, Prefix=store.upload_prefix(upload_id))
                 .get("Contents", [])]
        assert [n[:4] for n in names if n.startswith("run-")] == ["run-"] * 3
        assert [n.rsplit("-", 2)[1:] for n in names if n.startswith("run-")] == [
            ["00001", "00001"], ["00002", "00003"], ["00004", "00004"]]  # 12 MiB: two parts
        assert await manager.finish("library/app", upload_id, digest) == len(data)

    asyncio.run(run())
    assert seen_streaming == [True, True]
    assert b"".join(store.read(digest)) == data
    head = store.client.head_object(Bucket=store.bucket, Key=store.blob_key(digest))
    assert head["ContentLength"] == 0  # a pointer: the run was completed where it was
    found = store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=f"{prefix}/")
    assert found.get("Uploads", []) in ([], None)
    store.close()
