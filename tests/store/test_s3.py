"""What is particular to the S3 store: its layout in the bucket, multipart hygiene, the
commit plan for any chunk sizes, resumed reads, presigning hosts and configuration."""

from __future__ import annotations

import calendar
import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ResponseStreamingError
from hypothesis import given, settings, strategies as st

from moorage.cache.redirects import reusable_until
from moorage.settings import Settings, SettingsError, load_settings
from moorage.store.base import StagedUploadInvalid
from moorage.store.factory import open_blob_store, parse_storage_url
from moorage.store.filesystem import FilesystemBlobStore
from moorage.store.s3 import (COPY_PIECE, MAX_PART, MAX_PARTS, MIN_PART, CopyPart, DataPart,
                              S3BlobStore, S3StoreError, plan_parts)
from tests.store.conftest import s3_store
from tests.store.helpers import append, digest_of, new_upload, payload, staged
from tests.support.seaweed import SeaweedS3

MiB = 1 << 20
GiB = 1 << 30


@pytest.fixture
def s3(seaweed: SeaweedS3) -> Iterator[S3BlobStore]:
    store = s3_store(seaweed, f"tests/{uuid.uuid4().hex}")
    yield store
    store.close()


def keys(store: S3BlobStore, prefix: str) -> list[str]:
    listing = store.client.list_objects_v2(Bucket=store.bucket, Prefix=prefix)
    return [o["Key"][len(prefix):] for o in listing.get("Contents", [])]


def multipart_uploads(store: S3BlobStore, prefix: str) -> list[str]:
    listing = store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=prefix)
    return [u["Key"] for u in listing.get("Uploads", []) or []]


# -- layout and hygiene -----------------------------------------------------------------------
def test_layout_one_object_per_chunk_named_by_offset(s3: S3BlobStore) -> None:
    upload_id = new_upload(s3)
    prefix = s3.upload_prefix(upload_id)
    assert keys(s3, prefix) == ["marker"]
    append(s3, upload_id, b"a" * 10)
    append(s3, upload_id, b"")  # an empty chunk leaves no object
    append(s3, upload_id, b"b" * 5)
    assert keys(s3, prefix) == ["chunk-00000000000000000000", "chunk-00000000000000000010",
                                "marker"]
    digest = digest_of(b"a" * 10 + b"b" * 5)
    s3.upload_commit(upload_id, digest)
    assert keys(s3, prefix) == []
    hexpart = digest.split(":")[1]
    assert keys(s3, f"{s3.prefix}/blobs/") == [f"sha256/{hexpart[:2]}/{hexpart}"]


def test_aborted_multipart_chunk_leaves_no_multipart_upload(seaweed: SeaweedS3) -> None:
    # The smallest legal part size exercises multipart with 5 MiB instead of 8 MiB.
    store = s3_store(seaweed, f"tests/{uuid.uuid4().hex}", part_size=5 * MiB)
    upload_id = new_upload(store)
    prefix = store.upload_prefix(upload_id)
    append(store, upload_id, b"head")  # a small first chunk: no run, later chunks are objects
    writer = store.upload_chunk(upload_id, 4)
    writer.write(payload(10 * MiB + 1))
    assert multipart_uploads(store, prefix) == [prefix + "chunk-00000000000000000004"]
    writer.abort()
    assert multipart_uploads(store, prefix) == []
    assert keys(store, prefix) == ["chunk-00000000000000000000", "marker"]
    # exactly one part: a multipart upload with no trailing part of its own
    data = payload(5 * MiB, seed=3)
    append(store, upload_id, data)
    assert staged(store, upload_id) == b"head" + data
    store.close()


