"""The interface every blob store implements.

The store knows nothing of repositories or metadata: it keeps bytes under their digest and
staged uploads under their id. Committing an upload is atomic, so a blob either exists whole
under its digest or not at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol


class StagedUploadInvalid(Exception):
    """The staged bytes of an upload cannot be committed as they are: they are not the size
    that was hashed, or the store finds them inconsistent (two writers raced on them)."""


class ChunkWriter(Protocol):
    """One chunk of an upload being written: all of it becomes part of the upload, or none."""

    def write(self, data: bytes) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class BlobStore(Protocol):
    # Bytes handed to a ChunkWriter at a time: large enough to amortize each call (and, on
    # S3, to make a multipart part), small enough to keep memory flat.
    write_batch: int
    # Answer blob GETs with a 307 to presigned_url() instead of streaming the bytes through
    # the registry (S3 with `redirect=true`); always False for stores that cannot presign.
    redirect: bool

    def local_path(self, digest: str) -> Path | None:
        """A file that holds the blob, for zero-copy responses; None if not stored locally."""

    def size(self, digest: str) -> int | None:
        """The stored blob's size, or None if the bytes are not there."""

    def read(self, digest: str, start: int = 0, end: int | None = None,
             chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Bytes [start, end) of a blob, in chunks."""

    def presigned_url(self, digest: str, expires: int | None = None, *,
                      size: int | None = None) -> str | None:
        """A URL a client may GET the blob from directly (honouring Range) for `expires`
        seconds, or None when the store has no such thing (the filesystem). `size`: the
        blob's size as the database records it, if known (it may spare a lookup)."""

    def put(self, digest: str, data: bytes) -> None:
        """Store small, already verified content (e.g. the empty JSON config) directly."""

    def delete(self, digest: str) -> None: ...

    def upload_create(self, upload_id: str) -> None: ...

    def upload_size(self, upload_id: str) -> int | None:
        """Bytes staged so far; None if the upload does not exist."""

    def upload_chunk(self, upload_id: str, offset: int, length: int | None = None
                     ) -> ChunkWriter:
        """Start writing the chunk that begins at `offset` (the upload's current size).

        `length`: the chunk's size as its request announced it (Content-Length), or None.
        The core refuses a body of any other size and aborts the writer, so a store may
        send the bytes onward as they arrive (S3: parts of known length); its writer raises
        on bytes beyond it. A store that gains nothing by it ignores it.
        """

    def upload_read(self, upload_id: str, chunk_size: int = 1 << 20) -> Iterator[bytes]: ...

    def upload_commit(self, upload_id: str, digest: str, *, size: int | None = None) -> None:
        """Make the staged bytes the blob `digest`, atomically; the upload is gone after.

        With `size`, refuse (StagedUploadInvalid) unless exactly that many bytes are staged:
        the caller hashed that many. A blob already stored under `digest` is kept, unless its
        size shows it is not the verified bytes; then it is replaced, atomically.
        """

    def upload_delete(self, upload_id: str) -> None: ...


class OptionalStoreMethods(Protocol):
    """Methods a store MAY offer; wrappers (encryption) look for each with `getattr`.

    They let a wrapper that must rewrite bytes do it without copying or without a window in
    which a blob is missing. A store without them still works, only slower (a copy) or, for
    the maintenance passes that need them, with a clear error.
    """

    def upload_write_at(self, upload_id: str, offset: int, data: bytes) -> None:
        """Overwrite staged bytes in place (e.g. a header), never past the staged size.

        Staged bytes are invisible until `upload_commit`, so this needs no atomicity.
        """

    def upload_replace(self, upload_id: str, digest: str) -> None:
        """Like `upload_commit`, but atomically replaces a blob that already exists.

        Readers see the old bytes or the new, never neither; for re-encrypting in place.
        """

    def upload_last_chunk(self, upload_id: str, offset: int, digest: str) -> ChunkWriter:
        """A writer for a chunk the core knows is the upload's last and whose blob must be
        `digest` (a monolithic PUT or POST ?digest=). The store may stage it where the blob
        will live, invisible, for upload_commit to reveal without copying it (S3); its bytes
        then need not be readable through upload_read before the commit."""

    def sweep_unnamed(self, older_than: float, dry_run: bool = False) -> tuple[int, int]:
        """Delete bytes the store keeps apart from its blob keys that no blob names any more
        (S3: data objects whose pointer was never written, or was overwritten by another
        commit of the digest), last modified before `older_than` (epoch seconds), and never
        any a commit in progress may be about to name. Returns (objects, bytes) removed; GC
        calls it after its sweep."""

    def digests(self) -> Iterator[str]:
        """Every blob digest stored, in no particular order (for maintenance passes)."""

    def upload_note(self, upload_id: str, note: str) -> None:
        """Attach a short text to the staged upload, best effort and not durable. It lives and
        goes with the staged bytes, and is trusted as far as they are (the uploads module
        notes the digest of the bytes staged so far, with their size)."""

    def upload_noted(self, upload_id: str) -> str | None:
        """The text last attached by upload_note, or None."""
