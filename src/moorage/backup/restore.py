"""`restore()`: a backup back into a data dir, verified before anything becomes visible.

Everything is assembled and checked in a staging folder beside the target (same filesystem,
so the final step is a rename): the manifest and checksum file agree, the database snapshot
hashes right and passes SQLite's integrity check, every key matches, and every blob the
snapshot's `blobs` table lists is there and hashes to its digest. Only then does the staging
folder become the data dir. A failed restore leaves the target exactly as it was.

The restored data dir is private (folders 0700, files 0600) whatever modes the backup
recorded, and a data dir a server is using is never replaced under it (its `serve.lock`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import tarfile
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from moorage.backup.format import (BLOBS_DIR, CHECKSUMS_NAME, DB_NAME, MANIFEST_NAME,
                                   BackupError, BackupManifest, BlobProblem, Progress,
                                   ProgressEvent, Transfer, blob_algorithms, blob_relpath,
                                   check_digest, file_hashes, fsync_dir, fsync_tree, is_tar,
                                   no_progress, read_checksums, safe_relpath)
from moorage.store.datadir import (LOCK_NAME, PRIVATE_DIR, DataDirBusy, ServeLock,
                                   make_tree_private)


@dataclass
class RestoreResult:
    data_dir: str
    backup: str
    manifest: BackupManifest
    blob_count: int = 0
    blob_bytes: int = 0
    linked: int = 0
    copied: int = 0
    replaced: bool = False  # a non-empty data dir was replaced (--force)
    problems: list[BlobProblem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"data_dir": self.data_dir, "backup": self.backup,
                "snapshot_at": self.manifest.snapshot_at,
                "moorage_version": self.manifest.moorage_version,
                "tables": self.manifest.database.get("tables", {}),
                "keys": self.manifest.keys,
                "blobs": {"count": self.blob_count, "bytes": self.blob_bytes,
                          "linked": self.linked, "copied": self.copied},
                "replaced": self.replaced, "complete": not self.problems,
                "problems": [asdict(p) for p in self.problems]}


def read_manifest(backup: Path) -> BackupManifest:
    """The manifest of a backup folder or archive, without restoring anything."""
    backup = Path(backup)
    if is_tar(backup) and backup.is_file():
        with tarfile.open(backup) as tar:
            try:
                member = tar.extractfile(MANIFEST_NAME)
            except KeyError:
                member = None
            if member is None:
                raise BackupError(f"{backup} has no {MANIFEST_NAME}: not a Moorage backup")
            return _parse_manifest(member.read())
    path = backup / MANIFEST_NAME
    if not path.is_file():
        raise BackupError(f"{backup} has no {MANIFEST_NAME}: not a Moorage backup "
                          f"(or an unfinished one)")
    return _parse_manifest(path.read_bytes())


def _parse_manifest(data: bytes) -> BackupManifest:
    try:
        return BackupManifest.from_dict(json.loads(data))
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise BackupError(f"{MANIFEST_NAME} is not valid JSON") from None


def restore(backup: Path, data_dir: Path, force: bool = False, partial: bool = False,
            progress: Progress = no_progress, link: bool = True) -> RestoreResult:
    """Restore `backup` (folder or .tar/.tar.gz) as the instance in `data_dir`.

    Refuses a non-empty `data_dir` unless `force` (its contents are then replaced, and
    deleted once the restored data is in place). Refuses a backup with missing or corrupt
    blobs unless `partial`: images that need those blobs would not pull.
    """
    backup = Path(backup).absolute()
    data_dir = Path(data_dir).absolute()
    if not backup.exists():
        raise BackupError(f"{backup} does not exist")
    if data_dir.exists() and not data_dir.is_dir():
        raise BackupError(f"{data_dir} exists and is not a folder")
    occupied = data_dir.is_dir() and any(data_dir.iterdir())
    if occupied and not force:
        raise BackupError(f"{data_dir} is not empty; restore refuses to mix a backup into "
                          f"another instance's data (--force replaces its contents)")
    real_backup, real_data = backup.resolve(), data_dir.resolve()
    if real_data == real_backup or real_data in real_backup.parents \
            or real_backup in real_data.parents:
        raise BackupError("the backup and the data dir must not contain one another")

    # Only a non-empty folder can be in use, and a server holds its serve.lock.
    lock = ServeLock(data_dir) if occupied and (data_dir / LOCK_NAME).exists() else None
    if lock is not None:
        try:
            lock.acquire("restore", grace=0)
        except DataDirBusy as exc:
            raise BackupError(str(exc)) from None
    try:
        return _restore(backup, data_dir, occupied, partial, progress, link)
    finally:
        if lock is not None:
            lock.release()


def _restore(backup: Path, data_dir: Path, occupied: bool, partial: bool,
             progress: Progress, link: bool) -> RestoreResult:
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = data_dir.parent / f".{data_dir.name}.restore-{uuid.uuid4().hex[:12]}"
    staging.mkdir(mode=PRIVATE_DIR)
    try:
        if is_tar(backup):
            _extract(backup, staging, progress)
            result = _assemble(staging, staging, backup, data_dir, progress, link)
        else:
            result = _assemble(backup, staging, backup, data_dir, progress, link)
        if result.problems and not partial:
            first = result.problems[0]
            raise BackupError(
                f"backup has {len(result.problems)} missing or corrupt blob"
                f"{'s' if len(result.problems) != 1 else ''} (first: {first.digest} "
                f"{first.problem}{': ' + first.detail if first.detail else ''}); nothing was "
                f"restored (--partial restores the rest)")
        for name in ("uploads", "locks"):
            (staging / name).mkdir(mode=PRIVATE_DIR, exist_ok=True)
        make_tree_private(staging)  # an archive's members carry the modes they were made with
        fsync_tree(staging)
        result.replaced = occupied
        _swap(staging, data_dir, occupied)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    progress(ProgressEvent("done", result.blob_count, result.blob_count, result.blob_bytes,
                           result.blob_bytes))
    return result


def _extract(archive: Path, staging: Path, progress: Progress) -> None:
    """Unpack an archive into staging. The `data` filter refuses absolute paths, `..`, links
    out of the tree and device files, so a crafted archive cannot write outside staging."""
    progress(ProgressEvent("extract"))
    try:
        with tarfile.open(archive) as tar:
            for number, member in enumerate(tar, 1):
                tar.extract(member, staging, filter="data")
                progress(ProgressEvent("extract", number, 0))
    except (tarfile.TarError, OSError) as exc:
        raise BackupError(f"cannot read {archive}: {exc}") from None


def _assemble(source: Path, staging: Path, backup: Path, data_dir: Path, progress: Progress,
              link: bool) -> RestoreResult:
    """Verify what `source` holds and put it in `staging` (when they differ, by copying the
    database and keys and linking or copying blobs; an archive was unpacked in place)."""
    in_place = source == staging
    manifest = read_manifest(source)
    sums_path = source / CHECKSUMS_NAME
    if not sums_path.is_file():
        raise BackupError(f"backup has no {CHECKSUMS_NAME}")
    sums_bytes = sums_path.read_bytes()
    if hashlib.sha256(sums_bytes).hexdigest() != manifest.checksums_sha256:
        raise BackupError(f"{CHECKSUMS_NAME} does not match the manifest: the backup was altered")
    sums = read_checksums(sums_bytes.decode())
    transfer = Transfer(link)
    files = Transfer(link=False)

    def place_file(relpath: str, what: str) -> None:
        safe_relpath(relpath)
        expected = sums.get(relpath)
        if expected is None:
            raise BackupError(f"{relpath} is not in {CHECKSUMS_NAME}")
        if not (source / relpath).is_file():
            raise BackupError(f"{what} {relpath} is missing from the backup")
        if in_place:
            hashes, _ = file_hashes(staging / relpath, ("sha256",))
        else:
            hashes, _ = files.place(source / relpath, staging / relpath, ("sha256",), link=False)
        if hashes["sha256"] != expected:
            raise BackupError(f"{what} {relpath} is corrupt (its checksum does not match)")

    progress(ProgressEvent("snapshot"))
    place_file(DB_NAME, "the database")
    blobs = _check_database(staging / DB_NAME)
    progress(ProgressEvent("keys"))
    for relpath in manifest.keys:
        place_file(relpath, "key")

    result = RestoreResult(str(data_dir), str(backup), manifest)
    bytes_total = sum(size for _, size in blobs)
    seen = 0
    progress(ProgressEvent("blobs", 0, len(blobs), 0, bytes_total))
    for number, (digest, size) in enumerate(blobs, 1):
        relpath = blob_relpath(digest)
        problem = _place_blob(source, staging, relpath, digest, size, sums.get(relpath),
                              transfer, in_place)
        if problem is None:
            result.blob_count += 1
            result.blob_bytes += size
        else:
            (staging / relpath).unlink(missing_ok=True)
            result.problems.append(problem)
        seen += size
        progress(ProgressEvent("blobs", number, len(blobs), seen, bytes_total))
    result.linked, result.copied = transfer.linked, transfer.copied
    if in_place:
        result.copied = result.blob_count  # unpacked from the archive

    if in_place:  # the archive's own bookkeeping, and anything the database does not list
        (staging / MANIFEST_NAME).unlink(missing_ok=True)
        (staging / CHECKSUMS_NAME).unlink(missing_ok=True)
        wanted = {blob_relpath(d) for d, _ in blobs}
        stray = [p for p in (staging / BLOBS_DIR).rglob("*")
                 if p.is_file() and p.relative_to(staging).as_posix() not in wanted]
        for path in stray:
            path.unlink()
    return result


def _place_blob(source: Path, staging: Path, relpath: str, digest: str, size: int,
                listed: str | None, transfer: Transfer, in_place: bool) -> BlobProblem | None:
    """One blob into staging, verified against its digest, its size and SHA256SUMS."""
    algorithm, _, expected = digest.partition(":")
    try:
        if in_place:
            hashes, actual = file_hashes(staging / relpath, blob_algorithms(digest))
        else:
            hashes, actual = transfer.place(source / relpath, staging / relpath,
                                            blob_algorithms(digest))
    except FileNotFoundError:
        return BlobProblem(digest, "missing", "not in the backup")
    if hashes[algorithm] != expected:
        return BlobProblem(digest, "corrupt", f"bytes hash to {algorithm}:{hashes[algorithm]}")
    if actual != size:
        return BlobProblem(digest, "size", f"{actual} bytes, metadata says {size}")
    if listed is not None and listed != hashes["sha256"]:
        return BlobProblem(digest, "corrupt", f"does not match {CHECKSUMS_NAME}")
    return None


def _check_database(path: Path) -> list[tuple[str, int]]:
    """SQLite's own integrity check, then the blobs the database says the instance holds."""
    conn = sqlite3.connect(path)
    try:
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"the database in the backup fails SQLite's integrity check: "
                              f"{check}")
        rows = conn.execute("SELECT digest, size FROM blobs ORDER BY digest").fetchall()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"the database in the backup cannot be read: {exc}") from None
    finally:
        conn.close()
    return [(check_digest(d), int(s)) for d, s in rows]


def _swap(staging: Path, data_dir: Path, occupied: bool) -> None:
    """Staging becomes the data dir by rename. An empty folder is simply replaced; a
    non-empty one (--force) is moved aside first and deleted once the new one is in place."""
    if not occupied:
        os.rename(staging, data_dir)  # replaces an empty folder, or creates the name
        fsync_dir(data_dir.parent)
        return
    aside = data_dir.parent / f".{data_dir.name}.replaced-{uuid.uuid4().hex[:12]}"
    os.rename(data_dir, aside)
    try:
        os.rename(staging, data_dir)
    except BaseException:
        os.rename(aside, data_dir)
        raise
    fsync_dir(data_dir.parent)
    shutil.rmtree(aside, ignore_errors=True)