def test_upload_delete_sweeps_what_a_dead_replica_left(s3: S3BlobStore) -> None:
    upload_id = new_upload(s3)
    append(s3, upload_id, b"x" * 100)
    prefix = s3.upload_prefix(upload_id)
    # a replica died while streaming the next chunk: its multipart upload was never finished
    s3.client.create_multipart_upload(Bucket=s3.bucket, Key=prefix + "chunk-00000000000000000100")
    assert len(multipart_uploads(s3, prefix)) == 1
    s3.upload_delete(upload_id)
    assert keys(s3, prefix) == [] and multipart_uploads(s3, prefix) == []
    assert s3.upload_size(upload_id) is None


# -- a last chunk staged at its blob key -------------------------------------------------------
def staged_store(seaweed: SeaweedS3) -> S3BlobStore:
    return s3_store(seaweed, f"tests/{uuid.uuid4().hex}", part_size=5 * MiB)


def write_last(store: S3BlobStore, upload_id: str, data: bytes, digest: str) -> None:
    writer = store.upload_last_chunk(upload_id, 0, digest)
    for start in range(0, len(data), MiB):
        writer.write(data[start:start + MiB])
    writer.commit()


def test_a_last_chunk_is_invisible_until_commit_and_needs_no_copy(seaweed: SeaweedS3) -> None:
    store = staged_store(seaweed)
    data = payload(11 * MiB + 3, seed=11)
    digest = digest_of(data)
    upload_id = new_upload(store)
    prefix = store.upload_prefix(upload_id)
    write_last(store, upload_id, data, digest)
    # staged where the blob will live, as an unfinished multipart upload: not a blob yet
    assert store.size(digest) is None
    assert multipart_uploads(store, store.blob_key(digest)) == [store.blob_key(digest)]
    assert store.upload_size(upload_id) == len(data)
    assert keys(store, prefix) == ["last-00000000000000000000-00000000000011534339", "marker",
                                   "staging"]
    store.upload_commit(upload_id, digest, size=len(data))
    assert b"".join(store.read(digest)) == data
    assert keys(store, prefix) == []
    assert multipart_uploads(store, f"{store.prefix}/") == []
    store.close()


def test_a_staged_last_chunk_goes_with_its_upload(seaweed: SeaweedS3) -> None:
    store = staged_store(seaweed)
    data = payload(6 * MiB, seed=12)
    digest = digest_of(data)
    upload_id = new_upload(store)
    write_last(store, upload_id, data, digest)
    store.upload_delete(upload_id)  # e.g. the digest did not match
    assert store.upload_size(upload_id) is None
    assert multipart_uploads(store, f"{store.prefix}/") == []
    assert store.size(digest) is None
    store.close()


def test_a_staged_last_chunk_is_refused_when_wrong(seaweed: SeaweedS3) -> None:
    store = staged_store(seaweed)
    data = payload(6 * MiB, seed=13)
    upload_id = new_upload(store)
    write_last(store, upload_id, data, digest_of(data))
    with pytest.raises(StagedUploadInvalid):  # a size other than the one hashed
        store.upload_commit(upload_id, digest_of(data), size=len(data) - 1)
    with pytest.raises(StagedUploadInvalid):  # bytes staged for another digest
        store.upload_commit(upload_id, digest_of(b"other"), size=len(data))
    with pytest.raises(StagedUploadInvalid):  # its bytes cannot be read back before commit
        b"".join(store.upload_read(upload_id))
    assert store.size(digest_of(b"other")) is None and store.size(digest_of(data)) is None
    store.upload_delete(upload_id)
    assert multipart_uploads(store, f"{store.prefix}/") == []
    store.close()


def test_a_last_chunk_a_dead_replica_left_mid_stream_is_swept(seaweed: SeaweedS3) -> None:
    store = staged_store(seaweed)
    data = payload(6 * MiB, seed=15)
    digest = digest_of(data)
    upload_id = new_upload(store)
    writer = store.upload_last_chunk(upload_id, 0, digest)
    writer.write(data)  # a part is on its way; then the replica dies: no commit, no abort
    writer._parts[0].result()  # type: ignore[attr-defined]
    assert multipart_uploads(store, store.blob_key(digest)) == [store.blob_key(digest)]
    assert store.upload_size(upload_id) == 0  # nothing of the chunk counts yet
    store.upload_delete(upload_id)  # e.g. another replica expires the upload
    assert multipart_uploads(store, f"{store.prefix}/") == []
    assert keys(store, store.upload_prefix(upload_id)) == []
    store.close()


