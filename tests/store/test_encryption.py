"""Encryption at rest: round trips, ranges, uploads, tampering, rotation, wrong keys.

Every test that does not look at files on disk goes through the `inner` fixture, so the
suite runs over any BlobStore: add a factory to INNER_STORES (the S3 store, say, when its
endpoint is configured) and each of these tests runs on it too. Tampering is done through
the inner store's own protocol (read, delete, put), not through paths.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from moorage.store.base import BlobStore, ChunkWriter
from moorage.store.encrypted import (HEADER_SIZE, TAG_SIZE, EncryptedBlobStore, IntegrityError,
                                     key_usage, rewrap, wrap_if_enabled)
from moorage.store.filesystem import FilesystemBlobStore
from moorage.store.keys import (ENV_VAR, EncryptionError, Keyring, KeyringError, UnknownKeyError,
                                generate_key, load_keyring)

SEG = 64 << 10
FRAME = SEG + TAG_SIZE
CANARY = b"MOORAGE-PLAINTEXT-CANARY-7f3a9c"

class ProtocolOnly:
    """The filesystem store reduced to the BlobStore protocol, cutting what it reads into odd
    sizes: stands in for a store with none of the optional methods (the wrapper then copies
    on commit) that streams in its own chunk sizes (as an S3 body does)."""

    write_batch = 1 << 20

    def __init__(self, root: Path) -> None:
        self._fs = FilesystemBlobStore(root)

    @staticmethod
    def _odd(chunks: Iterator[bytes]) -> Iterator[bytes]:
        data = b"".join(chunks)
        for i in range(0, len(data), 7777):
            yield data[i:i + 7777]

    def local_path(self, digest: str) -> Path | None:
        return self._fs.local_path(digest)

    def size(self, digest: str) -> int | None:
        return self._fs.size(digest)

    def read(self, digest: str, start: int = 0, end: int | None = None,
             chunk_size: int = 1 << 20) -> Iterator[bytes]:
        return self._odd(self._fs.read(digest, start, end, chunk_size))

    def put(self, digest: str, data: bytes) -> None:
        self._fs.put(digest, data)

    def delete(self, digest: str) -> None:
        self._fs.delete(digest)

    def upload_create(self, upload_id: str) -> None:
        self._fs.upload_create(upload_id)

    def upload_size(self, upload_id: str) -> int | None:
        return self._fs.upload_size(upload_id)

    def upload_chunk(self, upload_id: str, offset: int, length: int | None = None
                     ) -> ChunkWriter:
        return self._fs.upload_chunk(upload_id, offset, length)

    def upload_read(self, upload_id: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        return self._odd(self._fs.upload_read(upload_id, chunk_size))

    def upload_commit(self, upload_id: str, digest: str, *, size: int | None = None) -> None:
        self._fs.upload_commit(upload_id, digest, size=size)

    def upload_delete(self, upload_id: str) -> None:
        self._fs.upload_delete(upload_id)


INNER_STORES: dict[str, Callable[[Path], BlobStore]] = {
    "filesystem": lambda root: FilesystemBlobStore(root),
    "protocol-only": ProtocolOnly,
}


@pytest.fixture(params=sorted(INNER_STORES))
def inner(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    return INNER_STORES[request.param](tmp_path / "store")


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    return Keyring.open(tmp_path / "keys" / "master.keys", create=True)


@pytest.fixture
def store(inner: BlobStore, keyring: Keyring) -> EncryptedBlobStore:
    return EncryptedBlobStore(inner, keyring)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def read_all(store: BlobStore, digest: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(store.read(digest, start, end))


def raw(inner: BlobStore, digest: str) -> bytes:
    return b"".join(inner.read(digest))


def overwrite(inner: BlobStore, digest: str, data: bytes) -> None:
    """Replace a stored object's bytes, as an attacker with write access to the store could."""
    inner.delete(digest)
    inner.put(digest, data)


def upload(store: BlobStore, upload_id: str, parts: list[bytes]) -> None:
    store.upload_create(upload_id)
    offset = 0
    for part in parts:
        writer = store.upload_chunk(upload_id, offset)
        for i in range(0, len(part), 1 << 20):
            writer.write(part[i:i + (1 << 20)])
        writer.commit()
        offset += len(part)


def pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic, non-repeating-per-segment bytes (so a swapped segment is different)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


