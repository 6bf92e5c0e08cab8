"""What a backup looks like on disk, and the pieces backup and restore both need.

A backup is a folder (or a tar archive of the same folder) laid out like a data dir, so that
restoring is mostly putting files back where they already are relative to each other:

    backup.json             the manifest: versions, times, counts, problems (BackupManifest)
    SHA256SUMS              `sha256sum -c` format, one line per file below: the backup can be
                            checked with standard tools, without Moorage
    moorage.db              a consistent SQLite snapshot (rollback journal, no -wal file)
    keys/...                token signing key, encryption keys
    blobs/<alg>/<ab>/<hex>  every blob the snapshot's `blobs` table lists

Staging uploads (`uploads/`) are deliberately absent: an upload in progress can only resume
on the instance that received its first bytes, so the snapshot drops its rows too.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from moorage.store.datadir import create_private_file, make_private, private_dirs
from moorage.store.filesystem import fsync_dir  # noqa: F401  (used by create and restore)

FORMAT = "moorage-backup"
FORMAT_VERSION = 1
MANIFEST_NAME = "backup.json"
CHECKSUMS_NAME = "SHA256SUMS"
DB_NAME = "moorage.db"
KEYS_DIR = "keys"
BLOBS_DIR = "blobs"
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
CHUNK = 1 << 20

# The same check the registry applies (oci/digest.py) but kept here as a plain regex: a
# digest read from a backup names a path, so anything else is refused before it touches disk.
_DIGEST_RE = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$")


class BackupError(Exception):
    """A backup or restore that cannot go ahead; the message says why, in one sentence."""


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """Where a backup or restore is: `stage` is snapshot | keys | blobs | extract | done."""

    stage: str
    done: int = 0
    total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0


Progress = Callable[[ProgressEvent], None]


def no_progress(_: ProgressEvent) -> None:
    """The default listener: nobody is watching."""


@dataclass(frozen=True, slots=True)
class BlobProblem:
    """A blob the snapshot references whose bytes could not be backed up (or restored)."""

    digest: str
    problem: str  # "missing" | "corrupt" | "size"
    detail: str = ""


@dataclass
class BackupManifest:
    """backup.json: enough to tell, before restoring, what a backup holds and whether whole."""

    moorage_version: str
    source: str
    started_at: str
    snapshot_at: str
    finished_at: str
    database: dict[str, Any]  # path, size, sha256, uploads_dropped, tables (row counts)
    keys: list[str]
    blob_count: int
    blob_bytes: int
    linked: int
    copied: int
    checksums_sha256: str
    problems: list[BlobProblem] = field(default_factory=list)
    format: str = FORMAT
    version: int = FORMAT_VERSION
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format, "version": self.version,
            "moorage_version": self.moorage_version, "source": self.source,
            "started_at": self.started_at, "snapshot_at": self.snapshot_at,
            "finished_at": self.finished_at, "complete": self.complete,
            "database": self.database, "keys": self.keys,
            "blobs": {"count": self.blob_count, "bytes": self.blob_bytes,
                      "linked": self.linked, "copied": self.copied},
            "checksums": {"file": CHECKSUMS_NAME, "sha256": self.checksums_sha256},
            "problems": [asdict(p) for p in self.problems],
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BackupManifest":
        if data.get("format") != FORMAT:
            raise BackupError(f"not a Moorage backup manifest (format {data.get('format')!r})")
        if data.get("version") != FORMAT_VERSION:
            raise BackupError(f"backup format version {data.get('version')!r} is not supported "
                              f"(this Moorage reads version {FORMAT_VERSION})")
        try:
            blobs = data["blobs"]
            return cls(
                moorage_version=data["moorage_version"], source=data["source"],
                started_at=data["started_at"], snapshot_at=data["snapshot_at"],
                finished_at=data["finished_at"], database=dict(data["database"]),
                keys=list(data["keys"]), blob_count=int(blobs["count"]),
                blob_bytes=int(blobs["bytes"]), linked=int(blobs["linked"]),
                copied=int(blobs["copied"]), checksums_sha256=data["checksums"]["sha256"],
                problems=[BlobProblem(**p) for p in data.get("problems", [])],
                notes=list(data.get("notes", [])))
        except (KeyError, TypeError, ValueError) as exc:
            raise BackupError(f"backup manifest is incomplete or malformed ({exc})") from None


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_tar(path: Path) -> bool:
    return path.name.endswith(TAR_SUFFIXES)


def check_digest(digest: str) -> str:
    """The digest, if it is one this format can name a file after; BackupError otherwise."""
    if not _DIGEST_RE.fullmatch(digest):
        raise BackupError(f"refusing blob with unsupported or malformed digest {digest[:80]!r}")
    return digest


def blob_relpath(digest: str) -> str:
    """`blobs/<alg>/<ab>/<hex>`: the filesystem blob store's layout (store/filesystem.py),
    relative to a data dir or a backup folder alike; tests pin the two together."""
    algorithm, _, hexpart = check_digest(digest).partition(":")
    return f"{BLOBS_DIR}/{algorithm}/{hexpart[:2]}/{hexpart}"


def safe_relpath(value: str) -> str:
    """A path from SHA256SUMS, refused if it could land outside the folder it is read into."""
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or not path.parts or value != str(path):
        raise BackupError(f"refusing unsafe path {value!r} in the checksum file")
    return value


def file_hashes(path: Path, algorithms: Iterable[str]) -> tuple[dict[str, str], int]:
    """Hex digests of a file under each algorithm, read once; and its size."""
    hashers = {a: hashlib.new(a) for a in algorithms}
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            size += len(chunk)
            for h in hashers.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashers.items()}, size


def blob_algorithms(digest: str) -> tuple[str, ...]:
    """The blob's own algorithm (to verify it) and sha256 (for SHA256SUMS)."""
    algorithm = digest.partition(":")[0]
    return ("sha256",) if algorithm == "sha256" else (algorithm, "sha256")


