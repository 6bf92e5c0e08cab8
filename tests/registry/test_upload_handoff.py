"""An upload finished by another worker: the digest noted on the staged upload saves the
re-hash, and only when it still describes exactly the bytes staged.

Two UploadManagers over one database and one blob folder are two granian workers; skopeo's
closing PUT often arrives on a connection the other worker serves.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from moorage.db.metadata import MetadataStore
from moorage.oci.errors import RegistryError
from moorage.registry.uploads import UploadManager
from moorage.store.filesystem import FilesystemBlobStore
from tests.registry.helpers import body, workers

REPO = "library/app"


class ObservedStore(FilesystemBlobStore):
    """The real filesystem store, counting how often staged bytes are read back."""

    reads = 0

    def upload_read(self, upload_id: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        type(self).reads += 1
        return super().upload_read(upload_id, chunk_size)


@pytest.fixture()
def pair(tmp_path: Path) -> tuple[UploadManager, UploadManager, MetadataStore, Path]:
    ObservedStore.reads = 0
    (a, b), db = workers(tmp_path, 2, ObservedStore)
    return a, b, db, tmp_path / "blobs"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_put_on_the_other_worker_uses_the_noted_digest(pair) -> None:  # type: ignore[no-untyped-def]
    a, b, db, _ = pair
    data = b"layer " * 50_000

    async def run() -> int:
        upload_id = await a.start(REPO)
        await a.append(REPO, upload_id, body(data[:100_000]))
        await a.append(REPO, upload_id, body(data[100_000:]))
        return await b.finish(REPO, upload_id, sha256(data))

    assert asyncio.run(run()) == len(data)
    assert ObservedStore.reads == 0  # nothing re-read: the note gave the digest
    assert db.blob_size_in_repository(REPO, sha256(data)) == len(data)


def test_the_noted_digest_still_refuses_the_wrong_digest(pair) -> None:  # type: ignore[no-untyped-def]
    a, b, db, _ = pair

    async def run() -> str:
        upload_id = await a.start(REPO)
        await a.append(REPO, upload_id, body(b"abc"))
        with pytest.raises(RegistryError) as info:
            await b.finish(REPO, upload_id, sha256(b"abd"))
        assert info.value.code == "DIGEST_INVALID"
        return upload_id

    upload_id = asyncio.run(run())
    assert db.upload(upload_id) is None and db.blob_size_in_repository(REPO, sha256(b"abd")) is None


def test_a_note_for_another_size_is_not_trusted(pair) -> None:  # type: ignore[no-untyped-def]
    """Bytes staged after the note (a chunk whose note could not be written, a crash between
    the two) make the note stale: the digest is then computed from the staged bytes."""
    a, b, _, blobs = pair
    data = b"0123456789" * 1000

    async def run() -> int:
        upload_id = await a.start(REPO)
        await a.append(REPO, upload_id, body(data))
        with open(blobs / "uploads" / upload_id, "ab") as staged:  # bytes past the note
            staged.write(b"tail")
        return await b.finish(REPO, upload_id, sha256(data + b"tail"))

    assert asyncio.run(run()) == len(data) + 4
    assert ObservedStore.reads == 1


def test_a_chunk_taken_by_the_other_worker_moves_the_note(pair) -> None:  # type: ignore[no-untyped-def]
    """Worker A's own running hash is stale once B appended; A then trusts the note B left,
    which covers every byte, and does not re-read them."""
    a, b, _, _ = pair
    one, two = b"first " * 1000, b"second " * 1000

    async def run() -> int:
        upload_id = await a.start(REPO)
        await a.append(REPO, upload_id, body(one))
        await b.append(REPO, upload_id, body(two))  # B rebuilds the hash from the staged bytes
        reads_after_b = ObservedStore.reads
        size = await a.finish(REPO, upload_id, sha256(one + two))
        assert ObservedStore.reads == reads_after_b == 1
        return size

    assert asyncio.run(run()) == len(one + two)
