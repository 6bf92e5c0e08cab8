"""Reading an advisory dump, bounded: a folder or a zip of OSV JSON/YAML records (osv.dev's
per-ecosystem `all.zip`, a clone of an advisory repository) and Alpine secdb files.

Nothing is extracted to disk: members are read into memory one at a time, at most
`max_record_bytes` each, so a name such as `../../etc/passwd` could not write anywhere; such
names are still refused, as a sign of a hostile archive. The sizes a zip declares are not
trusted: what is read is counted, and the import stops when the total passes
`max_total_bytes` (a zip bomb) or the archive holds more than `max_members` entries.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import orjson
import yaml

from moorage.scan.advisories.osv import BadRecord

SUFFIXES = (".json", ".yaml", ".yml")


@dataclass(frozen=True)
class Limits:
    max_record_bytes: int = 4 * 1024 * 1024
    max_total_bytes: int = 8 * 1024 * 1024 * 1024
    max_members: int = 1_000_000


class SourceError(Exception):
    """The whole source is unusable (not found, not a zip, over a limit): the import stops."""


@dataclass(frozen=True)
class Entry:
    """One file of the source: its name, and its bytes or why they were not read."""

    name: str
    data: bytes | None
    problem: str = ""


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~5x faster


def _load_yaml(data: bytes) -> Any:
    """Safe YAML without anchors and aliases: advisory records have no use for them, and they
    are how a small YAML file expands into gigabytes ("billion laughs"). The events are read
    first (cheap, in libyaml) so that an alias is refused before anything is built."""
    for event in yaml.parse(data, Loader=_LOADER):
        if isinstance(event, yaml.AliasEvent):
            raise yaml.YAMLError("YAML aliases are not accepted in advisory records")
    return yaml.load(data, Loader=_LOADER)  # noqa: S506 - a safe loader


def decode(name: str, data: bytes) -> Any:
    """The document in `data`, as plain JSON values (YAML dates become strings). Raises
    BadRecord."""
    try:
        if name.endswith(".json"):
            return orjson.loads(data)
        document = _load_yaml(data)
        return orjson.loads(orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS))
    except orjson.JSONDecodeError as exc:
        raise BadRecord(f"malformed JSON: {str(exc)[:200]}") from None
    except yaml.YAMLError as exc:
        raise BadRecord(f"malformed YAML: {str(exc)[:200]}") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise BadRecord(f"unreadable document: {str(exc)[:200]}") from None


def _safe_name(name: str) -> bool:
    path = PurePosixPath(name.replace("\\", "/"))
    return not path.is_absolute() and ".." not in path.parts and ":" not in path.parts[0]


def count(source: Path, limits: Limits) -> int:
    """How many record files the source holds (for a progress bar). Raises SourceError."""
    if source.is_dir():
        return sum(1 for _ in _walk(source))
    with _open_zip(source) as archive:
        infos = archive.infolist()
        if len(infos) > limits.max_members:
            raise SourceError(f"the archive has {len(infos)} entries, over the limit of "
                              f"{limits.max_members}")
        return sum(1 for i in infos if not i.is_dir() and i.filename.endswith(SUFFIXES))


def _open_zip(source: Path) -> zipfile.ZipFile:
    if not source.exists():
        raise SourceError(f"{source} does not exist")
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SourceError(f"{source} is neither a folder nor a zip archive ({exc})") from None


def _walk(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):  # symbolic links are not followed
        dirs.sort()
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in sorted(files):
            path = Path(folder, name)
            if name.endswith(SUFFIXES) and not path.is_symlink():
                yield path


def entries(source: Path, limits: Limits) -> Iterator[Entry]:
    """Each record file of the source in turn. Raises SourceError."""
    total = 0
    if source.is_dir():
        for n, path in enumerate(_walk(source)):
            if n >= limits.max_members:
                raise SourceError(f"the folder has over {limits.max_members} record files")
            name = str(path.relative_to(source))
            size = path.stat().st_size
            if size > limits.max_record_bytes:
                yield Entry(name, None, f"larger than {limits.max_record_bytes} bytes")
                continue
            data = path.read_bytes()
            total += len(data)
            if total > limits.max_total_bytes:
                raise SourceError(f"the source holds over {limits.max_total_bytes} bytes")
            yield Entry(name, data)
        return
    with _open_zip(source) as archive:
        infos = archive.infolist()
        if len(infos) > limits.max_members:
            raise SourceError(f"the archive has {len(infos)} entries, over the limit of "
                              f"{limits.max_members}")
        for info in infos:
            if info.is_dir() or not info.filename.endswith(SUFFIXES):
                continue
            if not _safe_name(info.filename):
                yield Entry(info.filename[:200], None, "unsafe path in the archive")
                continue
            if info.file_size > limits.max_record_bytes:
                yield Entry(info.filename, None,
                            f"larger than {limits.max_record_bytes} bytes")
                continue
            try:
                with archive.open(info) as member:
                    data = member.read(limits.max_record_bytes + 1)
            except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError) as exc:
                yield Entry(info.filename, None, f"unreadable in the archive: {exc}")
                continue
            if len(data) > limits.max_record_bytes:  # the header lied about its size
                yield Entry(info.filename, None,
                            f"larger than {limits.max_record_bytes} bytes")
                continue
            total += len(data)
            if total > limits.max_total_bytes:
                raise SourceError(f"the archive expands to over {limits.max_total_bytes} "
                                  f"bytes (a zip bomb?)")
            yield Entry(info.filename, data)
