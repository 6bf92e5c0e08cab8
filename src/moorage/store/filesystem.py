"""Blobs on the local disk: `blobs/<algorithm>/<first two hex>/<hex>`, staging in `uploads/`.

Staged bytes are fsynced and renamed into place, so a crash leaves either the whole blob or
nothing under its digest, and a blob store shared by repositories holds each digest once.
Files are created 0600 and folders 0700, whatever the umask (see datadir.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from moorage.store.base import StagedUploadInvalid
from moorage.store.datadir import PRIVATE_FILE, private_dirs
from moorage.store.direct import DirectAppender
from moorage.store.writeback import start_writeback

# writev(2) takes at most this many buffers at once (IOV_MAX on Linux)
_IOV_MAX = 1024


class FileChunk:
    """Appends to the staging file; an aborted chunk is cut back off.

    With `direct` (the default), whole blocks go to the disk around the page cache from a
    reused aligned buffer (store/direct.py), and only each chunk's last partial block is
    written through it; where the filesystem refuses O_DIRECT, every byte is written through
    the page cache, with its writeback started at once (store/writeback.py).
    """

    def __init__(self, path: Path, offset: int, direct: bool = True) -> None:
        self.path = path
        self.offset = offset
        self._fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        try:
            os.ftruncate(self._fd, offset)
            self._direct = DirectAppender.open(self._fd, offset) if direct else None
        except BaseException:
            os.close(self._fd)
            raise
        self._at = offset  # the end of the bytes written (buffered writes)

    @property
    def direct(self) -> bool:
        """True while this chunk's whole blocks are written around the page cache."""
        return self._direct is not None and self._direct.direct

    def write(self, data: bytes) -> None:
        self.write_parts([data])

    def write_parts(self, parts: list[bytes]) -> None:
        """write() of the parts one after another, without joining them first: copied into
        the aligned buffer (direct), or one writev(2) from the bytes as the server received
        them (buffered)."""
        if self._direct is not None:
            self._direct.append(parts)
            return
        start = self._at
        views = [memoryview(part) for part in parts]
        written = 0
        while views:
            n = os.pwritev(self._fd, views[:_IOV_MAX], start + written)
            written += n
            while views and n >= len(views[0]):  # a short write resumes where it stopped
                n -= len(views.pop(0))
            if views and n:
                views[0] = views[0][n:]
        self._at = start + written
        # The disk starts on these bytes now, while the next ones arrive, instead of all of
        # them at the commit's fsync.
        start_writeback(self._fd, start, written)

    def commit(self) -> None:
        try:
            if self._direct is not None:
                self._direct.finish()
        finally:
            self._close()

    def abort(self) -> None:
        self._close()
        os.truncate(self.path, self.offset)

    def _close(self) -> None:
        if self._direct is not None:
            self._direct.release()
            self._direct = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class FilesystemBlobStore:
    write_batch = 1 << 20
    # staged uploads written with O_DIRECT where the filesystem allows it (FileChunk)
    direct = True
    redirect = False  # there is nothing to redirect to: blobs go out zero-copy from disk
    zero_copy = True  # ... so no blob is worth keeping in memory (registry/small_blobs.py)

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blob_root = root / "blobs"
        self.upload_root = root / "uploads"
        private_dirs(self.blob_root)
        private_dirs(self.upload_root)

    def check(self) -> None:
        """Readiness: the blob and upload folders are there and writable (a disk unmounted
        or remounted read-only shows here, not on the next push)."""
        for folder in (self.blob_root, self.upload_root):
            if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
                raise OSError(f"{folder} is missing or not writable")

    def _blob_path(self, digest: str) -> Path:
        algorithm, _, hexpart = digest.partition(":")
        return self.blob_root / algorithm / hexpart[:2] / hexpart

    def _upload_path(self, upload_id: str) -> Path:
        return self.upload_root / upload_id

    def local_path(self, digest: str) -> Path | None:
        path = self._blob_path(digest)
        return path if path.is_file() else None

    def size(self, digest: str) -> int | None:
        try:
            return self._blob_path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def read(self, digest: str, start: int = 0, end: int | None = None,
             chunk_size: int = 1 << 20) -> Iterator[bytes]:
        return _read_file(self._blob_path(digest), start, end, chunk_size)

    def presigned_url(self, digest: str, expires: int | None = None, *,
                      size: int | None = None) -> str | None:
        return None

    def put(self, digest: str, data: bytes) -> None:
        path = self._blob_path(digest)
        if path.exists():
            return
        private_dirs(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE), "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def delete(self, digest: str) -> None:
        self._blob_path(digest).unlink(missing_ok=True)

    def upload_create(self, upload_id: str) -> None:
        self._upload_path(upload_id).touch(mode=PRIVATE_FILE, exist_ok=False)

    def upload_size(self, upload_id: str) -> int | None:
        try:
            return self._upload_path(upload_id).stat().st_size
        except FileNotFoundError:
            return None

    def upload_chunk(self, upload_id: str, offset: int, length: int | None = None
                     ) -> "FileChunk":
        return FileChunk(self._upload_path(upload_id), offset, self.direct)

    def upload_read(self, upload_id: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        return _read_file(self._upload_path(upload_id), 0, None, chunk_size)

    def upload_commit(self, upload_id: str, digest: str, *, size: int | None = None) -> None:
        source = self._upload_path(upload_id)
        target = self._blob_path(digest)
        with open(source, "rb+") as f:
            staged = os.fstat(f.fileno()).st_size
            if size is not None and staged != size:
                raise StagedUploadInvalid(f"upload {upload_id} holds {staged} bytes, not the "
                                          f"{size} that were verified")
            os.fsync(f.fileno())
        if self.size(digest) == staged:
            source.unlink()
            return
        private_dirs(target.parent)
        os.replace(source, target)
        fsync_dir(target.parent)

    def upload_delete(self, upload_id: str) -> None:
        self._upload_path(upload_id).unlink(missing_ok=True)

    # -- optional methods (base.OptionalStoreMethods), used by the encryption wrapper -------
    def upload_write_at(self, upload_id: str, offset: int, data: bytes) -> None:
        path = self._upload_path(upload_id)
        if offset + len(data) > path.stat().st_size:
            raise ValueError(f"write at {offset}+{len(data)} past the staged size of {upload_id}")
        with open(path, "r+b") as f:
            f.seek(offset)
            f.write(data)

    def upload_replace(self, upload_id: str, digest: str) -> None:
        source = self._upload_path(upload_id)
        target = self._blob_path(digest)
        with open(source, "rb+") as f:
            os.fsync(f.fileno())
        private_dirs(target.parent)
        os.replace(source, target)
        fsync_dir(target.parent)

    # An extended attribute of the staged file: no fsync, no journal commit of its own, and
    # it goes away with the file. Filesystems without user xattrs simply keep no note.
    _NOTE = "user.moorage.note"

    def upload_note(self, upload_id: str, note: str) -> None:
        try:
            os.setxattr(self._upload_path(upload_id), self._NOTE, note.encode())
        except OSError:
            pass

    def upload_noted(self, upload_id: str) -> str | None:
        try:
            return os.getxattr(self._upload_path(upload_id), self._NOTE).decode()
        except OSError:
            return None

    def digests(self) -> Iterator[str]:
        for algorithm in sorted(p for p in self.blob_root.iterdir() if p.is_dir()):
            for prefix in sorted(p for p in algorithm.iterdir() if p.is_dir()):
                for blob in prefix.iterdir():
                    if not blob.name.startswith(".") and blob.is_file():
                        yield f"{algorithm.name}:{blob.name}"


def _read_file(path: Path, start: int, end: int | None, chunk_size: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        remaining = None if end is None else end - start
        while remaining is None or remaining > 0:
            chunk = f.read(chunk_size if remaining is None else min(chunk_size, remaining))
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (the directory entry itself is data)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