def test_a_small_or_later_last_chunk_is_an_ordinary_chunk(seaweed: SeaweedS3) -> None:
    store = staged_store(seaweed)
    upload_id = new_upload(store)
    prefix = store.upload_prefix(upload_id)
    write_last(store, upload_id, b"small", digest_of(b"small"))  # below one part: a PUT
    assert keys(store, prefix) == ["chunk-00000000000000000000", "marker"]
    tail = payload(6 * MiB, seed=14)
    whole = b"small" + tail
    writer = store.upload_last_chunk(upload_id, 5, digest_of(whole))  # not at offset 0
    writer.write(tail)
    writer.commit()
    assert keys(store, prefix) == ["chunk-00000000000000000000", "chunk-00000000000000000005",
                                   "marker"]
    store.upload_commit(upload_id, digest_of(whole), size=len(whole))
    assert b"".join(store.read(digest_of(whole))) == whole
    store.close()


# -- a chunked upload's run: big chunks as parts of one multipart upload, no copy on commit ----
def run_store(seaweed: SeaweedS3, prefix: str | None = None) -> S3BlobStore:
    return s3_store(seaweed, prefix or f"tests/{uuid.uuid4().hex}", part_size=5 * MiB)


def pointer(store: S3BlobStore, digest: str) -> dict[str, str]:
    head = store.client.head_object(Bucket=store.bucket, Key=store.blob_key(digest))
    assert head["ContentLength"] == 0
    return dict(head.get("Metadata") or {})


def data_objects(store: S3BlobStore) -> list[str]:
    return keys(store, f"{store.prefix}/data/")


def test_big_chunks_join_one_run_and_commit_without_a_copy(seaweed: SeaweedS3) -> None:
    store = run_store(seaweed)
    chunks = [payload(5 * MiB, seed=1), payload(12 * MiB + 7, seed=2), payload(5 * MiB, seed=3)]
    whole = b"".join(chunks)
    digest = digest_of(whole)
    upload_id = new_upload(store)
    prefix = store.upload_prefix(upload_id)
    for chunk in chunks:
        append(store, upload_id, chunk)
    # one multipart upload at the data key, its parts named by each chunk's record
    assert multipart_uploads(store, f"{store.prefix}/") == [store.data_key(upload_id)]
    assert keys(store, prefix) == [
        "marker", "run",
        "run-00000000000000000000-00000000000005242880-00001-00001",
        "run-00000000000005242880-00000000000012582919-00002-00003",
        "run-00000000000017825799-00000000000005242880-00004-00004"]
    assert store.upload_size(upload_id) == len(whole)
    assert store.size(digest) is None  # nothing visible before the commit
    store.upload_commit(upload_id, digest, size=len(whole))
    assert keys(store, prefix) == [] and multipart_uploads(store, f"{store.prefix}/") == []
    # the blob key holds a pointer to the completed run: its bytes were never copied
    assert pointer(store, digest) == {"moorage-data": store.data_key(upload_id),
                                      "moorage-size": str(len(whole))}
    assert store.size(digest) == len(whole)
    assert b"".join(store.read(digest)) == whole
    assert b"".join(store.read(digest, 5 * MiB - 3, 5 * MiB + 9)) == whole[5 * MiB - 3:5 * MiB + 9]
    other = run_store(seaweed, store.prefix)  # another replica, which remembers nothing
    assert b"".join(other.read(digest, 100)) == whole[100:]
    assert httpx.get(other.presigned_url(digest) or "").content == whole
    store.delete(digest)  # the pointer and its data object go
    assert store.size(digest) is None and data_objects(store) == []
    with pytest.raises(FileNotFoundError):
        b"".join(other.read(digest))  # what `other` remembered is gone too
    store.close()
    other.close()


