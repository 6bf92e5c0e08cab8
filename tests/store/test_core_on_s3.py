"""The core's UploadManager on the S3 store, as two replicas sharing a database and a bucket.

This is the reason all upload state lives in the bucket: replica B takes a chunk that replica A
started, rebuilds the running hash from the staged chunks (upload_read), and A commits the
whole after B's chunk (rebuilding again, as its in-memory hash is stale). A failed chunk in
the middle leaves nothing and the upload carries on.
"""

from __future__ import annotations

import asyncio
import hashlib
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
