"""Reading and cataloguing one layer, in one streaming pass over its blob.

Each member's path is offered to the catalogers; a file one of them wants is read (up to
`Limits.max_file_bytes`) and catalogued at once, and only the resulting packages are kept,
so memory holds one file at a time, never the layer. What the layer does to lower layers
(whiteouts, opaque directories, the paths it writes, its symlinks) is recorded beside, so
layers can later be combined in any order of images without being read again.

CPU-bound and blocking (decompression, parsing): callers on an event loop run it in a
worker thread or process (`asyncio.to_thread`), as scan jobs do.
"""

from __future__ import annotations

import tarfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import BinaryIO

import zstandard

from moorage.scan.inventory.catalogers import apk, dpkg, golang, java, npm, osrelease, python, rpm
from moorage.scan.inventory.layers import LayerError, Member, StoreError, members, open_layer
from moorage.scan.inventory.limits import Limits
from moorage.scan.inventory.records import FileRecord, LayerResult
from moorage.scan.model import Package

# cataloguers of whole files, read into memory: (name, wants(path), parse(...))
Parse = Callable[[str, bytes, Limits, Callable[[str], None]], list[Package]]
FILE_CATALOGERS: tuple[tuple[str, Callable[[str], bool], Parse], ...] = (
    ("dpkg", dpkg.wants, dpkg.parse),
    ("apk", apk.wants, apk.parse),
    ("rpm", rpm.wants, rpm.parse),
    ("python", python.wants, python.parse),
    ("npm", npm.wants, npm.parse),
    ("java", java.wants, java.parse),
)
MAX_LAYER_PROBLEMS = 200
_STREAM_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error, zstandard.ZstdError)


def short(digest: str) -> str:
    return digest[:19]


def wanted(path: str) -> bool:
    """Whether some cataloger reads the file at `path` by its path alone."""
    return osrelease.wants(path) or any(wants(path) for _, wants, _ in FILE_CATALOGERS)


def read_layer(digest: str, chunks: Iterable[bytes], limits: Limits) -> LayerResult:
    """Everything the catalogers find in one layer blob; never raises for bad content: a
    corrupt, truncated or oversized layer ends with a problem and what was read before."""
    result = LayerResult(digest)

    def note(problem: str) -> None:
        if len(result.problems) < MAX_LAYER_PROBLEMS:
            result.problems.append(f"layer {short(digest)}: {problem}")
        elif len(result.problems) == MAX_LAYER_PROBLEMS:
            result.problems.append(f"layer {short(digest)}: more problems not listed")

    try:
        result.compression, stream = open_layer(chunks, limits)
        for member, tar, info in members(stream, limits, note):
            _take(result, member, tar, info, limits, note)
    except LayerError as exc:
        note(str(exc))
    except StoreError as exc:
        note(f"could not be read from the blob store ({exc})")
        result.complete = False
    except _STREAM_ERRORS as exc:
        note(f"is corrupt or truncated ({str(exc)[:200] or type(exc).__name__})")
    return result


def _take(result: LayerResult, member: Member, tar: tarfile.TarFile, info: tarfile.TarInfo,
          limits: Limits, note: Callable[[str], None]) -> None:
    path = member.path
    if member.whiteout is not None:
        result.whiteouts.add(member.whiteout)
        return
    if member.opaque is not None:
        result.opaques.add(member.opaque)
        return
    if member.kind == "dir":
        result.dirs.add(path)
        result.paths.discard(path)
        result.records.pop(path, None)
        result.symlinks.pop(path, None)
        return
    result.dirs.discard(path)
    # a later member of the same layer replaces an earlier one at the same path
    result.paths.add(path)
    result.records.pop(path, None)
    result.symlinks.pop(path, None)
    if member.kind == "symlink":
        result.symlinks[path] = member.target
    elif member.kind == "hardlink":
        _hardlink(result, member, note)
    elif member.kind == "file":
        record = _file(member, tar, info, limits, note)
        if record is not None:
            result.records[path] = record


def _hardlink(result: LayerResult, member: Member, note: Callable[[str], None]) -> None:
    """A hard link holds the same bytes as its target, an earlier member of this layer: its
    record is the target's, under its own path."""
    source = result.records.get(member.target)
    if source is not None:
        result.records[member.path] = FileRecord(
            member.path, [replace(p, path=member.path) for p in source.packages], source.text)
    elif wanted(member.path):
        note(f"{member.path}: a hard link to {member.target!r}, which this layer does not "
             "hold as a catalogued file; not read")


def _read_all(tar: tarfile.TarFile, info: tarfile.TarInfo, cap: int) -> bytes:
    stream = tar.extractfile(info)
    if stream is None:
        return b""
    try:
        data = stream.read(cap)
    except LayerError:
        raise
    except _STREAM_ERRORS as exc:
        raise LayerError(f"is corrupt or truncated ({str(exc)[:200] or type(exc).__name__})"
                         ) from exc
    if len(data) < min(cap, info.size):
        raise LayerError(f"is truncated inside {info.name[:200]!r}")
    return data


def _file(member: Member, tar: tarfile.TarFile, info: tarfile.TarInfo, limits: Limits,
          note: Callable[[str], None]) -> FileRecord | None:
    path = member.path
    if osrelease.wants(path):
        data = _read_all(tar, info, osrelease.MAX_TEXT)
        return FileRecord(path, [], data.decode("utf-8", "replace"))
    for name, wants, parse in FILE_CATALOGERS:
        if not wants(path):
            continue
        if member.size > limits.max_file_bytes:
            note(f"{path}: {member.size} bytes, over the {limits.max_file_bytes}-byte limit; "
                 "not read")
            return None
        data = _read_all(tar, info, member.size)
        return FileRecord(path, _guarded(name, path, lambda: parse(path, data, limits, note),
                                         note))
    if golang.wants(path, member.mode, member.size):
        stream = tar.extractfile(info)
        if stream is None:
            return None
        packages = _guarded("go", path, lambda: _scan(golang.scan, path, stream,
                                                      member.size, limits, note), note)
        return FileRecord(path, packages) if packages else None
    return None


def _scan(scan: Callable[..., list[Package]], path: str, stream: BinaryIO, size: int,
          limits: Limits, note: Callable[[str], None]) -> list[Package]:
    try:
        return scan(path, stream, size, limits, note)
    except LayerError:
        raise
    except _STREAM_ERRORS as exc:
        raise LayerError(f"is corrupt or truncated ({str(exc)[:200] or type(exc).__name__})"
                         ) from exc


def _guarded(cataloger: str, path: str, run: Callable[[], list[Package]],
             note: Callable[[str], None]) -> list[Package]:
    """A cataloger's own failure on one hostile file costs that file, not the scan."""
    try:
        return run()
    except LayerError:
        raise
    except Exception as exc:  # noqa: BLE001 - hostile bytes may break a parser any way
        note(f"{path}: the {cataloger} cataloger could not read it "
             f"({type(exc).__name__}: {str(exc)[:200]})")
        return []