def test_a_small_last_chunk_ends_the_run_as_its_last_part(seaweed: SeaweedS3) -> None:
    store = run_store(seaweed)
    whole = payload(5 * MiB, seed=4) + payload(5 * MiB + 1, seed=5) + b"tail"
    upload_id = new_upload(store)
    append(store, upload_id, whole[:5 * MiB])
    append(store, upload_id, whole[5 * MiB:-4])
    append(store, upload_id, b"tail")  # too small for a part: an object, copied at commit
    assert keys(store, store.upload_prefix(upload_id))[0] == "chunk-00000000000010485761"
    store.upload_commit(upload_id, digest_of(whole), size=len(whole))
    assert pointer(store, digest_of(whole))["moorage-data"] == store.data_key(upload_id)
    assert b"".join(store.read(digest_of(whole))) == whole
    store.close()


def test_chunks_after_the_run_are_copied_after_it(seaweed: SeaweedS3) -> None:
    store = run_store(seaweed)
    whole = payload(6 * MiB, seed=6) + b"small" + payload(6 * MiB, seed=7)
    upload_id = new_upload(store)
    for piece in (whole[:6 * MiB], b"small", whole[6 * MiB + 5:]):
        append(store, upload_id, piece)
    store.upload_commit(upload_id, digest_of(whole), size=len(whole))
    head = store.client.head_object(Bucket=store.bucket, Key=store.blob_key(digest_of(whole)))
    assert head["ContentLength"] == len(whole)  # an object of its own, not a pointer
    assert b"".join(store.read(digest_of(whole))) == whole
    assert data_objects(store) == [] and multipart_uploads(store, f"{store.prefix}/") == []
    store.close()


def test_reading_a_run_back_seals_it_and_the_upload_carries_on(seaweed: SeaweedS3) -> None:
    """A replica without the running hash reads the staged bytes: the run's parts cannot be
    read unfinished, so its multipart upload is completed; later chunks are objects."""
    store = run_store(seaweed)
    first, second = payload(6 * MiB, seed=8), payload(6 * MiB, seed=9)
    upload_id = new_upload(store)
    append(store, upload_id, first)
    assert staged(store, upload_id) == first
    assert "sealed" in keys(store, store.upload_prefix(upload_id))
    append(store, upload_id, second)
    assert staged(store, upload_id) == first + second
    store.upload_commit(upload_id, digest_of(first + second), size=len(first + second))
    assert b"".join(store.read(digest_of(first + second))) == first + second
    assert data_objects(store) == []
    # a sealed run with nothing after it needs no copy either
    again = new_upload(store)
    append(store, again, second)
    assert staged(store, again) == second
    store.upload_commit(again, digest_of(second), size=len(second))
    assert pointer(store, digest_of(second))["moorage-data"] == store.data_key(again)
    assert b"".join(store.read(digest_of(second))) == second
    store.close()


def test_a_failed_run_chunk_leaves_nothing_and_the_upload_resumes(seaweed: SeaweedS3) -> None:
    store = run_store(seaweed)
    first, second = payload(5 * MiB, seed=10), payload(11 * MiB, seed=11)
    upload_id = new_upload(store)
    append(store, upload_id, first)
    writer = store.upload_chunk(upload_id, len(first))
    writer.write(payload(16 * MiB, seed=12))  # other bytes; two parts go out, then it fails
    writer.abort()
    assert store.upload_size(upload_id) == len(first)
    append(store, upload_id, second)
    whole = first + second
    store.upload_commit(upload_id, digest_of(whole), size=len(whole))
    assert b"".join(store.read(digest_of(whole))) == whole  # the stray parts are not in it
    store.close()


