"""Blob uploads: stream to staging while hashing, commit atomically, survive restarts.

One request at a time writes an upload, whatever worker or replica it lands on: every PATCH
holds the upload's lock (registry/locks.py, shared by all processes) while its body streams
in, every closing PUT while it hashes and commits, every DELETE while it removes the upload.
So the staged bytes only ever grow by whole chunks appended at their end, the digest checked
at commit is the digest of exactly the bytes committed, and nothing writes to a staged file
once it has become a blob.

The running hash of an upload is kept in this process's memory between chunks, as a cache
of the staged bytes: valid while they have the size it was taken at (under the lock, bytes
below the staged size never change). After a restart, or when a chunk lands on another
worker, it is rebuilt from the staged bytes, so an upload can span restarts and processes
without trusting any state but the staged upload.

The one shortcut: after each chunk, the digest of everything staged so far is noted on the
staged upload with its size, where the store can keep such a note (an extended attribute of
the staged file). A closing PUT that brings no more bytes and lands on a worker without the
running hash (clients such as skopeo send it on another connection, so often to the other
worker) takes the digest from the note when the size still matches, instead of re-reading and
re-hashing the whole blob: about a fifth of a 256 MiB push. A missing or stale note only
means the re-hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from moorage.cache.outage import Unavailable
from moorage.db.metadata import MetadataStore, StorageQuotaExceeded, TooManyUploads, Upload
from moorage.oci.digest import parse_digest
from moorage.oci.errors import RegistryError
from moorage.registry.locks import (BlobLock, UploadBusy, UploadLease, UploadLock,
                                    UploadLockLost)
from moorage.store.base import BlobStore, ChunkWriter, StagedUploadInvalid

_UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{32}$")

# How stale an upload's recorded activity may get before a chunk refreshes it. Expiry runs
# hourly against a TTL of hours, so a minute is exact enough. Touching on every chunk was a
# committed (fsynced) write per PATCH, 9-11 ms of each 5 MiB chunk on the benchmark's disk
# (the journal commit also wrote out the staged data).
TOUCH_EVERY = 60.0
# Running hashes kept per process; an upload abandoned here leaves its entry behind until
# the upload expires, so the oldest go first past this many.
MAX_HASH_STATES = 10_000


@dataclass
class _HashState:
    offset: int
    hasher: "hashlib._Hash"


class UploadManager:
    def __init__(self, db: MetadataStore, store: BlobStore, lock: BlobLock,
                 upload_lock: UploadLock) -> None:
        self.db = db
        self.store = store
        self.lock = lock
        self.upload_lock = upload_lock
        # uploads one owner may have open at once (max_open_uploads); 0 is no cap
        self.max_open = 0
        self._hashes: dict[str, _HashState] = {}

    # -- sessions -----------------------------------------------------------------------
    async def start(self, name: str, owner: str | None = None) -> str:
        """A new upload session. `owner` ("user:NAME" or "address:IP") is who it counts
        against: TOOMANYREQUESTS once they have max_open uploads open."""
        upload_id = uuid.uuid4().hex
        try:
            self.db.create_upload(upload_id, name, owner, self.max_open)
        except TooManyUploads as exc:
            raise RegistryError(
                "TOOMANYREQUESTS",
                f"{exc.open_now} uploads are open for {owner}; finish or cancel some first "
                f"(max_open_uploads = {self.max_open})") from None
        try:
            await asyncio.to_thread(self.store.upload_create, upload_id)
        except BaseException:
            self.db.delete_upload(upload_id)
            raise
        self._remember(upload_id, _HashState(0, hashlib.sha256()))
        return upload_id

    def _remember(self, upload_id: str, state: _HashState) -> None:
        self._hashes[upload_id] = state
        if len(self._hashes) > MAX_HASH_STATES:
            del self._hashes[next(iter(self._hashes))]

    @contextlib.asynccontextmanager
    async def _exclusive(self, upload_id: str) -> AsyncIterator[UploadLease]:
        """Hold the upload's lock, in the registry's words when it cannot be had or kept.

        A request that finds no such upload ends the lease too, so that no lock file of an
        upload that does not exist stays behind.
        """
        if not _UPLOAD_ID_RE.fullmatch(upload_id):
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", "malformed upload id")
        try:
            async with self.upload_lock.hold(upload_id) as lease:
                try:
                    yield lease
                except RegistryError as error:
                    if error.code == "BLOB_UPLOAD_UNKNOWN":
                        lease.end()
                    raise
        except UploadBusy:
            raise RegistryError("BLOB_UPLOAD_INVALID",
                                "another request is writing to this upload; send its chunks "
                                "one after another", status=409) from None
        except UploadLockLost:
            raise RegistryError("BLOB_UPLOAD_INVALID",
                                "the upload's lock expired while this request held it; "
                                "resume the upload", status=409) from None

    async def offset(self, name: str, upload_id: str) -> int:
        """Bytes received so far; BLOB_UPLOAD_UNKNOWN if no such upload in this repository.

        No lock: a status request reads what is committed, and chunks commit whole."""
        return (await self._session(name, upload_id))[1]

    async def _session(self, name: str, upload_id: str) -> tuple[Upload, int]:
        upload = self._row(name, upload_id)
        with _staged_invalid():
            size = await asyncio.to_thread(self.store.upload_size, upload_id)
        if size is None:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN")
        return upload, size

    def _row(self, name: str, upload_id: str) -> Upload:
        """The upload's row; BLOB_UPLOAD_UNKNOWN unless it is an upload of this repository."""
        if not _UPLOAD_ID_RE.fullmatch(upload_id):
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", "malformed upload id")
        upload = self.db.upload(upload_id)
        if upload is None or upload.repository != name:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN")
        return upload

    async def cancel(self, name: str, upload_id: str) -> None:
        async with self._exclusive(upload_id) as lease:
            await self._session(name, upload_id)
            await asyncio.to_thread(self._forget, upload_id)
            lease.end()

    def _forget(self, upload_id: str) -> None:
        self.store.upload_delete(upload_id)
        self.db.delete_upload(upload_id)
        self._hashes.pop(upload_id, None)

    async def expire(self, ttl_seconds: float) -> int:
        """Drop uploads idle for longer than the TTL; returns how many went. One that a
        request is writing right now is not idle, whatever its row says: it is left."""
        stale = await asyncio.to_thread(self.db.stale_uploads, time.time() - ttl_seconds)
        gone = 0
        for upload_id in stale:
            try:
                async with self.upload_lock.hold(upload_id, wait=0) as lease:
                    await asyncio.to_thread(self._forget, upload_id)
                    lease.end()
                    gone += 1
            except UploadBusy:
                continue
            except Unavailable:
                break  # no lock to be had (Redis is away): the next round takes them
        return gone

    async def abandon(self, upload_id: str) -> None:
        """Forget an upload whose id no client was ever told (a monolithic push that failed)
        without its lock, which no other request can hold: used when the lock itself cannot
        be had, so that a refused push leaves nothing behind."""
        await asyncio.to_thread(self._forget, upload_id)

    # -- data ---------------------------------------------------------------------------
    async def append(self, name: str, upload_id: str, body: AsyncIterator[bytes],
                     start: int | None = None, length: int | None = None) -> int:
        """Append one chunk; all or nothing. Returns the new offset.

        `start` comes from Content-Range: a chunk that does not begin where the upload ends is
        out of order and refused with 416 before a byte is written.
        """
        async with self._exclusive(upload_id) as lease:
            return await self._append(name, upload_id, body, start, length, lease)

    async def _append(self, name: str, upload_id: str, body: AsyncIterator[bytes],
                      start: int | None, length: int | None, lease: UploadLease,
                      digest: str | None = None) -> int:
        """append() once the upload's lock is held; `digest`: the chunk is the upload's
        last, and the blob it completes must have this digest (see _writer)."""
        with _staged_invalid():
            upload, offset, writer = await asyncio.to_thread(self._open_chunk, name, upload_id,
                                                             start, digest, length)
        if offset is None:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN")
        if writer is None:
            raise refused_chunk(name, upload_id, offset,
                                f"chunk starts at {start}, upload is at {offset}")
        try:
            state = await self._state(upload_id, offset)
        except BaseException:
            await asyncio.to_thread(writer.abort)
            raise
        saved = state.hasher.copy()
        try:
            received, rest = await self._stream(writer, state, body, lease, length)
            if length is not None and received != length:
                raise RegistryError("SIZE_INVALID",
                                    f"chunk declared {length} bytes, received {received}")
            lease.check()
            with _staged_invalid():
                await asyncio.to_thread(self._commit_chunk, upload_id, writer, state, rest,
                                        digest is None)
        except BaseException:
            # A failed or dropped chunk leaves nothing, so the upload resumes at `offset`.
            await asyncio.to_thread(writer.abort)
            state.offset, state.hasher = offset, saved
            raise
        if time.time() - upload.updated_at >= TOUCH_EVERY:
            self.db.touch_upload(upload_id)
        return state.offset

    def _open_chunk(self, name: str, upload_id: str, start: int | None, digest: str | None,
                    length: int | None = None
                    ) -> tuple[Upload, int | None, ChunkWriter | None]:
        """The upload's row (BLOB_UPLOAD_UNKNOWN unless it is one of this repository's), the
        staged size (None: no such upload) and, if the chunk starts there (or says nothing
        of where it starts), its writer: one worker-thread call per chunk for all three, and
        no query on the event loop. Under the upload's lock the size cannot change between
        the two."""
        upload = self._row(name, upload_id)
        offset = self.store.upload_size(upload_id)
        if offset is None or (start is not None and start != offset):
            return upload, offset, None
        return upload, offset, self._writer(upload_id, offset, digest, length)

    def _writer(self, upload_id: str, offset: int, digest: str | None,
                length: int | None = None) -> ChunkWriter:
        """The chunk's writer. A store that can stage a last chunk where its blob will live
        (the optional `upload_last_chunk`; S3: a multipart upload that only upload_commit
        completes, after the digest is checked) spares the commit a copy of its bytes. The
        announced `length` lets a store send bytes on as they come (S3's streamed parts)."""
        last = getattr(self.store, "upload_last_chunk", None) if digest else None
        if last is not None:
            return last(upload_id, offset, digest)  # type: ignore[no-any-return]
        return self.store.upload_chunk(upload_id, offset, length)

    async def _stream(self, writer: ChunkWriter, state: _HashState,
                      body: AsyncIterator[bytes], lease: UploadLease,
                      length: int | None = None) -> tuple[int, list[bytes]]:
        """Hash and write in batches in a worker thread while the event loop keeps receiving.

        One batch is written while the next one arrives (never two at once: the hash and the
        file take them in order), so the network and the disk work at the same time. Returns
        the bytes received and the last, partial batch, still unwritten: the caller writes it
        in the same worker-thread call that commits the chunk (one thread hop fewer). A body
        that goes past its announced `length` is refused before those bytes reach the store.
        """
        received = 0
        batch: list[bytes] = []
        pending = 0
        size = self.store.write_batch
        writing: asyncio.Future[None] | None = None
        try:
            async for chunk in body:
                if not chunk:
                    continue
                batch.append(chunk)
                pending += len(chunk)
                if length is not None and received + pending > length:
                    raise RegistryError("SIZE_INVALID",
                                        f"chunk declared {length} bytes, received more")
                if pending >= size:
                    parts, batch, received = batch, [], received + pending
                    pending = 0
                    if writing is not None:
                        await writing
                    lease.check()
                    writing = asyncio.ensure_future(
                        asyncio.to_thread(self._write, writer, state, parts))
            if writing is not None:
                await writing
            received += pending
        finally:
            if writing is not None:
                if not writing.done():
                    # The body failed mid-write: the caller aborts the writer, so the batch
                    # being written must be finished first (a thread cannot stop halfway).
                    await asyncio.wait([writing])
                if not writing.cancelled():
                    writing.exception()  # seen: a failure already on its way needs no echo
        return received, batch

    def _commit_chunk(self, upload_id: str, writer: ChunkWriter, state: _HashState,
                      rest: list[bytes], noted: bool = True) -> None:
        """The chunk's last bytes (`rest`, maybe none) written and hashed, then the chunk
        committed and the digest so far noted: one worker-thread call. The body of a closing
        PUT (`noted` False) is not noted: the same hold of the lock commits or drops the
        upload right after, from the running hash."""
        if rest:
            self._write(writer, state, rest)
        writer.commit()
        note = getattr(self.store, "upload_note", None) if noted else None
        if note is not None:
            note(upload_id, f"sha256 {state.offset} {state.hasher.copy().hexdigest()}")

    async def _sha256(self, upload_id: str, size: int) -> str:
        """The staged bytes' SHA-256: from this worker's running hash, else from the note made
        at exactly this size, else by re-hashing them."""
        state = self._hashes.get(upload_id)
        if state is None or state.offset != size:
            noted = await asyncio.to_thread(self._noted_sha256, upload_id, size)
            if noted is not None:
                return noted
        return (await self._state(upload_id, size)).hasher.hexdigest()

    def _noted_sha256(self, upload_id: str, size: int) -> str | None:
        """The noted digest of the staged bytes, if it was noted at exactly this size."""
        noted = getattr(self.store, "upload_noted", None)
        text = noted(upload_id) if noted is not None else None
        parts = text.split(" ") if text else []
        if len(parts) == 3 and parts[0] == "sha256" and parts[1] == str(size):
            return parts[2]
        return None

    @staticmethod
    def _write(writer: ChunkWriter, state: _HashState, parts: list[bytes]) -> None:
        """Hash and write one batch, in one worker-thread call. The parts are the bytes as
        the server received them: a store that can write several buffers at once (writev)
        takes them as they are, any other gets them joined."""
        write_parts = getattr(writer, "write_parts", None)
        if write_parts is not None:
            write_parts(parts)
        else:
            writer.write(parts[0] if len(parts) == 1 else b"".join(parts))
        for part in parts:
            state.hasher.update(part)
            state.offset += len(part)

    async def _state(self, upload_id: str, offset: int) -> _HashState:
        state = self._hashes.get(upload_id)
        if state is None or state.offset != offset:
            try:
                hasher = await asyncio.to_thread(self._rehash, upload_id, "sha256")
            except StagedUploadInvalid as exc:  # e.g. bytes staged for a commit that died
                raise RegistryError("BLOB_UPLOAD_INVALID",
                                    f"{exc}; start the upload again") from None
            state = _HashState(offset, hasher)
            self._remember(upload_id, state)
        return state

    def _rehash(self, upload_id: str, algorithm: str) -> "hashlib._Hash":
        hasher = hashlib.new(algorithm)
        for chunk in self.store.upload_read(upload_id):
            hasher.update(chunk)
        return hasher

    async def finish(self, name: str, upload_id: str, digest: str,
                     body: AsyncIterator[bytes] | None = None, length: int | None = None,
                     start: int | None = None) -> int:
        """Verify the whole upload against `digest` and commit it; returns the blob size.

        The last chunk (if the PUT brings one), the hash and the commit happen under one hold
        of the upload's lock, so no other request's bytes can come between them. A mismatch
        deletes the upload: nothing of it stays behind; so does a blob that would pass the
        namespace's storage quota (StorageQuotaExceeded), checked before its bytes are stored.
        """
        expected = parse_digest(digest)
        async with self._exclusive(upload_id) as lease:
            if body is not None:
                # sha256 comes from the running hash; other algorithms re-read the staged
                # bytes, which a chunk staged at its blob key cannot offer. The size is the
                # one the chunk ended at, under the lock (the commit checks it again).
                size = await self._append(name, upload_id, body, start, length, lease,
                                          digest if expected.algorithm == "sha256" else None)
            else:
                size = (await self._session(name, upload_id))[1]
            if expected.algorithm == "sha256":
                actual = await self._sha256(upload_id, size)
            else:
                actual = (await asyncio.to_thread(
                    self._rehash, upload_id, expected.algorithm)).hexdigest()
            if actual != expected.hex:
                await asyncio.to_thread(self._forget, upload_id)
                lease.end()
                raise RegistryError("DIGEST_INVALID",
                                    f"upload has digest {expected.algorithm}:{actual}, "
                                    f"not {digest}")
            try:
                self.db.check_blob_quota(name, digest, size)
            except StorageQuotaExceeded:
                await asyncio.to_thread(self._forget, upload_id)  # refused: nothing stays
                lease.end()
                raise
            lease.check()
            try:
                await asyncio.to_thread(self._commit, name, upload_id, digest, size)
            except StagedUploadInvalid as exc:
                await asyncio.to_thread(self._forget, upload_id)
                lease.end()
                raise RegistryError("BLOB_UPLOAD_INVALID", str(exc)) from None
            self.db.delete_upload(upload_id)
            self._hashes.pop(upload_id, None)
            lease.end()
        return size

    def _commit(self, name: str, upload_id: str, digest: str, size: int) -> None:
        """Bytes into place, then the row, under the shared lock GC's sweep excludes. The
        store refuses if the staged bytes are no longer the `size` that was hashed."""
        with self.lock.committing(digest):
            self.store.upload_commit(upload_id, digest, size=size)
            self.db.link_blob(name, digest, size)


@contextlib.contextmanager
def _staged_invalid() -> Iterator[None]:
    """Staged bytes the store cannot vouch for, in the registry's words."""
    try:
        yield
    except StagedUploadInvalid as exc:
        raise RegistryError("BLOB_UPLOAD_INVALID", f"{exc}; start the upload again") from None


def upload_location(name: str, upload_id: str) -> str:
    return f"/v2/{name}/blobs/uploads/{upload_id}"


def refused_chunk(name: str, upload_id: str, offset: int, message: str) -> RegistryError:
    """416 to a chunk that is out of order or whose Content-Range is malformed.

    BLOB_UPLOAD_INVALID is the spec's code for it (it has no RANGE_INVALID). The answer says
    where the upload is, so the client resumes there: `Range` as the spec's upload status
    does, and `Content-Range: bytes */OFFSET`, which RFC 9110 (15.5.17) asks of every 416.
    """
    return RegistryError("BLOB_UPLOAD_INVALID", message, status=416, headers={
        "range": range_header(offset), "content-range": f"bytes */{offset}",
        "location": upload_location(name, upload_id)})


def range_header(offset: int) -> str:
    """The `Range` an upload status reports: the inclusive span of bytes received."""
    return f"0-{max(offset - 1, 0)}"
