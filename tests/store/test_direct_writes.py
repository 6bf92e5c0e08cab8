"""Staged uploads written with O_DIRECT (store/direct.py): the bytes, whatever the boundaries.

The file store writes whole 4 KiB blocks of a chunk around the page cache and its last partial
block through it, and the next chunk reads that block back and rewrites it. What a user
relies on: the staged bytes and the committed blob are exactly the bytes sent, in order,
whatever the chunk and piece sizes (aligned or not, larger than the writer's buffer or a
single byte), an aborted chunk leaves nothing, a chunk torn by a crash can be written over,
and a filesystem where direct writes are not used gets the same bytes through the page cache.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from moorage.store import direct
from moorage.store.filesystem import FilesystemBlobStore
from tests.store.helpers import blob, digest_of, new_upload, payload, staged

SIZES = [1, 100, 4095, 4096, 4097, 8191, 65_536 + 3, direct.BUFFER_SIZE - 1,
         direct.BUFFER_SIZE, direct.BUFFER_SIZE + 1, 2 * direct.BUFFER_SIZE + 4097]


def _takes_o_direct(folder: Path) -> bool:
    probe = folder / ".probe"
    try:
        os.close(os.open(probe, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600))
    except OSError:
        return False
    finally:
        probe.unlink(missing_ok=True)
    return True


def _pieces(data: bytes, rng: random.Random) -> list[bytes]:
    """`data` cut the way a server receives a body: pieces of uneven sizes."""
    out, at = [], 0
    while at < len(data):
        n = rng.choice([1, 17, 4096, 408_000, 1 << 20])
        out.append(data[at:at + n])
        at += n
    return out


def _upload_in_chunks(store: FilesystemBlobStore, data: bytes, seed: int,
                      abort_some: bool = True) -> tuple[str, set[bool]]:
    """Stage `data` in chunks of the SIZES (some written twice: aborted, then again)."""
    rng = random.Random(seed)
    upload_id = new_upload(store)
    at, modes = 0, set()
    while at < len(data):
        piece = data[at:at + rng.choice(SIZES)]
        writer = store.upload_chunk(upload_id, at)
        modes.add(writer.direct)
        pieces = _pieces(piece, rng)
        for i in range(0, len(pieces), 3):  # several batches per chunk, as the core sends
            writer.write_parts(pieces[i:i + 3])
        if abort_some and rng.random() < 0.25:
            writer.abort()
            assert store.upload_size(upload_id) == at
            continue
        writer.commit()
        at += len(piece)
        assert store.upload_size(upload_id) == at
    return upload_id, modes


def _check_commit(store: FilesystemBlobStore, upload_id: str, data: bytes) -> None:
    assert staged(store, upload_id) == data
    digest = digest_of(data)
    store.upload_commit(upload_id, digest, size=len(data))
    assert blob(store, digest) == data
    path = store.local_path(digest)
    assert path is not None and path.read_bytes() == data  # what a blob GET sends
    assert blob(store, digest, 4095, 3 * direct.BUFFER_SIZE) == data[4095:3 * direct.BUFFER_SIZE]


def test_unaligned_chunks_and_pieces_stage_exactly_the_bytes(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    data = payload(12 * direct.BUFFER_SIZE + 777, seed=1)
    upload_id, modes = _upload_in_chunks(store, data, seed=2)
    if _takes_o_direct(tmp_path):
        assert modes == {True}  # where the filesystem takes O_DIRECT, the store uses it
    _check_commit(store, upload_id, data)


def test_reads_between_chunks_see_every_byte(tmp_path: Path) -> None:
    """A re-hash between chunks reads the staged file through the page cache (its tail block
    is cached there); the direct write of the next chunk rewrites that block: the next read
    must see the new bytes, not a stale cached page."""
    store = FilesystemBlobStore(tmp_path)
    data = payload(3 * direct.BUFFER_SIZE + 5000, seed=3)
    upload_id = new_upload(store)
    at = 0
    for size in (5000, 100, direct.BUFFER_SIZE + 3, 4096, direct.BUFFER_SIZE):
        writer = store.upload_chunk(upload_id, at)
        writer.write_parts([data[at:at + size]])
        writer.commit()
        at += size
        assert staged(store, upload_id) == data[:at]
    writer = store.upload_chunk(upload_id, at)
    writer.write(data[at:])
    writer.commit()
    _check_commit(store, upload_id, data)


def test_a_chunk_torn_by_a_crash_is_written_over(tmp_path: Path) -> None:
    """A process killed mid-chunk leaves the whole blocks it wrote directly (never a block of
    anything but the sent bytes); the client resumes at the staged size, and the next chunk
    rewrites the partial block from there."""
    store = FilesystemBlobStore(tmp_path)
    data = payload(4 * direct.BUFFER_SIZE, seed=4)
    upload_id = new_upload(store)
    writer = store.upload_chunk(upload_id, 0)
    writer.write_parts([data[:10_001]])
    writer.commit()
    writer = store.upload_chunk(upload_id, 10_001)
    writer.write_parts([data[10_001:direct.BUFFER_SIZE + 12_345]])
    writer._close()  # type: ignore[attr-defined]  # killed: no commit, no abort
    resumed = store.upload_size(upload_id)
    assert resumed is not None and 10_001 <= resumed <= direct.BUFFER_SIZE + 12_345
    assert staged(store, upload_id) == data[:resumed]
    writer = store.upload_chunk(upload_id, resumed)
    writer.write_parts([data[resumed:]])
    writer.commit()
    _check_commit(store, upload_id, data)


def test_an_aborted_chunk_leaves_the_partial_block_it_started_in(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    data = payload(6000, seed=5)
    upload_id = new_upload(store)
    writer = store.upload_chunk(upload_id, 0)
    writer.write_parts([data])
    writer.commit()
    writer = store.upload_chunk(upload_id, len(data))  # starts mid-block: block 4096-8191
    writer.write_parts([payload(direct.BUFFER_SIZE + 10, seed=6)])
    writer.abort()
    assert staged(store, upload_id) == data


@pytest.mark.parametrize("use_direct", [True, False])
def test_tmpfs_or_no_direct_writes_stage_the_same_bytes(tmp_path: Path, use_direct: bool) -> None:
    """On tmpfs (which refuses O_DIRECT on kernels before 6.6) and with direct writes off
    (the path taken wherever the filesystem refuses them), the bytes are the same."""
    shm = Path("/dev/shm")
    root = shm if shm.is_dir() else tmp_path
    folder = root / f"moorage-direct-test-{os.getpid()}-{random.randrange(1 << 30)}"
    store = FilesystemBlobStore(folder)
    store.direct = use_direct
    try:
        data = payload(5 * direct.BUFFER_SIZE + 99, seed=7)
        upload_id, modes = _upload_in_chunks(store, data, seed=8)
        if not use_direct:
            assert modes == {False}
        elif _takes_o_direct(folder):
            assert modes == {True}
        _check_commit(store, upload_id, data)
    finally:
        for path in sorted(folder.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        folder.rmdir()


def test_many_chunks_reuse_the_buffers(tmp_path: Path) -> None:
    """Buffers go back to the pool after each chunk (committed or aborted), and the pool keeps
    no more than its size: many chunks and uploads do not grow the process."""
    store = FilesystemBlobStore(tmp_path)
    for seed in range(3):
        data = payload(direct.BUFFER_SIZE + 5, seed=seed)
        upload_id, _ = _upload_in_chunks(store, data, seed=seed)
        _check_commit(store, upload_id, data)
    assert len(direct._pool._free) <= direct.POOL_SIZE


def test_chunks_past_the_buffer_bound_are_written_through_the_page_cache(tmp_path: Path) -> None:
    """However many chunks are open at once, at most IN_USE buffers exist in a process: the
    chunks past that bound are written through the page cache, with the same bytes."""
    store = FilesystemBlobStore(tmp_path)
    count = direct.IN_USE // 2 + 2
    uploads = [new_upload(store) for _ in range(count)]
    data = [payload(direct.BUFFER_SIZE + 4097, seed=10 + i) for i in range(count)]
    writers = [store.upload_chunk(upload_id, 0) for upload_id in uploads]
    modes = [writer.direct for writer in writers]
    if _takes_o_direct(tmp_path):
        assert modes == [True] * (direct.IN_USE // 2) + [False] * 2
    for writer, body in zip(writers, data):
        writer.write_parts([body[:5000], body[5000:]])
        writer.commit()
    again = store.upload_chunk(uploads[0], len(data[0]))
    assert again.direct == modes[0]  # the bound is freed by commits
    again.commit()
    for upload_id, body in zip(uploads, data):
        _check_commit(store, upload_id, body)