def test_a_run_sealed_by_another_replica_meanwhile_takes_the_chunk_as_an_object(
        seaweed: SeaweedS3) -> None:
    """A chunk of 5 MiB decides at commit, on the listing upload_size made just before; if
    another replica sealed the run in between, the chunk becomes an object, not an error."""
    store = run_store(seaweed)
    other = run_store(seaweed, store.prefix)
    first, second = payload(5 * MiB, seed=17), payload(5 * MiB, seed=18)
    upload_id = new_upload(store)
    append(store, upload_id, first)
    assert store.upload_size(upload_id) == len(first)  # the core's listing, then...
    assert staged(other, upload_id) == first  # ...another replica seals the run
    writer = store.upload_chunk(upload_id, len(first))
    writer.write(second)
    writer.commit()
    assert "chunk-00000000000005242880" in keys(store, store.upload_prefix(upload_id))
    store.upload_commit(upload_id, digest_of(first + second), size=len(first + second))
    assert b"".join(other.read(digest_of(first + second))) == first + second
    store.close()
    other.close()


def test_a_part_replaced_after_its_record_never_makes_the_blob(seaweed: SeaweedS3) -> None:
    """What a replica that stalled mid-part and woke up after its lease would do. The commit
    names each part by its recorded ETag: S3 refuses the completion, SeaweedFS completes
    with the recorded upload of the part. Either way no other bytes get the digest."""
    store = run_store(seaweed)
    data = payload(5 * MiB, seed=13)
    upload_id = new_upload(store)
    append(store, upload_id, data)
    run = json.loads(store.client.get_object(
        Bucket=store.bucket, Key=store.upload_prefix(upload_id) + "run")["Body"].read())
    store.client.upload_part(Bucket=store.bucket, Key=run["key"], UploadId=run["upload_id"],
                             PartNumber=1, Body=payload(5 * MiB, seed=14))
    try:
        store.upload_commit(upload_id, digest_of(data), size=len(data))
    except StagedUploadInvalid:
        assert store.size(digest_of(data)) is None
        store.upload_delete(upload_id)
    else:
        assert b"".join(store.read(digest_of(data))) == data
        store.delete(digest_of(data))
    assert data_objects(store) == [] and multipart_uploads(store, f"{store.prefix}/") == []
    store.close()


@pytest.mark.parametrize("sealed", [False, True])
def test_a_deleted_upload_takes_its_run(seaweed: SeaweedS3, sealed: bool) -> None:
    store = run_store(seaweed)
    upload_id = new_upload(store)
    append(store, upload_id, payload(6 * MiB, seed=15))
    if sealed:
        staged(store, upload_id)
    store.upload_delete(upload_id)  # a wrong digest, a refused quota, an expired upload
    assert store.upload_size(upload_id) is None
    assert keys(store, f"{store.prefix}/") == []
    assert multipart_uploads(store, f"{store.prefix}/") == []
    store.close()


def test_a_run_for_a_blob_already_there_is_dropped(seaweed: SeaweedS3) -> None:
    store = run_store(seaweed)
    data = payload(6 * MiB, seed=16)
    first, second = new_upload(store), new_upload(store)
    append(store, first, data)
    append(store, second, data)
    store.upload_commit(first, digest_of(data), size=len(data))
    store.upload_commit(second, digest_of(data), size=len(data))
    assert pointer(store, digest_of(data))["moorage-data"] == store.data_key(first)
    assert data_objects(store) == [first]
    assert multipart_uploads(store, f"{store.prefix}/") == []
    assert b"".join(store.read(digest_of(data))) == data
    store.close()


def test_a_gap_between_chunks_is_refused(s3: S3BlobStore) -> None:
    upload_id = new_upload(s3)
    append(s3, upload_id, b"x" * 10)
    s3.client.put_object(Bucket=s3.bucket, Body=b"y",
                         Key=s3.upload_prefix(upload_id) + "chunk-00000000000000000011")
    with pytest.raises(S3StoreError, match="expected one at 10"):
        s3.upload_size(upload_id)


def test_commit_of_an_empty_upload(s3: S3BlobStore) -> None:
    upload_id = new_upload(s3)
    digest = digest_of(b"")
    s3.upload_commit(upload_id, digest)
    assert s3.size(digest) == 0


