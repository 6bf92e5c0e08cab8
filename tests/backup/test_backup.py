"""Backup and restore of a live instance: consistent under load, verified, refused when unsafe.

Servers are real `moorage serve` processes; the backup runs in the test process (or as the
real `moorage` command) against the data dir the server is using at that moment. One source
instance is shared by the module (starting a server is the slow part); each test pushes into
repositories of its own and never removes what another test pushed.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from moorage.backup import BackupError, ProgressEvent, backup, read_manifest, restore
from moorage.backup.format import blob_relpath
from moorage.store.filesystem import FilesystemBlobStore
from tests.backup.helpers import (OPEN, Pushed, assert_pulls, client, manifest_status, moorage,
                                  push_images)
from tests.lifecycle.helpers import make_image, push
from tests.support.server import MoorageServer

MakeRegistry = Callable[..., MoorageServer]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    server = MoorageServer(tmp_path_factory.mktemp("source") / "data", env=OPEN).start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def base(source: MoorageServer) -> list[Pushed]:
    """Images every backup of the source must hold."""
    return push_images(source, 6, prefix="base")


class Pusher(threading.Thread):
    """Keeps pushing new images; `acked` grows only after the registry answered 201."""

    def __init__(self, server: MoorageServer, shared: bytes) -> None:
        super().__init__(daemon=True)
        self.server, self.shared = server, shared
        self.acked: list[Pushed] = []
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        rng = random.Random(3)
        with client(self.server) as http:
            n = 0
            while not self.stop.is_set():
                image = make_image([self.shared, os.urandom(rng.randint(2_000, 60_000))],
                                   f"load-{n}")
                item = Pushed(f"load/app{n % 4}", f"v{n}", image)
                try:
                    resp = push(http, item.repo, item.tag, image)
                except Exception as exc:  # noqa: BLE001 - reported by the test
                    self.errors.append(f"{item}: {exc!r}")
                    return
                if resp.status_code == 201:
                    self.acked.append(item)
                else:
                    self.errors.append(f"{item}: {resp.status_code} {resp.text}")
                n += 1

    def wait_for(self, count: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < count:
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, f"pushes stalled at {len(self.acked)}"
            time.sleep(0.01)


def no_leftovers(folder: Path) -> bool:
    """Neither backup nor restore leaves staging folders or partial files behind."""
    return not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_blob_paths_follow_the_filesystem_store(tmp_path: Path) -> None:
    """The backup names blob files the way the blob store does, so a restored folder is a
    data dir as it stands."""
    store = FilesystemBlobStore(tmp_path)
    data = b"layout"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    store.put(digest, data)
    assert store.local_path(digest) == tmp_path / blob_relpath(digest)


def test_backup_under_load_restores_every_acknowledged_push(
        source: MoorageServer, base: list[Pushed], make_registry: MakeRegistry,
        tmp_path: Path) -> None:
    with client(source) as http:  # an upload left half-way: not part of a backup
        started = http.post("/v2/base/app0/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = started.headers["location"]
        assert http.patch(location, content=b"x" * 1000,
                          headers={"Content-Type": "application/octet-stream"}
                          ).status_code == 202

    pusher = Pusher(source, os.urandom(80_000))
    pusher.start()
    pusher.wait_for(4)
    acked_before = list(pusher.acked)  # everything acknowledged before the backup began
    during: dict[str, int] = {}

    def progress(event: ProgressEvent) -> None:
        if event.stage == "blobs" and "snapshot" not in during:
            # The snapshot is taken and the blob lock is held: pushes must carry on, and
            # whatever is acknowledged from now on is not in this backup.
            during["snapshot"] = len(pusher.acked)
            pusher.wait_for(during["snapshot"] + 3)
        elif event.stage == "blobs":
            time.sleep(0.002)  # a slower disk: more pushes land while blobs are copied

    try:
        manifest = backup(source.data_dir, tmp_path / "backup", progress)
        during["end"] = len(pusher.acked)
    finally:
        pusher.stop.set()
        pusher.join(30)
    assert not pusher.errors, pusher.errors
    assert during["end"] >= during["snapshot"] + 3 > len(acked_before)

    assert manifest.complete, manifest.problems
    assert manifest.blob_count == manifest.database["tables"]["blobs"]
    assert manifest.linked == manifest.blob_count, "same filesystem: blobs are hard-linked"
    assert manifest.database["uploads_dropped"] >= 1
    assert no_leftovers(tmp_path)

    result = restore(tmp_path / "backup", tmp_path / "restored")
    assert result.blob_count == manifest.blob_count and not result.problems
    restored = make_registry("restored", env=OPEN)

    assert_pulls(restored, base + acked_before)
    with client(restored) as http:
        after = pusher.acked[during["snapshot"]:]
        assert after and all(manifest_status(http, item) == 404 for item in after), \
            "pushes acknowledged after the snapshot are not in the backup"
        assert http.get(location).status_code == 404, "uploads in progress are not restored"
        # Pushes in flight while the snapshot was taken are there whole, or not at all.
        racing = [item for item in pusher.acked[len(acked_before):during["snapshot"]]
                  if manifest_status(http, item) == 200]
    assert_pulls(restored, racing)
    assert push_images(restored, 2, prefix="after"), "the restored instance takes pushes"


def test_restore_refuses_a_non_empty_data_dir_without_force(
        source: MoorageServer, base: list[Pushed], tmp_path: Path) -> None:
    backup(source.data_dir, tmp_path / "backup")
    target = tmp_path / "target"
    target.mkdir()
    (target / "precious.txt").write_text("someone's data")
    with pytest.raises(BackupError, match="not empty"):
        restore(tmp_path / "backup", target)
    assert (target / "precious.txt").read_text() == "someone's data"
    with pytest.raises(BackupError, match="must not contain"):
        restore(tmp_path / "backup", tmp_path / "backup" / "inner")

    result = restore(tmp_path / "backup", target, force=True)
    assert result.replaced and not (target / "precious.txt").exists()
    assert (target / "moorage.db").is_file() and (target / "keys").is_dir()
    assert no_leftovers(tmp_path)
    with pytest.raises(BackupError, match="already exists"):
        backup(source.data_dir, tmp_path / "backup")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not restore(tmp_path / "backup", empty).replaced, "an empty folder is fine"
    with pytest.raises(BackupError, match="no moorage.db"):
        backup(tmp_path / "nowhere", tmp_path / "x")
    with pytest.raises(BackupError, match="outside the data dir"):
        backup(source.data_dir, source.data_dir / "backups" / "x")


def test_restore_detects_corrupt_and_missing_blobs(
        source: MoorageServer, base: list[Pushed], tmp_path: Path) -> None:
    backup(source.data_dir, tmp_path / "backup")
    corrupt, missing = [list(item.image.blobs)[-1] for item in base[:2]]  # their own layers
    # Rewrite by rename, as bit rot on another disk would look: the backup's blob is a hard
    # link to the live one, which must stay intact.
    path = tmp_path / "backup" / blob_relpath(corrupt)
    damaged = bytearray(path.read_bytes())
    damaged[100] ^= 0xFF
    (path.parent / "tmp").write_bytes(bytes(damaged))
    os.replace(path.parent / "tmp", path)
    (tmp_path / "backup" / blob_relpath(missing)).unlink()

    with pytest.raises(BackupError, match="2 missing or corrupt blobs") as refused:
        restore(tmp_path / "backup", tmp_path / "restored")
    assert corrupt in str(refused.value) or missing in str(refused.value)
    assert not (tmp_path / "restored").exists()
    assert no_leftovers(tmp_path)
    assert_pulls(source, base)  # the live instance never noticed

    result = restore(tmp_path / "backup", tmp_path / "restored", partial=True)
    assert {(p.digest, p.problem) for p in result.problems} == {(corrupt, "corrupt"),
                                                                (missing, "missing")}
    assert not (tmp_path / "restored" / blob_relpath(corrupt)).exists()
    assert (tmp_path / "restored" / blob_relpath(list(base[2].image.blobs)[-1])).is_file()

    # A tampered checksum file is refused outright.
    sums = tmp_path / "backup" / "SHA256SUMS"
    sums.write_text(sums.read_text().replace("moorage.db", "moorage.db "))
    with pytest.raises(BackupError, match="altered"):
        restore(tmp_path / "backup", tmp_path / "again", partial=True)


def test_backup_reports_blobs_missing_from_the_instance(
        source: MoorageServer, base: list[Pushed], tmp_path: Path) -> None:
    """Damage in the instance itself is reported by the backup, not copied over silently.
    (Done on an offline copy of the source: backup works on a stopped instance too.)"""
    backup(source.data_dir, tmp_path / "first")
    restore(tmp_path / "first", tmp_path / "damaged")
    lost = list(base[1].image.blobs)[-1]
    (tmp_path / "damaged" / blob_relpath(lost)).unlink()

    manifest = backup(tmp_path / "damaged", tmp_path / "second")
    assert not manifest.complete
    assert [(p.digest, p.problem) for p in manifest.problems] == [(lost, "missing")]
    assert not read_manifest(tmp_path / "second").complete
    with pytest.raises(BackupError, match="1 missing or corrupt blob "):
        restore(tmp_path / "second", tmp_path / "restored")
    cli = moorage("backup", tmp_path / "third.tar", "--data-dir", tmp_path / "damaged", "--json")
    assert cli.code == 1 and "backup incomplete" in cli.stderr, cli
    assert cli.json()["problems"][0]["digest"] == lost and (tmp_path / "third.tar").is_file()


def test_gc_cannot_sweep_what_the_backup_is_copying(
        source: MoorageServer, make_registry: MakeRegistry, tmp_path: Path) -> None:
    """GC deleting an image's blobs right after the snapshot waits for the backup, so the
    backup still holds that image whole."""
    doomed, kept = push_images(source, 2, prefix="gc")
    only_doomed = [d for d in doomed.image.blobs if d not in kept.image.blobs]
    job: dict[str, object] = {}
    api = f"{source.url}/api/v1"

    def progress(event: ProgressEvent) -> None:
        if event.stage != "blobs" or job:
            return
        with client(source) as http:
            assert http.delete(f"/v2/{doomed.repo}/manifests/{doomed.image.digest}"
                               ).status_code == 202
        resp = httpx.post(f"{api}/gc", json={"grace": "0s"})
        assert resp.status_code == 202, resp.text
        job.update(resp.json())
        time.sleep(1.5)
        state = httpx.get(f"{api}/jobs/{job['id']}").json()
        assert state["status"] in ("queued", "running"), f"GC must wait for the backup: {state}"
        assert all((source.data_dir / blob_relpath(d)).exists() for d in only_doomed)

    manifest = backup(source.data_dir, tmp_path / "backup", progress)
    assert manifest.complete
    deadline = time.monotonic() + 60
    while (state := httpx.get(f"{api}/jobs/{job['id']}").json())["status"] not in (
            "succeeded", "failed"):
        assert time.monotonic() < deadline, state
        time.sleep(0.1)
    assert state["status"] == "succeeded", state
    assert set(only_doomed) <= set(state["result"]["blobs"])
    assert not any((source.data_dir / blob_relpath(d)).exists() for d in only_doomed)

    restore(tmp_path / "backup", tmp_path / "restored")
    restored = make_registry("restored", env=OPEN)
    assert_pulls(restored, [doomed, kept])


def test_cli_backup_and_restore(source: MoorageServer, base: list[Pushed],
                                make_registry: MakeRegistry, tmp_path: Path) -> None:
    archive = tmp_path / "nightly.tar.gz"
    made = moorage("backup", archive, "--data-dir", source.data_dir, "--json")
    assert made.code == 0, made
    report = made.json()
    assert report["complete"] and report["path"] == str(archive)
    assert report["blobs"]["count"] == report["database"]["tables"]["blobs"]

    folder = tmp_path / "folder-backup"
    human = moorage("backup", folder, "--data-dir", source.data_dir)
    assert human.code == 0, human
    assert f"Backup written to {folder}" in human.stdout
    assert "each verified against its digest" in human.stdout
    assert "uploads in progress" in human.stdout

    target = tmp_path / "restored"
    back = moorage("restore", archive, "--data-dir", target, "--json")
    assert back.code == 0, back
    assert back.json()["complete"] and back.json()["blobs"]["count"] == report["blobs"]["count"]

    refused = moorage("restore", folder, "--data-dir", target)
    assert refused.code == 1 and "not empty" in refused.stderr and "--force" in refused.stderr
    forced = moorage("restore", folder, "--data-dir", target, "--force")
    assert forced.code == 0, forced
    assert "previous contents were replaced" in forced.stdout
    assert "moorage serve --data-dir" in forced.stdout
    restored = make_registry("restored", env=OPEN)
    assert_pulls(restored, base)


def test_archive_and_folder_restore_alike(source: MoorageServer, base: list[Pushed], tmp_path: Path) -> None:
    """An archive restores to the same data dir a folder does (checked file by file; the CLI
    test starts a server on a restored folder)."""
    backup(source.data_dir, tmp_path / "b.tar")
    backup(source.data_dir, tmp_path / "folder")
    restore(tmp_path / "b.tar", tmp_path / "from-tar")
    restore(tmp_path / "folder", tmp_path / "from-folder")

    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
                if p.is_file() and p.name != "moorage.db"}

    assert files(tmp_path / "from-tar") == files(tmp_path / "from-folder")
    assert sorted(os.listdir(tmp_path / "from-tar")) == ["blobs", "keys", "locks",
                                                         "moorage.db", "uploads"]


def test_restore_refuses_the_data_folder_of_a_running_server(
        source: MoorageServer, base: list[Pushed], tmp_path: Path) -> None:
    """--force replaces a folder's contents: never the folder a live server is using."""
    backup(source.data_dir, tmp_path / "backup")
    with pytest.raises(BackupError, match="is already serving"):
        restore(tmp_path / "backup", source.data_dir, force=True)
    assert_pulls(source, base)
