"""The BlobStore contract, the same for the filesystem and for S3 (a real SeaweedFS).

The core relies on exactly these behaviours: ranges, a chunk that is all or nothing,
upload_read returning what was staged (to rebuild a hash after a restart or on another
replica), and a commit that yields the exact bytes whatever the chunk sizes were.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable

import httpx
import pytest

from moorage.store.base import BlobStore
from moorage.store.filesystem import FilesystemBlobStore
from tests.store.helpers import append, blob, digest_of, new_upload, payload, staged

MiB = 1 << 20


# -- blobs ------------------------------------------------------------------------------------
def test_put_read_size_delete(store: BlobStore) -> None:
    data = payload(3000)
    digest = digest_of(data)
    assert store.size(digest) is None
    store.put(digest, data)
    assert store.size(digest) == 3000
    assert blob(store, digest) == data
    store.put(digest, data)  # idempotent
    assert store.size(digest) == 3000
    store.delete(digest)
    assert store.size(digest) is None
    store.delete(digest)  # deleting what is gone is fine


@pytest.mark.parametrize("start,end", [(0, 1), (0, 3000), (1, 2999), (100, 101), (2999, 3000),
                                       (1000, None), (0, None), (2500, 5000), (3000, None),
                                       (4000, None), (7, 7)])
def test_ranges(store: BlobStore, start: int, end: int | None) -> None:
    data = payload(3000, seed=1)
    digest = digest_of(data)
    store.put(digest, data)
    assert blob(store, digest, start, end) == data[start:end]


def test_read_in_small_pieces(store: BlobStore) -> None:
    data = payload(10_000, seed=2)
    digest = digest_of(data)
    store.put(digest, data)
    pieces = list(store.read(digest, 10, 9_990, chunk_size=1000))
    assert b"".join(pieces) == data[10:9_990]
    assert max(len(p) for p in pieces) <= 1000


def test_missing_blob(store: BlobStore) -> None:
    digest = digest_of(b"never stored")
    assert store.size(digest) is None
    with pytest.raises(FileNotFoundError):
        blob(store, digest)


def test_empty_blob(store: BlobStore) -> None:
    digest = digest_of(b"")
    store.put(digest, b"")
    assert store.size(digest) == 0
    assert blob(store, digest) == b""


# -- uploads ----------------------------------------------------------------------------------
def test_new_upload_is_empty_and_unknown_upload_is_none(store: BlobStore) -> None:
    upload_id = new_upload(store)
    assert store.upload_size(upload_id) == 0
    assert staged(store, upload_id) == b""
    assert store.upload_size("0" * 32) is None
    with pytest.raises(FileNotFoundError):
        staged(store, "0" * 32)


def test_many_chunks_of_odd_sizes_commit_to_the_exact_bytes(store: BlobStore) -> None:
    # 7 MiB and 5 MiB chunks can be copied server-side on S3, 9 MiB is a two-part multipart
    # chunk, and the small ones between force reads that stitch parts together.
    sizes = [1, 7 * MiB, 1, 9 * MiB, 3, 5 * MiB, 100_000, 1]
    chunks = [payload(size, seed=i) for i, size in enumerate(sizes)]
    upload_id = new_upload(store)
    offset = 0
    for chunk in chunks:
        offset = append(store, upload_id, chunk)
        assert store.upload_size(upload_id) == offset
    data = b"".join(chunks)
    assert staged(store, upload_id) == data
    digest = digest_of(data)
    store.upload_commit(upload_id, digest)
    assert store.upload_size(upload_id) is None
    assert store.size(digest) == len(data)
    assert hashlib.sha256(blob(store, digest)).hexdigest() == digest.split(":")[1]
    assert blob(store, digest, 7 * MiB - 5, 7 * MiB + 5) == data[7 * MiB - 5:7 * MiB + 5]


@pytest.mark.parametrize("sizes", [[], [0], [1], [5], [1, 2, 3], [1000, 0, 1], [70_000] * 5],
                         ids=str)
def test_small_uploads_commit(store: BlobStore, sizes: list[int]) -> None:
    chunks = [payload(size, seed=i + 10) for i, size in enumerate(sizes)]
    upload_id = new_upload(store)
    for chunk in chunks:
        append(store, upload_id, chunk)
    data = b"".join(chunks)
    assert store.upload_size(upload_id) == len(data)
    digest = digest_of(data)
    store.upload_commit(upload_id, digest)
    assert store.size(digest) == len(data)
    assert blob(store, digest) == data
    assert store.upload_size(upload_id) is None


@pytest.mark.parametrize("written", [0, 1000, 9 * MiB], ids=["nothing", "small", "multipart"])
def test_aborted_chunk_leaves_nothing(store: BlobStore, written: int) -> None:
    first, second = payload(4096, seed=20), payload(5000, seed=21)
    upload_id = new_upload(store)
    append(store, upload_id, first)
    writer = store.upload_chunk(upload_id, len(first))
    junk = payload(written, seed=22)
    for start in range(0, written, store.write_batch):
        writer.write(junk[start:start + store.write_batch])
    writer.abort()
    assert store.upload_size(upload_id) == len(first)
    assert staged(store, upload_id) == first
    append(store, upload_id, second)  # the client resumes where the upload stood
    assert staged(store, upload_id) == first + second
    digest = digest_of(first + second)
    store.upload_commit(upload_id, digest)
    assert blob(store, digest) == first + second


def test_upload_read_returns_exactly_the_staged_bytes(store: BlobStore) -> None:
    upload_id = new_upload(store)
    parts = [payload(n, seed=30 + n) for n in (1, 2, 65_536, 3, 100_001)]
    expected = b""
    for part in parts:
        append(store, upload_id, part)
        expected += part
        assert staged(store, upload_id) == expected
        rehash = hashlib.sha256()
        for piece in store.upload_read(upload_id, chunk_size=4096):
            assert len(piece) <= 4096
            rehash.update(piece)
        assert rehash.hexdigest() == hashlib.sha256(expected).hexdigest()


def test_two_replicas_continue_one_upload(make_store: Callable[[], BlobStore]) -> None:
    a, b, c = make_store(), make_store(), make_store()
    upload_id = new_upload(a)
    one, two, three = payload(1234, seed=40), payload(77_777, seed=41), payload(5, seed=42)
    append(a, upload_id, one)
    assert b.upload_size(upload_id) == len(one)
    append(b, upload_id, two)
    assert staged(a, upload_id) == one + two  # a rebuilds its hash from b's chunk
    append(c, upload_id, three)
    digest = digest_of(one + two + three)
    a.upload_commit(upload_id, digest)
    assert b.upload_size(upload_id) is None
    assert blob(c, digest) == one + two + three


def test_commit_of_a_blob_that_already_exists(store: BlobStore) -> None:
    data = payload(50_000, seed=50)
    digest = digest_of(data)
    store.put(digest, data)
    upload_id = new_upload(store)
    append(store, upload_id, data[:20_000])
    append(store, upload_id, data[20_000:])
    store.upload_commit(upload_id, digest)
    assert store.upload_size(upload_id) is None
    assert blob(store, digest) == data


def test_upload_delete(store: BlobStore) -> None:
    upload_id = new_upload(store)
    append(store, upload_id, b"some bytes")
    store.upload_delete(upload_id)
    assert store.upload_size(upload_id) is None
    store.upload_delete(upload_id)  # twice is fine


def test_concurrent_uploads_from_threads(store: BlobStore) -> None:
    """The core calls the store from worker threads, many uploads at once."""
    results: dict[int, bytes] = {}
    errors: list[BaseException] = []

    def push(n: int) -> None:
        try:
            upload_id = new_upload(store)
            chunks = [payload(1000 * (n + 1) + k, seed=100 * n + k) for k in range(4)]
            for chunk in chunks:
                append(store, upload_id, chunk)
            data = b"".join(chunks)
            store.upload_commit(upload_id, digest_of(data))
            results[n] = data
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for data in results.values():
        assert blob(store, digest_of(data)) == data


def test_presigned_url(store: BlobStore) -> None:
    """S3 hands out URLs a client fetches directly (a 307 target), Range included; the
    filesystem has none and never redirects."""
    data = payload(4000, seed=60)
    digest = digest_of(data)
    store.put(digest, data)
    url = store.presigned_url(digest)
    if isinstance(store, FilesystemBlobStore):
        assert url is None and store.redirect is False
        return
    assert url is not None
    whole = httpx.get(url)
    assert whole.status_code == 200 and whole.content == data
    part = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == "bytes 100-199/4000"
    tampered = httpx.get(url.replace(digest.split(":")[1], digest_of(b"other").split(":")[1]))
    assert tampered.status_code == 403