def test_a_read_that_breaks_off_resumes(s3: S3BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    data = payload(300_000, seed=7)
    digest = digest_of(data)
    s3.put(digest, data)
    real_get = s3.client.get_object
    ranges: list[str | None] = []

    def flaky_get(**kwargs: Any) -> Any:
        response = real_get(**kwargs)
        ranges.append(kwargs.get("Range"))
        if len(ranges) == 1:
            body, real_iter = response["Body"], response["Body"].iter_chunks

            def breaking(chunk_size: int) -> Iterator[bytes]:
                it = real_iter(chunk_size)
                yield next(it)
                raise ResponseStreamingError(error="connection reset")

            body.iter_chunks = breaking
        return response

    monkeypatch.setattr(s3.client, "get_object", flaky_get)
    assert b"".join(s3.read(digest, 1000, 299_000, chunk_size=65_536)) == data[1000:299_000]
    assert ranges == ["bytes=1000-298999", "bytes=66536-298999"]


# -- the commit plan ----------------------------------------------------------------------------
def check_plan(sizes: list[int], part_size: int = 8 * MiB) -> list[CopyPart | DataPart]:
    plan = plan_parts(sizes, part_size)
    covered: list[tuple[int, int, int]] = []
    for number, part in enumerate(plan, 1):
        assert part.size <= MAX_PART
        if number < len(plan):
            assert part.size >= MIN_PART, (number, part)
        pieces = [(part.chunk, part.start, part.end)] if isinstance(part, CopyPart) \
            else list(part.pieces)
        for chunk, start, end in pieces:
            assert 0 <= start < end <= sizes[chunk]
        covered += pieces
    # the parts cover every byte of every chunk, in order, exactly once
    position = [(c, s) for c, s, _ in covered]
    expected, cursor = [], {}
    for c, s, e in covered:
        expected.append((c, cursor.get(c, 0)))
        cursor[c] = e
    assert position == expected
    assert [cursor.get(i, 0) for i in range(len(sizes))] == sizes
    assert [c for c, _, _ in covered] == sorted(c for c, _, _ in covered)
    assert len(plan) <= MAX_PARTS
    return plan


sizes_strategy = st.lists(st.one_of(
    st.integers(1, 100), st.integers(MIN_PART - 2, MIN_PART + 2),
    st.integers(1, 20 * MiB), st.integers(MAX_PART - 1, MAX_PART + COPY_PIECE + 1),
    st.integers(1, 12 * GiB)), min_size=1, max_size=30)


@settings(max_examples=400, deadline=None)
@given(sizes_strategy)
def test_plan_is_valid_for_any_chunk_sizes(sizes: list[int]) -> None:
    check_plan(sizes)


def test_plan_copies_large_chunks_and_reads_only_what_it_must() -> None:
    plan = check_plan([20 * MiB, 1, 20 * MiB, 3])
    assert plan == [CopyPart(0, 0, 20 * MiB), DataPart(((1, 0, 1), (2, 0, MIN_PART - 1))),
                    CopyPart(2, MIN_PART - 1, 20 * MiB), CopyPart(3, 0, 3)]
    # a chunk over 5 GiB is copied in 1 GiB ranges
    assert [p.size for p in check_plan([6 * GiB])] == [GiB] * 6
    # ten thousand 1 KiB chunks fit in gathered parts of part_size
    assert len(check_plan([1024] * 10_000)) == 2


# -- presigning, configuration ---------------------------------------------------------------------
def test_presigned_url_for_a_public_endpoint(seaweed: SeaweedS3) -> None:
    store = s3_store(seaweed, "x", public_endpoint="https://registry-s3.example.com")
    url = store.presigned_url(digest_of(b"a"), expires=60)
    assert url is not None and url.startswith("https://registry-s3.example.com/")
    assert "X-Amz-Expires=60" in url
    store.close()


def _count_heads(store: S3BlobStore) -> list[str]:
    heads: list[str] = []
    store.client.meta.events.register(
        "before-call.s3.HeadObject", lambda params, **_: heads.append(params["url_path"]))
    return heads


def test_presigned_url_of_a_small_blob_needs_no_head_and_is_reused(s3: S3BlobStore) -> None:
    """Below POINTER_MIN_SIZE a blob is never a pointer: with its size from the database
    the blob key is signed without asking the bucket, and a URL signed for a key is reused
    while most of its validity is left (then signed afresh)."""
    data = b"small blob"
    digest = digest_of(data)
    s3.put(digest, data)
    heads = _count_heads(s3)
    url = s3.presigned_url(digest, expires=4, size=len(data))
    assert heads == [] and url is not None and httpx.get(url).content == data
    assert s3.presigned_url(digest, expires=4, size=len(data)) == url
    time.sleep(1.2)  # past a quarter of 4 s
    again = s3.presigned_url(digest, expires=4, size=len(data))
    assert again != url and httpx.get(again or "").content == data
    assert s3.presigned_url(digest, expires=4) == again and len(heads) == 1  # no size: HEAD


def test_presigned_url_follows_a_pointer_again_after_a_delete_and_a_new_push(
        seaweed: SeaweedS3) -> None:
    """A big blob may be a pointer, so its data object is found by a HEAD every time: a
    blob deleted and pushed again (a new data object) is never signed at its old object."""
    store, other = run_store(seaweed), None
    data = payload(6 * MiB, seed=7)
    digest = digest_of(data)

    def push() -> str:
        upload_id = new_upload(store)
        append(store, upload_id, data)
        store.upload_commit(upload_id, digest, size=len(data))
        return upload_id

    first = push()
    other = run_store(seaweed, store.prefix)  # another replica
    url = other.presigned_url(digest, size=len(data))
    assert url is not None and store.data_key(first).rpartition("/")[2] in url
    store.delete(digest)
    assert httpx.get(url).status_code == 404
    second = push()
    moved = other.presigned_url(digest, size=len(data))
    assert moved is not None and store.data_key(second).rpartition("/")[2] in moved
    assert hashlib.sha256(httpx.get(moved, timeout=60).content).hexdigest() == digest[7:]
    store.close()
    other.close()


def test_reusable_until_reads_the_signature_window() -> None:
    url = ("http://s3/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20261207T220000Z"
           "&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Signature=ab")
    assert reusable_until(url) == calendar.timegm((2026, 12, 7, 22, 1, 15, 0, 0, 0))
    assert reusable_until("http://s3/b/k?X-Amz-Expires=300") is None
    assert reusable_until("http://s3/b/k") is None


def test_parse_storage_url() -> None:
    assert parse_storage_url("") is None
    location = parse_storage_url("s3://bucket/a/b/?endpoint=http://127.0.0.1:8333/"
                                 "&region=eu-west-1&redirect=true&redirect_expires=60")
    assert location is not None
    assert (location.bucket, location.prefix, location.endpoint, location.region,
            location.redirect, location.redirect_expires) == (
        "bucket", "a/b", "http://127.0.0.1:8333", "eu-west-1", True, 60)
    assert parse_storage_url("s3://bucket").redirect is False  # type: ignore[union-attr]


@pytest.mark.parametrize("url,message", [
    ("file:///srv", "expected empty"), ("s3://", "names no bucket"),
    ("s3://key:secret@bucket", "names no bucket"), ("s3://b?endpoint=localhost:1", "http://"),
    ("s3://b?redirect=perhaps", "redirect must be"), ("s3://b?colour=blue", "unknown parameter"),
    ("s3://b?redirect_expires=9999999", "redirect_expires"),
])
def test_bad_storage_urls_name_the_setting(url: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as info:
        load_settings(environ={"MOORAGE_STORAGE_URL": url})
    assert "'storage_url'" in str(info.value)
    assert "secret" not in str(info.value)


def test_open_blob_store(seaweed: SeaweedS3, tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(open_blob_store(Settings(), tmp_path), FilesystemBlobStore)
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    store = open_blob_store(Settings(storage_url=seaweed.storage_url("f", redirect=True)),
                            tmp_path)
    assert isinstance(store, S3BlobStore) and store.redirect and store.prefix == "f"
    store.put(digest_of(b"hi"), b"hi")
    assert httpx.get(store.presigned_url(digest_of(b"hi")) or "").content == b"hi"
    store.close()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(SettingsError, match="'storage_url': cannot reach bucket"):
        open_blob_store(Settings(storage_url=seaweed.storage_url()), tmp_path)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweed.secret_key)
    with pytest.raises(SettingsError, match="no-such-bucket"):
        open_blob_store(Settings(storage_url=seaweed.storage_url(bucket="no-such-bucket")),
                        tmp_path)


# -- read-ahead -------------------------------------------------------------------------------
def read_threads() -> int:
    import threading

    return sum(1 for t in threading.enumerate() if t.name == "moorage-s3-read")


def wait_for_no_read_threads() -> None:
    import gc
    import time

    deadline = time.monotonic() + 120  # bounds a hang only
    while read_threads() and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.1)
    assert read_threads() == 0


def test_reads_ahead_the_same_bytes_and_stops_when_dropped(s3: S3BlobStore) -> None:
    from moorage.store.s3 import ReadAhead

    data = payload(3 * MiB + 17, seed=21)
    digest = digest_of(data)
    s3.put(digest, data)
    reader = s3.read(digest, chunk_size=256 * 1024)
    assert isinstance(reader, ReadAhead)
    assert b"".join(reader) == data
    assert b"".join(s3.read(digest, 5, 2 * MiB + 9, 64 * 1024)) == data[5:2 * MiB + 9]
    wait_for_no_read_threads()
    # a client that goes away after the first chunk: the reading thread stops too
    reader = s3.read(digest, chunk_size=64 * 1024)
    assert next(reader) == data[:64 * 1024]
    del reader
    wait_for_no_read_threads()
    reader = s3.read(digest, chunk_size=64 * 1024)
    next(reader)
    reader.close()  # type: ignore[attr-defined]
    wait_for_no_read_threads()


def test_a_missing_blob_read_ahead_raises_at_the_first_chunk(s3: S3BlobStore) -> None:
    with pytest.raises(FileNotFoundError):
        next(iter(s3.read(digest_of(b"never stored"))))
    wait_for_no_read_threads()


def test_ready_read_ahead_chunks_are_taken_without_waiting(s3: S3BlobStore) -> None:
    """send_stream takes chunks the read-ahead holds ready on the event loop (next_nowait)
    and waits in a thread only for one that is not: mixed, the bytes come out whole and in
    order, the end is the end, and a read that fails says so."""
    import time

    data = payload(2 * MiB + 5, seed=22)
    digest = digest_of(data)
    s3.put(digest, data)
    end, empty = object(), object()
    reader = s3.read(digest, chunk_size=128 * 1024)
    assert reader.next_nowait(end, empty) is empty  # type: ignore[attr-defined]
    got = [next(reader)]  # starts the thread
    deadline = time.monotonic() + 120  # bounds a hang only
    while True:
        item = reader.next_nowait(end, empty)  # type: ignore[attr-defined]
        if item is end:
            break
        if item is empty:
            assert time.monotonic() < deadline
            time.sleep(0.01)
            continue
        got.append(item)
    assert b"".join(got) == data and next(reader, end) is end
    wait_for_no_read_threads()

    def broken() -> Iterator[bytes]:
        yield b"x"
        raise ConnectionError("the bucket went away")

    from moorage.store.s3 import ReadAhead

    ahead = ReadAhead(broken(), 2)
    assert next(ahead) == b"x"
    with pytest.raises(ConnectionError):
        while ahead.next_nowait(end, empty) in (empty,):
            assert time.monotonic() < deadline
            time.sleep(0.01)
