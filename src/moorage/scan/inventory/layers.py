"""Reading one layer blob as a stream of tar members, whatever its compression.

The blob comes from the store in chunks and is decompressed and untarred on the fly
(gzip, zstd or plain tar, told apart by their magic bytes rather than by the media type a
client claimed), so a layer is never held in memory and nothing is ever written to disk.
Names are normalised to paths inside the image (`etc/os-release`); a name that climbs out
(`../`) is refused, and every bound of `Limits` is enforced here, as a `LayerError` that
ends this layer's reading (the caller keeps what was read before it).
"""

from __future__ import annotations

import gzip
import io
import posixpath
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import zstandard

from moorage.scan.inventory.limits import Limits

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
OTHER_MAGICS = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


class LayerError(Exception):
    """This layer cannot be read further: corrupt, truncated, or over a limit."""


class StoreError(Exception):
    """The blob store could not hand over the layer's bytes (missing, unreachable): not a
    fault of the layer, so nothing about it is cached."""


class _ChunkReader(io.RawIOBase):
    """A file-like view of an iterator of byte chunks (the blob store's `read`)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            try:
                chunk = next(self._chunks, None)
            except Exception as exc:  # noqa: BLE001 - any store failure, named once
                raise StoreError(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
            if chunk is None:
                return 0
            self._buffer = bytes(chunk)
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


class _Bounded(io.RawIOBase):
    """Counts the expanded bytes of a layer and stops past the limit (a tar bomb)."""

    def __init__(self, inner: BinaryIO, limit: int) -> None:
        self._inner = inner
        self._read = getattr(inner, "read1", inner.read)
        self._limit = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        try:
            # read1: what is decompressed so far, so a truncated stream still hands over
            # every byte before the cut (read(n) would raise before returning any of them)
            data = self._read(len(target))
        except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
            raise LayerError(f"cannot be decompressed ({_short(exc)})") from exc
        self.count += len(data)
        if self.count > self._limit:
            raise LayerError(f"expands beyond {self._limit} bytes (the limit); "
                             "reading stopped there")
        target[:len(data)] = data
        return len(data)


def _short(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:200]


def open_layer(chunks: Iterable[bytes], limits: Limits) -> tuple[str, BinaryIO]:
    """The layer's compression ("gzip", "zstd", "tar") and its uncompressed stream."""
    raw = io.BufferedReader(_ChunkReader(chunks), buffer_size=1 << 20)
    head = raw.peek(8)[:8]
    if head.startswith(GZIP_MAGIC):
        kind, stream = "gzip", gzip.GzipFile(fileobj=raw, mode="rb")
    elif head.startswith(ZSTD_MAGIC):
        kind = "zstd"
        stream = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    else:
        for magic, name in OTHER_MAGICS.items():
            if head.startswith(magic):
                raise LayerError(f"is {name}-compressed, which image layers do not use; not read")
        kind, stream = "tar", raw
    bounded = _Bounded(stream, limits.max_layer_bytes)  # type: ignore[arg-type]
    return kind, io.BufferedReader(bounded, buffer_size=1 << 20)  # type: ignore[return-value]


@dataclass(frozen=True)
class Member:
    """One tar member, its name made a path inside the image."""

    path: str  # normalised, relative to the image's root: "usr/lib/os-release"
    kind: str  # "file" | "dir" | "symlink" | "hardlink" | "other"
    size: int
    mode: int
    target: str = ""  # a link's target (a hardlink's as a normalised path)
    whiteout: str | None = None  # the path this whiteout deletes
    opaque: str | None = None  # the directory this marker makes opaque ("" for the root)


def normalise(name: str, limits: Limits) -> tuple[str | None, str | None]:
    """(path, problem): the member's path inside the image, or None with why it is refused.

    A leading '/' or './' is dropped, as runtimes do when they unpack; any '..' component
    is refused even when it would stay inside (no runtime needs one; a traversal does)."""
    if len(name) > limits.max_name_length:
        return None, f"a member name of {len(name)} characters"
    if "\x00" in name:
        return None, "a member name with a NUL byte"
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None, f"a member name climbing out of the image: {name[:200]!r}"
    problem = f"an absolute member name: {name[:200]!r}" if name.startswith("/") else None
    return "/".join(parts), problem


def members(stream: BinaryIO, limits: Limits,
            note: Callable[[str], None]) -> Iterator[tuple[Member, tarfile.TarFile,
                                                           tarfile.TarInfo]]:
    """The members of an uncompressed tar stream, in order; bad names are noted and left
    out. The caller may read a regular file's data through `tar.extractfile(info)` before
    asking for the next member (stream mode: there is no going back)."""
    try:
        tar = tarfile.open(fileobj=stream, mode="r|", errorlevel=2)
    except tarfile.ReadError as exc:
        raise LayerError(f"is not a tar archive ({_short(exc)})") from exc
    count = 0
    while True:
        try:
            info = tar.next()
        except LayerError:
            raise
        except (tarfile.TarError, OSError, EOFError, ValueError, zlib.error) as exc:
            raise LayerError(f"is corrupt or truncated ({_short(exc)})") from exc
        if info is None:
            if _more_after_end(tar, stream):
                raise LayerError("has a damaged tar header; the members after it were not "
                                 "read")
            return
        count += 1
        if count > limits.max_members:
            raise LayerError(f"has more than {limits.max_members} members (the limit); "
                             "reading stopped there")
        path, problem = normalise(info.name, limits)
        if problem:
            note(problem)
        if path is None:
            continue
        member = _member(path, info, limits, note)
        if member is not None:
            yield member, tar, info


def _more_after_end(tar: tarfile.TarFile, stream: BinaryIO) -> bool:
    """Whether anything but zeros follows where tarfile stopped. tarfile ends a stream
    quietly at the first header it cannot parse, which would hide a damaged layer's rest;
    a true end of archive is followed by zero blocks only. (tarfile's stream keeps the bytes
    it read ahead in `buf`: looked at when it is there.)"""
    ahead = getattr(tar.fileobj, "buf", b"")
    if isinstance(ahead, bytes) and ahead.strip(b"\x00"):
        return True
    while chunk := stream.read(1 << 20):
        if chunk.strip(b"\x00"):
            return True
    return False


def _member(path: str, info: tarfile.TarInfo, limits: Limits,
            note: Callable[[str], None]) -> Member | None:
    base = posixpath.basename(path)
    parent = posixpath.dirname(path)
    if base == OPAQUE:
        return Member(path, "other", 0, 0, opaque=parent)
    if base.startswith(WHITEOUT):
        if base.startswith(WHITEOUT + WHITEOUT):  # aufs' own bookkeeping (.wh..wh.plnk)
            return None
        return Member(path, "other", 0, 0, whiteout=posixpath.join(parent, base[len(WHITEOUT):]))
    if info.isreg():
        return Member(path, "file", info.size, info.mode)
    if info.isdir():
        return Member(path, "dir", 0, info.mode)
    if info.issym() or info.islnk():
        if len(info.linkname) > limits.max_name_length:
            note(f"{path}: a link target of {len(info.linkname)} characters; ignored")
            return None
        if info.issym():
            return Member(path, "symlink", 0, info.mode, target=info.linkname)
        target, _ = normalise(info.linkname, limits)
        if target is None:
            note(f"{path}: a hard link out of the image ({info.linkname[:200]!r}); ignored")
            return None
        return Member(path, "hardlink", 0, info.mode, target=target)
    return Member(path, "other", 0, info.mode)