# -- round trips --------------------------------------------------------------------------
SIZES = [0, 1, SEG - 1, SEG, SEG + 1, 3 << 20]


@pytest.mark.parametrize("size", SIZES)
def test_put_round_trip(store: EncryptedBlobStore, inner: BlobStore, size: int) -> None:
    data = os.urandom(size)
    digest = digest_of(data)
    store.put(digest, data)
    assert store.size(digest) == size
    assert read_all(store, digest) == data
    assert store.local_path(digest) is None  # never hand out ciphertext for zero-copy sends
    segments = max(1, -(-size // SEG))
    assert inner.size(digest) == HEADER_SIZE + size + segments * TAG_SIZE


@pytest.mark.parametrize("size", SIZES)
def test_upload_round_trip(store: EncryptedBlobStore, size: int) -> None:
    data = os.urandom(size)
    digest = digest_of(data)
    upload(store, "u1", [data])
    assert store.upload_size("u1") == size
    assert b"".join(store.upload_read("u1")) == data
    store.upload_commit("u1", digest)
    assert store.upload_size("u1") is None
    assert store.size(digest) == size
    assert read_all(store, digest) == data


def test_missing_blob_and_upload(store: EncryptedBlobStore) -> None:
    assert store.size("sha256:" + "0" * 64) is None
    assert store.upload_size("nope") is None
    with pytest.raises(FileNotFoundError):
        store.read("sha256:" + "0" * 64)


def test_ranges_of_a_large_blob(store: EncryptedBlobStore) -> None:
    data = pattern(3 * SEG + 123)
    digest = digest_of(data)
    store.put(digest, data)
    for start, end in [(0, 1), (SEG - 1, SEG + 1), (SEG, 2 * SEG), (5, 3 * SEG + 123),
                       (3 * SEG, 3 * SEG + 123), (3 * SEG + 122, 10**9), (10**9, 10**9 + 5)]:
        assert read_all(store, digest, start, end) == data[start:end], (start, end)
    assert read_all(store, digest, 17) == data[17:]
    assert b"".join(store.read(digest, 0, None, chunk_size=1000)) == data


def test_every_range_equals_the_plaintext_slice(inner: BlobStore, keyring: Keyring) -> None:
    """Small segments, so that short blobs still cross many segment boundaries."""
    store = EncryptedBlobStore(inner, keyring, segment_size=64)
    blobs = {}
    for size in (0, 1, 63, 64, 65, 700):
        data = pattern(size, seed=size)
        blobs[size] = (digest_of(data), data)
        store.put(digest_of(data), data)

    @settings(max_examples=300, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.sampled_from(sorted(blobs)), st.integers(0, 720), st.integers(0, 720),
           st.sampled_from([1, 7, 64, 1 << 20]))
    def check(size: int, start: int, end: int, chunk: int) -> None:
        digest, data = blobs[size]
        pieces = list(store.read(digest, start, end, chunk_size=chunk))
        assert b"".join(pieces) == data[start:end]
        assert all(pieces)

    check()


def test_any_chunking_of_an_upload_reads_back(inner: BlobStore, keyring: Keyring) -> None:
    """Chunks ending anywhere, aborted chunks anywhere: staged and committed bytes match."""
    store = EncryptedBlobStore(inner, keyring, segment_size=32)
    counter = iter(range(10**6))

    @settings(max_examples=60, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(st.tuples(st.integers(0, 100), st.booleans()), max_size=8),
           st.integers(1, 70))
    def check(chunks: list[tuple[int, bool]], write_size: int) -> None:
        upload_id = f"prop{next(counter)}"
        store.upload_create(upload_id)
        expected = b""
        for n, (size, aborted) in enumerate(chunks):
            part = pattern(size, seed=n)
            writer = store.upload_chunk(upload_id, len(expected))
            for i in range(0, len(part), write_size):  # writes end anywhere in a segment
                writer.write(part[i:i + write_size])
            if aborted:
                writer.abort()
            else:
                writer.commit()
                expected += part
            assert store.upload_size(upload_id) == len(expected)
        assert b"".join(store.upload_read(upload_id, chunk_size=50)) == expected
        digest = digest_of(expected)
        store.delete(digest)
        store.upload_commit(upload_id, digest)
        assert read_all(store, digest) == expected

    check()


# -- confidentiality ----------------------------------------------------------------------
def test_stored_bytes_are_not_the_plaintext(store: EncryptedBlobStore, inner: BlobStore) -> None:
    data = CANARY * 5000
    digest = digest_of(data)
    store.put(digest, data)
    stored = raw(inner, digest)
    assert stored != data
    assert CANARY not in stored and CANARY[:16] not in stored


def test_nothing_on_disk_holds_the_plaintext(tmp_path: Path, keyring: Keyring) -> None:
    """Blobs, staged chunks, the staging index and leftovers: no file shows the canary."""
    root = tmp_path / "data"
    store = EncryptedBlobStore(FilesystemBlobStore(root), keyring)
    data = CANARY * 20000
    upload(store, "staged", [data[:100_000], data[100_000:]])  # left staged
    upload(store, "committed", [data])
    store.upload_commit("committed", digest_of(data))
    small = CANARY + b"-small"
    store.put(digest_of(small), small)
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) >= 4
    for path in files:
        content = path.read_bytes()
        assert CANARY not in content, path
        assert CANARY[:12] not in content, path


# -- uploads ------------------------------------------------------------------------------
def test_upload_in_chunks_with_an_aborted_chunk(store: EncryptedBlobStore) -> None:
    parts = [pattern(100_000, 1), pattern(SEG, 2), pattern(5, 3), pattern(3 * SEG + 7, 4)]
    store.upload_create("u")
    offset = 0
    for n, part in enumerate(parts):
        if n == 2:  # a chunk that fails half-way: nothing of it may remain
            writer = store.upload_chunk("u", offset)
            writer.write(pattern(70_000, 99))
            writer.abort()
            assert store.upload_size("u") == offset
        if n == 3:  # an empty chunk adds nothing
            writer = store.upload_chunk("u", offset)
            writer.commit()
            assert store.upload_size("u") == offset
        writer = store.upload_chunk("u", offset)
        writer.write(part)
        writer.commit()
        offset += len(part)
        assert store.upload_size("u") == offset
    data = b"".join(parts)
    assert b"".join(store.upload_read("u")) == data
    digest = digest_of(data)
    store.upload_commit("u", digest)
    assert store.size(digest) == len(data)
    assert read_all(store, digest) == data
    assert read_all(store, digest, 100_000 - 3, 100_000 + SEG + 2) == data[99_997:100_000 + SEG + 2]
    assert store.upload_size("u") is None


def test_a_chunk_torn_by_a_crash_does_not_count(tmp_path: Path, keyring: Keyring) -> None:
    """A process killed mid-chunk leaves sealed bytes without an end record: the upload stays
    at its last committed size, and the next chunk is written over the torn bytes."""
    store = EncryptedBlobStore(FilesystemBlobStore(tmp_path), keyring)
    first, second = pattern(SEG + 10, 1), pattern(3 * SEG, 2)
    upload(store, "u", [first])
    writer = store.upload_chunk("u", len(first))
    writer.write(pattern(2 * SEG + 100, 3))
    writer._inner._close()  # type: ignore[attr-defined]  # killed: no commit, no abort
    assert store.upload_size("u") == len(first)
    assert b"".join(store.upload_read("u")) == first
    writer = store.upload_chunk("u", len(first))
    writer.write(second)
    writer.commit()
    assert b"".join(store.upload_read("u")) == first + second
    store.upload_commit("u", digest_of(first + second))
    assert read_all(store, digest_of(first + second)) == first + second


def test_a_crash_between_commit_and_confirmation(store: EncryptedBlobStore,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The inner store committed the chunk but the end record never made it: the chunk does
    not count (the client was never told it did) and is sent again."""
    first, second = pattern(1000, 1), pattern(SEG + 1, 2)
    upload(store, "u", [first])
    append = store._append_index

    def crash_on_confirm(upload_id: str, stored: int, plain: int, seg: int) -> None:
        if seg == 0:
            raise OSError("killed")
        append(upload_id, stored, plain, seg)

    monkeypatch.setattr(store, "_append_index", crash_on_confirm)
    writer = store.upload_chunk("u", len(first))
    writer.write(second)
    with pytest.raises(OSError):
        writer.commit()
    monkeypatch.undo()
    assert store.upload_size("u") == len(first)
    writer = store.upload_chunk("u", len(first))
    writer.write(second)
    writer.commit()
    assert store.upload_size("u") == len(first) + len(second)
    store.upload_commit("u", digest_of(first + second))
    assert read_all(store, digest_of(first + second)) == first + second


def test_chunk_must_start_where_the_upload_ends(store: EncryptedBlobStore) -> None:
    upload(store, "u", [b"abc"])
    with pytest.raises(ValueError):
        store.upload_chunk("u", 2)


def test_commit_of_a_stored_digest_drops_the_upload(store: EncryptedBlobStore) -> None:
    data = b"same bytes"
    digest = digest_of(data)
    store.put(digest, data)
    upload(store, "u", [data])
    store.upload_commit("u", digest)
    assert store.upload_size("u") is None
    assert read_all(store, digest) == data


def test_upload_delete_removes_everything(store: EncryptedBlobStore, inner: BlobStore) -> None:
    upload(store, "u", [b"x" * 1000, b"y" * 10])
    store.upload_delete("u")
    assert store.upload_size("u") is None
    assert inner.upload_size("u") is None
    assert inner.upload_size("u.idx") is None


def test_core_upload_manager_across_replicas(tmp_path: Path, keyring: Keyring) -> None:
    """The registry core hashes plaintext as it streams and rehashes via upload_read when a
    chunk lands on another replica (here: another UploadManager with its own memory)."""
    from moorage.db.metadata import MetadataStore, open_engine, sqlite_url
    from moorage.registry.locks import FileBlobLock, FileUploadLock
    from moorage.registry.uploads import UploadManager

    db = MetadataStore(open_engine(sqlite_url(tmp_path)))
    db.create_schema()
    stores = [EncryptedBlobStore(FilesystemBlobStore(tmp_path / "data"),
                                 Keyring.open(keyring.path, create=False))  # type: ignore[arg-type]
              for _ in range(2)]
    lock = FileBlobLock(tmp_path / "locks" / "blobs")
    replicas = [UploadManager(db, s, lock, FileUploadLock(tmp_path / "locks" / "uploads"))
                for s in stores]
    data = pattern(2 * SEG + 999, 5)

    async def body(part: bytes) -> Iterator[bytes]:  # type: ignore[misc]
        yield part

    async def push() -> int:
        upload_id = await replicas[0].start("team/app")
        await replicas[0].append("team/app", upload_id, body(data[:70_000]))
        await replicas[1].append("team/app", upload_id, body(data[70_000:140_000]))
        return await replicas[0].finish("team/app", upload_id, digest_of(data),
                                        body(data[140_000:]))

    assert asyncio.run(push()) == len(data)
    assert read_all(stores[1], digest_of(data)) == data


# -- tampering ----------------------------------------------------------------------------
@pytest.fixture
def stored(store: EncryptedBlobStore, inner: BlobStore) -> tuple[str, bytes, bytes]:
    data = pattern(4 * SEG + 1000)
    digest = digest_of(data)
    store.put(digest, data)
    return digest, data, raw(inner, digest)


def _segment(index: int) -> slice:
    start = HEADER_SIZE + index * FRAME
    return slice(start, start + FRAME)


def test_flipped_byte_in_a_segment_is_detected(store: EncryptedBlobStore, inner: BlobStore,
                                                stored: tuple[str, bytes, bytes]) -> None:
    digest, data, blob = stored
    for position in (HEADER_SIZE, HEADER_SIZE + FRAME + 500, len(blob) - 1):
        tampered = bytearray(blob)
        tampered[position] ^= 0x01
        overwrite(inner, digest, bytes(tampered))
        with pytest.raises(IntegrityError, match="segment"):
            read_all(store, digest)
    # a range that does not touch the damaged segment still reads, and reads right
    assert read_all(store, digest, 0, 4 * SEG) == data[:4 * SEG]


def test_truncation_is_detected(store: EncryptedBlobStore, inner: BlobStore,
                                stored: tuple[str, bytes, bytes]) -> None:
    digest, _, blob = stored
    cuts = [len(blob) - 1,                   # into the final segment
            len(blob) - (1000 + TAG_SIZE),   # the final segment dropped whole
            HEADER_SIZE + FRAME,             # all but the first segment
            HEADER_SIZE + 5,                 # into the first segment
            HEADER_SIZE,                     # no segments at all
            40]                              # into the header
    for cut in cuts:
        overwrite(inner, digest, blob[:cut])
        with pytest.raises(IntegrityError):
            read_all(store, digest)


def test_extension_is_detected(store: EncryptedBlobStore, inner: BlobStore,
                               stored: tuple[str, bytes, bytes]) -> None:
    digest, _, blob = stored
    overwrite(inner, digest, blob + blob[_segment(1)])
    with pytest.raises(IntegrityError):
        read_all(store, digest)


def test_swapped_segments_are_detected(store: EncryptedBlobStore, inner: BlobStore,
                                       stored: tuple[str, bytes, bytes]) -> None:
    digest, _, blob = stored
    swapped = (blob[:HEADER_SIZE] + blob[_segment(1)] + blob[_segment(0)]
               + blob[_segment(2).start:])
    overwrite(inner, digest, swapped)
    with pytest.raises(IntegrityError):
        read_all(store, digest)
    with pytest.raises(IntegrityError):
        read_all(store, digest, 10, 20)  # a range read of the moved segment fails too


def test_segments_from_another_blob_are_detected(store: EncryptedBlobStore, inner: BlobStore,
                                                 stored: tuple[str, bytes, bytes]) -> None:
    digest, data, blob = stored
    other = pattern(len(data), seed=42)
    store.put(digest_of(other), other)
    spliced = blob[:_segment(2).start] + raw(inner, digest_of(other))[_segment(2).start:]
    overwrite(inner, digest, spliced)
    with pytest.raises(IntegrityError):
        read_all(store, digest, 2 * SEG, 2 * SEG + 10)


def test_blob_moved_to_another_digest_is_detected(store: EncryptedBlobStore, inner: BlobStore,
                                                  stored: tuple[str, bytes, bytes]) -> None:
    _, _, blob = stored
    elsewhere = "sha256:" + "ab" * 32
    inner.put(elsewhere, blob)
    with pytest.raises(IntegrityError, match="unwrap"):
        read_all(store, elsewhere)


def test_header_tampering_is_detected(store: EncryptedBlobStore, inner: BlobStore,
                                      stored: tuple[str, bytes, bytes]) -> None:
    digest, _, blob = stored
    for position, error in [(8, IntegrityError),                # version
                            (9, IntegrityError),                # kind
                            (12, IntegrityError),               # segment size
                            (15, UnknownKeyError),              # master key id
                            (25, IntegrityError),               # stream nonce
                            (35, IntegrityError),               # wrap nonce
                            (HEADER_SIZE - 1, IntegrityError)]:  # wrapped data key
        tampered = bytearray(blob)
        tampered[position] ^= 0x04
        overwrite(inner, digest, bytes(tampered))
        with pytest.raises(error):
            read_all(store, digest)


def test_plaintext_in_place_of_a_blob_is_refused(store: EncryptedBlobStore, inner: BlobStore,
                                                 stored: tuple[str, bytes, bytes]) -> None:
    digest, data, _ = stored
    overwrite(inner, digest, data)
    with pytest.raises(IntegrityError, match="not encrypted"):
        read_all(store, digest)


def test_tampered_staged_chunk_is_detected(store: EncryptedBlobStore, inner: BlobStore) -> None:
    upload(store, "u", [pattern(SEG * 2, 1), pattern(1000, 2)])
    staged = b"".join(inner.upload_read("u"))
    inner.upload_delete("u")
    inner.upload_create("u")
    writer = inner.upload_chunk("u", 0)
    tampered = bytearray(staged)
    tampered[HEADER_SIZE + 100] ^= 0x80
    writer.write(bytes(tampered))
    writer.commit()
    with pytest.raises(IntegrityError):
        b"".join(store.upload_read("u"))
    digest = digest_of(pattern(SEG * 2, 1) + pattern(1000, 2))
    with pytest.raises(IntegrityError):
        store.upload_commit("u", digest)  # several chunks: re-encryption reads them all
    assert store.size(digest) is None


# -- keys, rotation -----------------------------------------------------------------------
def test_key_file_is_private_and_reloadable(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master.keys"
    keyring = Keyring.open(path, create=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = Keyring.open(path)
    assert again.active.id == keyring.active.id and again.active.secret == keyring.active.secret
    with pytest.raises(KeyringError):
        Keyring.open(tmp_path / "absent.keys")


def test_corrupted_key_file_line_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.keys"
    Keyring.open(path, create=True)
    lines = path.read_text().splitlines()
    key_line = lines[-1].split()
    other = base64.b64encode(os.urandom(32)).decode()
    path.write_text("\n".join(lines[:-1] + [f"{key_line[0]} {other} {key_line[2]}"]) + "\n")
    with pytest.raises(KeyringError, match="does not match"):
        Keyring.open(path)


def needs_replace(inner: BlobStore) -> None:
    if not hasattr(inner, "upload_replace"):
        pytest.skip("rewrap needs a store that replaces blobs atomically")


def test_rewrap_without_atomic_replace_fails_clearly(tmp_path: Path, keyring: Keyring) -> None:
    store = EncryptedBlobStore(ProtocolOnly(tmp_path), keyring)
    store.put(digest_of(b"x"), b"x")
    keyring.rotate()
    result = rewrap(store, [digest_of(b"x")])
    assert result.failed and "upload_replace" in result.failed[0][1]
    assert read_all(store, digest_of(b"x")) == b"x"


def test_rotation_keeps_old_blobs_readable_and_rewrap_moves_them(
        store: EncryptedBlobStore, inner: BlobStore, keyring: Keyring) -> None:
    needs_replace(inner)
    old_key = keyring.active.hex_id
    before = {digest_of(d): d for d in (pattern(10, 1), pattern(3 * SEG, 2), b"")}
    for digest, data in before.items():
        store.put(digest, data)
    upload(store, "pending", [pattern(SEG + 5, 3)])  # staged under the old key
    new_key = keyring.rotate().hex_id
    assert keyring.active.hex_id == new_key != old_key
    after = pattern(SEG + 1, 4)
    store.put(digest_of(after), after)
    for digest, data in before.items():
        assert read_all(store, digest) == data
    digests = [*before, digest_of(after)]
    assert key_usage(store, digests) == {old_key: 3, new_key: 1}

    calls: list[tuple[int, int | None]] = []
    result = rewrap(store, digests, progress=lambda done, total, _: calls.append((done, total)))
    assert (result.rewrapped, result.current, result.failed) == (3, 1, [])
    assert calls[-1] == (4, 4)
    assert key_usage(store, digests) == {new_key: 4}
    for digest, data in before.items():
        assert read_all(store, digest) == data
        assert store.size(digest) == len(data)
    assert rewrap(store, digests).current == 4  # idempotent

    store.upload_commit("pending", digest_of(pattern(SEG + 5, 3)))  # old-key chunk, new blob
    assert store.key_of(digest_of(pattern(SEG + 5, 3))) == new_key
    keyring.retire(old_key)
    for digest, data in before.items():
        assert read_all(store, digest) == data
    with pytest.raises(KeyringError):
        keyring.retire(new_key)  # never the active key


def test_rewrap_lists_the_store_and_skips_deleted_blobs(tmp_path: Path, keyring: Keyring) -> None:
    inner = FilesystemBlobStore(tmp_path / "data")
    store = EncryptedBlobStore(inner, keyring)
    blobs = [pattern(n, n) for n in (1, 2, 3)]
    for data in blobs:
        store.put(digest_of(data), data)
    keyring.rotate()
    store.delete(digest_of(blobs[0]))
    result = rewrap(store, [*map(digest_of, blobs)])
    assert (result.rewrapped, result.missing) == (2, 1)
    assert store.size(digest_of(blobs[0])) is None  # not brought back
    keyring.rotate()
    assert rewrap(store).rewrapped == 2  # digests from the inner store's listing


def test_rotation_reaches_another_process_sharing_the_key_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "master.keys"
    writer_ring = Keyring.open(path, create=True)
    reader_ring = Keyring.open(path)
    root = tmp_path / "data"
    writer = EncryptedBlobStore(FilesystemBlobStore(root), writer_ring)
    reader = EncryptedBlobStore(FilesystemBlobStore(root), reader_ring)
    writer_ring.rotate()
    data = b"written under the new key"
    writer.put(digest_of(data), data)
    assert read_all(reader, digest_of(data)) == data  # the reader reloads on an unknown id
    newest = writer_ring.rotate()
    monkeypatch.setattr("moorage.store.keys.REFRESH_SECONDS", 0.0)
    assert reader_ring.active.id == newest.id  # and starts wrapping with the new key soon


def test_wrong_master_key_fails_clearly(store: EncryptedBlobStore, inner: BlobStore,
                                        keyring: Keyring) -> None:
    data = b"secret layer"
    store.put(digest_of(data), data)
    upload(store, "u", [data])
    stranger = EncryptedBlobStore(inner, Keyring.from_environment(generate_key()))
    with pytest.raises(UnknownKeyError, match=keyring.active.hex_id):
        stranger.read(digest_of(data))  # fails before a response would start
    assert stranger.size(digest_of(data)) == len(data)  # sizes need no key (HEAD works)
    with pytest.raises(UnknownKeyError):
        read_all(stranger, digest_of(data))
    with pytest.raises(UnknownKeyError):
        b"".join(stranger.upload_read("u"))
    assert isinstance(UnknownKeyError("x"), EncryptionError)


def test_environment_keys(tmp_path: Path) -> None:
    new, old = generate_key(), generate_key()
    keyring = load_keyring("", tmp_path, {ENV_VAR: f"{new}, {old}"})
    assert keyring.active.secret == base64.b64decode(new)
    assert len(keyring.keys()) == 2
    assert not (tmp_path / "keys").exists()  # no key file when the environment has the key
    with pytest.raises(KeyringError, match="changing the variable"):
        keyring.rotate()
    with pytest.raises(KeyringError, match="base64"):
        load_keyring("", tmp_path, {ENV_VAR: "not base64!"})
    with pytest.raises(KeyringError, match="32 bytes"):
        load_keyring("", tmp_path, {ENV_VAR: base64.b64encode(b"short").decode()})
    # the same key always has the same id, wherever it comes from
    assert Keyring.from_environment(new).active.id == keyring.active.id


def test_old_environment_key_still_reads(inner: BlobStore) -> None:
    old, new = generate_key(), generate_key()
    before = EncryptedBlobStore(inner, Keyring.from_environment(old))
    before.put(digest_of(b"x"), b"x")
    after = EncryptedBlobStore(inner, Keyring.from_environment(f"{new},{old}"))
    assert read_all(after, digest_of(b"x")) == b"x"
    assert after.key_of(digest_of(b"x")) == Keyring.from_environment(old).active.hex_id


# -- turning it on ------------------------------------------------------------------------
def test_wrap_if_enabled(tmp_path: Path) -> None:
    from moorage.settings import load_settings

    plain = FilesystemBlobStore(tmp_path / "data")
    off = load_settings(environ={})
    assert wrap_if_enabled(plain, off, tmp_path / "data", environ={}) is plain
    on = load_settings(environ={"MOORAGE_ENCRYPTION": "true"})
    wrapped = wrap_if_enabled(plain, on, tmp_path / "data", environ={})
    assert isinstance(wrapped, EncryptedBlobStore)
    assert (tmp_path / "data" / "keys" / "master.keys").is_file()
    custom = load_settings(environ={"MOORAGE_ENCRYPTION": "1",
                                    "MOORAGE_MASTER_KEY_FILE": str(tmp_path / "k" / "m.keys")})
    wrap_if_enabled(plain, custom, tmp_path / "data", environ={})
    assert (tmp_path / "k" / "m.keys").is_file()


def test_plaintext_blobs_migrate_with_rewrap(inner: BlobStore, keyring: Keyring) -> None:
    needs_replace(inner)
    good, bad = pattern(SEG + 3, 1), pattern(100, 2)
    inner.put(digest_of(good), good)  # stored before encryption was turned on
    inner.put(digest_of(b"other"), bad)  # plaintext that does not match its digest
    strict = EncryptedBlobStore(inner, keyring)
    with pytest.raises(IntegrityError, match="not encrypted"):
        read_all(strict, digest_of(good))
    migrating = EncryptedBlobStore(inner, keyring, allow_plaintext=True)
    assert read_all(migrating, digest_of(good)) == good
    assert migrating.size(digest_of(good)) == len(good)
    result = rewrap(migrating, [digest_of(good), digest_of(b"other")])
    assert result.encrypted == 1 and [d for d, _ in result.failed] == [digest_of(b"other")]
    assert raw(inner, digest_of(good)) != good
    assert read_all(strict, digest_of(good)) == good
    assert raw(inner, digest_of(b"other")) == bad  # left as it was
