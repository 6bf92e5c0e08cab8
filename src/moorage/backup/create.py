"""`backup()`: a consistent copy of an embedded instance, taken while it keeps serving.

Consistency comes from two facts about how the registry writes, plus one lock:

1. Blob bytes are in place before their `blobs` row commits (an upload is renamed into the
   store, then its row is inserted), so every row a snapshot sees has its bytes on disk.
2. SQLite's online backup API copies the database inside one read transaction; in WAL mode
   writers carry on and the copy is the database as of one instant (the snapshot).
3. The only thing that removes blob bytes is the GC sweep, which deletes a row and its bytes
   under `FileBlobLock.exclusive()` (its `sweeping`). We hold the lock *shared* from before the snapshot until the
   last blob is copied, so no blob the snapshot references can vanish in between. Pushes take
   the lock shared too and go on undisturbed; only a GC sweep waits for the backup.

Hence every push acknowledged before the backup began is in the snapshot, with all its bytes.
Pushes acknowledged during the backup may or may not be, but never half.

A backup holds the signing and master keys and the password hashes: its folders are 0700,
its files 0600, an archive is 0600 and records 0600 for every member, whatever the umask.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import time
import uuid
from pathlib import Path
from typing import IO, Protocol

from moorage import __version__
from moorage.backup.format import (CHECKSUMS_NAME, DB_NAME, KEYS_DIR, MANIFEST_NAME,
                                   BackupError, BackupManifest, BlobProblem, Progress,
                                   ProgressEvent, Transfer, blob_algorithms, blob_relpath,
                                   check_digest, file_hashes, fsync_dir, fsync_tree, is_tar,
                                   no_progress, utc_now, write_checksums)
from moorage.registry.locks import FileBlobLock
from moorage.store.datadir import PRIVATE_DIR, PRIVATE_FILE, create_private_file, private_dirs

# Row counts reported in the manifest, so that an operator can tell backups apart at a glance.
COUNTED_TABLES = ("namespaces", "repositories", "manifests", "tags", "blobs", "users")

NOTES = [
    "Uploads in progress are not included: they can only resume on the instance that "
    "received them, so their rows were dropped from the snapshot and clients restart them.",
    "Settings (the TOML file, MOORAGE_* variables) live outside the data dir and are not "
    "included.",
]


class _Sink(Protocol):
    """Where backed-up files go: a staging folder, or a tar archive being written."""

    scratch: Path  # where the database snapshot is written before it is added

    def add_blob(self, source: Path, relpath: str, digest: str) -> tuple[dict[str, str], int]:
        """Copy (or link) a blob in, hashing it with its own algorithm and sha256."""

    def add_file(self, source: Path, relpath: str) -> tuple[str, int]:
        """Copy a small file in (never linked: it may be rewritten in place); sha256, size."""

    def add_bytes(self, relpath: str, data: bytes) -> None: ...

    def discard(self, relpath: str) -> None:
        """Drop a blob found bad after it was added, where the medium allows it."""

    def counts(self) -> tuple[int, int]:
        """Blobs hard-linked, blobs copied."""

    def finish(self, dest: Path) -> None: ...

    def abort(self) -> None: ...


class _FolderSink:
    """A staging folder beside the destination, renamed into place when complete."""

    def __init__(self, staging: Path, link: bool) -> None:
        self.root = staging
        self.scratch = staging
        self.transfer = Transfer(link)
        self.files = Transfer(link=False)  # keys and the snapshot: not blobs, never linked
        staging.mkdir(mode=PRIVATE_DIR)

    def add_blob(self, source: Path, relpath: str, digest: str) -> tuple[dict[str, str], int]:
        return self.transfer.place(source, self.root / relpath, blob_algorithms(digest))

    def add_file(self, source: Path, relpath: str) -> tuple[str, int]:
        target = self.root / relpath
        if target != source:
            hashes, size = self.files.place(source, target, ("sha256",), link=False)
        else:
            hashes, size = file_hashes(target, ("sha256",))
        return hashes["sha256"], size

    def add_bytes(self, relpath: str, data: bytes) -> None:
        target = self.root / relpath
        with open(create_private_file(target, exclusive=True), "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def discard(self, relpath: str) -> None:
        (self.root / relpath).unlink(missing_ok=True)

    def counts(self) -> tuple[int, int]:
        return self.transfer.linked, self.transfer.copied

    def finish(self, dest: Path) -> None:
        fsync_tree(self.root)
        os.rename(self.root, dest)  # replaces dest only if it is an empty folder
        fsync_dir(dest.parent)

    def abort(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class _HashingReader(io.RawIOBase):
    """Feeds tarfile from a blob while hashing exactly the bytes that go into the archive."""

    def __init__(self, f: IO[bytes], hashers: dict[str, "hashlib._Hash"]) -> None:
        self.f, self.hashers, self.size = f, hashers, 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.size += len(data)
        for h in self.hashers.values():
            h.update(data)
        return data


class _TarSink:
    """A tar archive written to a temporary name beside the destination, then renamed.

    `.tar.gz` uses gzip level 1: layers are compressed already, and level 1 still shrinks the
    database well, at a fraction of the CPU.
    """

    def __init__(self, temp: Path, dest: Path) -> None:
        self.temp = temp
        self.scratch = temp.with_name(temp.name + ".scratch")
        self.scratch.mkdir(mode=PRIVATE_DIR)
        gz = dest.name.endswith((".gz", ".tgz"))
        self._file = open(create_private_file(temp, exclusive=True), "wb")
        self.tar = tarfile.open(fileobj=self._file, mode="w:gz" if gz else "w",
                                format=tarfile.PAX_FORMAT,
                                **({"compresslevel": 1} if gz else {}))  # type: ignore[call-overload]
        self.copied = 0

    def _add(self, source: Path, relpath: str, algorithms: tuple[str, ...]
             ) -> tuple[dict[str, str], int]:
        hashers = {a: hashlib.new(a) for a in algorithms}
        with open(source, "rb") as f:
            info = self.tar.gettarinfo(fileobj=f, arcname=relpath)
            info.uname = info.gname = ""
            info.mode = PRIVATE_FILE
            reader = _HashingReader(f, hashers)
            self.tar.addfile(info, reader)  # type: ignore[arg-type]
        return {a: h.hexdigest() for a, h in hashers.items()}, reader.size

    def add_blob(self, source: Path, relpath: str, digest: str) -> tuple[dict[str, str], int]:
        result = self._add(source, relpath, blob_algorithms(digest))
        self.copied += 1
        return result

    def add_file(self, source: Path, relpath: str) -> tuple[str, int]:
        hashes, size = self._add(source, relpath, ("sha256",))
        return hashes["sha256"], size

    def add_bytes(self, relpath: str, data: bytes) -> None:
        info = tarfile.TarInfo(relpath)
        info.size = len(data)
        info.mode = PRIVATE_FILE
        info.mtime = int(time.time())
        self.tar.addfile(info, io.BytesIO(data))

    def discard(self, relpath: str) -> None:
        """A tar cannot take a member back; the manifest lists it and restore refuses it."""

    def counts(self) -> tuple[int, int]:
        return 0, self.copied

    def finish(self, dest: Path) -> None:
        self.tar.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        shutil.rmtree(self.scratch, ignore_errors=True)
        os.rename(self.temp, dest)
        fsync_dir(dest.parent)

    def abort(self) -> None:
        try:
            self.tar.close()
        except Exception:  # noqa: BLE001 - already failing; the partial file goes anyway
            pass
        self._file.close()
        self.temp.unlink(missing_ok=True)
        shutil.rmtree(self.scratch, ignore_errors=True)


def backup(data_dir: Path, dest: Path, progress: Progress = no_progress,
           link: bool = True) -> BackupManifest:
    """Back up the instance in `data_dir` to `dest` (a folder, or an archive when `dest` ends
    in .tar, .tar.gz or .tgz) while it keeps serving; returns the manifest written there.

    Bad or missing blob bytes do not stop the backup (the rest is still worth having); they
    are listed in `manifest.problems`, and `manifest.complete` is False.
    """
    data_dir = Path(data_dir).resolve()
    dest = Path(dest).absolute()
    db_path = data_dir / DB_NAME
    if not db_path.is_file():
        raise BackupError(f"{data_dir} holds no Moorage instance (no {DB_NAME})")
    real_dest = dest.parent.resolve() / dest.name
    if real_dest == data_dir or data_dir in real_dest.parents or real_dest in data_dir.parents:
        raise BackupError("the backup destination must be outside the data dir")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir()) or is_tar(dest)):
        raise BackupError(f"{dest} already exists; choose a new name (backups never "
                          f"overwrite one another)")
    private_dirs(dest.parent)

    temp = dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex[:12]}"
    sink: _Sink = _TarSink(temp, dest) if is_tar(dest) else _FolderSink(temp, link)
    try:
        manifest = _write(data_dir, sink, progress)
        sink.finish(dest)
    except BaseException:
        sink.abort()
        raise
    progress(ProgressEvent("done", manifest.blob_count, manifest.blob_count,
                           manifest.blob_bytes, manifest.blob_bytes))
    return manifest


def _write(data_dir: Path, sink: _Sink, progress: Progress) -> BackupManifest:
    started_at = utc_now()
    snapshot = sink.scratch / DB_NAME
    sums: dict[str, str] = {}
    problems: list[BlobProblem] = []
    count = total = 0
    progress(ProgressEvent("snapshot"))
    with FileBlobLock(data_dir / "locks" / "blobs").shared():
        _snapshot(data_dir / DB_NAME, snapshot)
        snapshot_at = utc_now()
        blobs = _blob_rows(snapshot)
        # Everything the snapshot references is copied before GC may sweep again.
        bytes_total = sum(size for _, size in blobs)
        progress(ProgressEvent("blobs", 0, len(blobs), 0, bytes_total))
        seen_bytes = 0
        for number, (digest, size) in enumerate(blobs, 1):
            relpath = blob_relpath(digest)
            if _copy_blob(sink, data_dir / relpath, relpath, digest, size, sums, problems):
                count += 1
                total += size
            seen_bytes += size
            progress(ProgressEvent("blobs", number, len(blobs), seen_bytes, bytes_total))

    uploads_dropped, tables = _finish_snapshot(snapshot)
    sha, size = sink.add_file(snapshot, DB_NAME)
    sums[DB_NAME] = sha

    progress(ProgressEvent("keys"))
    keys: list[str] = []
    keys_dir = data_dir / KEYS_DIR
    if keys_dir.is_dir():
        for path in sorted(p for p in keys_dir.rglob("*") if p.is_file()):
            if path.name.startswith("."):
                continue  # a key being created right now (see access/tokens.py)
            relpath = path.relative_to(data_dir).as_posix()
            sums[relpath], _ = sink.add_file(path, relpath)
            keys.append(relpath)

    checksums = write_checksums(sums).encode()
    linked, copied = sink.counts()
    manifest = BackupManifest(
        moorage_version=__version__, source=str(data_dir), started_at=started_at,
        snapshot_at=snapshot_at, finished_at=utc_now(),
        database={"path": DB_NAME, "size": size, "sha256": sha,
                  "uploads_dropped": uploads_dropped, "tables": tables},
        keys=keys, blob_count=count, blob_bytes=total, linked=linked, copied=copied,
        checksums_sha256=hashlib.sha256(checksums).hexdigest(), problems=problems,
        notes=list(NOTES))
    sink.add_bytes(CHECKSUMS_NAME, checksums)
    sink.add_bytes(MANIFEST_NAME, (json.dumps(manifest.to_dict(), indent=2) + "\n").encode())
    return manifest


def _copy_blob(sink: _Sink, source: Path, relpath: str, digest: str, size: int,
               sums: dict[str, str], problems: list[BlobProblem]) -> bool:
    """One blob into the backup, verified; a bad one is recorded, never silently skipped."""
    algorithm, _, expected = digest.partition(":")
    try:
        hashes, actual = sink.add_blob(source, relpath, digest)
    except FileNotFoundError:
        problems.append(BlobProblem(digest, "missing", f"{source} does not exist"))
        return False
    if hashes[algorithm] != expected:
        sink.discard(relpath)
        problems.append(BlobProblem(digest, "corrupt",
                                    f"bytes hash to {algorithm}:{hashes[algorithm]}"))
        return False
    if actual != size:
        sink.discard(relpath)
        problems.append(BlobProblem(digest, "size", f"{actual} bytes, metadata says {size}"))
        return False
    sums[relpath] = hashes["sha256"]
    return True


def _snapshot(source: Path, target: Path) -> None:
    """The database as of one instant, while writers continue.

    `Connection.backup` with its default `pages=-1` copies every page in a single step, i.e.
    inside one read transaction: WAL lets writers commit meanwhile, and none of their commits
    can show up half-way through the copy (a stepwise backup would restart on every write).
    """
    src = sqlite3.connect(f"{source.as_uri()}?mode=rw", uri=True, timeout=30)
    try:
        src.execute("PRAGMA busy_timeout=30000")
        os.close(create_private_file(target, exclusive=True))  # 0600 before SQLite fills it
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def _blob_rows(snapshot: Path) -> list[tuple[str, int]]:
    conn = sqlite3.connect(snapshot)
    try:
        rows = conn.execute("SELECT digest, size FROM blobs ORDER BY digest").fetchall()
    finally:
        conn.close()
    for digest, _ in rows:
        check_digest(digest)
    return [(d, int(s)) for d, s in rows]


def _finish_snapshot(snapshot: Path) -> tuple[int, dict[str, int]]:
    """Make the snapshot self-contained and restorable; returns dropped uploads, row counts.

    A rollback journal instead of WAL makes it one file with nothing beside it (the server
    turns WAL back on when it opens the restored database). Upload rows go, because their
    staging bytes are not in the backup.
    """
    conn = sqlite3.connect(snapshot)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        dropped = 0
        if "uploads" in names:
            dropped = conn.execute("DELETE FROM uploads").rowcount
            conn.commit()
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"the database snapshot fails SQLite's check: {check}")
        tables = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
                  for t in COUNTED_TABLES if t in names}
    finally:
        conn.close()
    return dropped, tables


__all__ = ["backup"]