class Transfer:
    """Puts files into a folder by hard link when it can, by copy when it must, hashing every
    byte on the way so that what lands is what its digest promises.

    A hard link costs nothing and is safe for blobs because the blob store never rewrites a
    blob in place (it renames whole files in and unlinks them out), so the linked inode stays
    what it was when verified. The first cross-device (or link-less filesystem) failure turns
    linking off for the rest of the run.
    """

    def __init__(self, link: bool = True) -> None:
        self.link = link
        self.linked = 0
        self.copied = 0

    def place(self, source: Path, target: Path, algorithms: Iterable[str],
              link: bool = True) -> tuple[dict[str, str], int]:
        """Put `source` at `target`, 0600 in folders 0700; its hashes and size as they landed.

        A hard link shares its mode with the source: taking group and other bits off it
        tightens a blob an earlier version left open in the data folder, which is no loss.
        """
        private_dirs(target.parent)
        if link and self.link:
            try:
                os.link(source, target)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP,
                                     errno.EOPNOTSUPP):
                    raise
                self.link = False
            else:
                self.linked += 1
                make_private(target)
                return file_hashes(target, algorithms)
        hashers = {a: hashlib.new(a) for a in algorithms}
        size = 0
        with open(source, "rb") as src, \
                open(create_private_file(target, exclusive=True), "wb") as dst:
            while chunk := src.read(CHUNK):
                size += len(chunk)
                for h in hashers.values():
                    h.update(chunk)
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        self.copied += 1
        return {a: h.hexdigest() for a, h in hashers.items()}, size


def fsync_tree(root: Path) -> None:
    """Flush every directory entry under root, so that renamed and linked names survive a
    power cut along with the bytes they name."""
    for folder, _dirs, _files in os.walk(root):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_checksums(text: str) -> dict[str, str]:
    """SHA256SUMS as {relative path: sha256 hex}."""
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        hexpart, sep, name = line.partition("  ")
        if not sep or not re.fullmatch(r"[0-9a-f]{64}", hexpart):
            raise BackupError(f"{CHECKSUMS_NAME} line {number} is malformed")
        sums[safe_relpath(name)] = hexpart
    return sums


def write_checksums(sums: dict[str, str]) -> str:
    return "".join(f"{hexpart}  {name}\n" for name, hexpart in sorted(sums.items()))
