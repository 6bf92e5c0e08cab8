"""A restore makes the data folder private even from a backup whose files were not.

Backups made before modes were enforced record 0644 files (and tar tools add 0755 folders);
restoring one must not bring those modes back into the data folder.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from tests.backup.helpers import OPEN, assert_pulls, push_images
from tests.support.modes import moorage_permissive, open_members, open_to_others
from tests.support.server import MoorageServer

pytestmark = pytest.mark.slow
START = 120.0  # seconds a server may take to start on a loaded machine


def _loosen(archive: Path, loose: Path) -> None:
    """The same backup as an earlier version wrote it: 0644 files, 0755 folders listed."""
    with tarfile.open(archive) as src, tarfile.open(loose, "w:gz") as dst:
        folders: set[str] = set()
        for member in src.getmembers():
            parts = member.name.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                name = "/".join(parts[:depth])
                if name not in folders:
                    folders.add(name)
                    info = tarfile.TarInfo(name)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    dst.addfile(info)
            member.mode = 0o644
            dst.addfile(member, src.extractfile(member))


def test_restore_of_a_backup_with_open_modes_gives_a_private_data_folder(
        tmp_path: Path) -> None:
    server = MoorageServer(tmp_path / "source", env=OPEN).start(timeout=START)
    try:
        images = push_images(server, 3, prefix="loose")
        made = moorage_permissive("backup", tmp_path / "b.tar", "--data-dir", server.data_dir)
        assert made.returncode == 0, made.stderr
    finally:
        server.kill()
    _loosen(tmp_path / "b.tar", tmp_path / "loose.tar.gz")
    assert open_members(tmp_path / "loose.tar.gz") != []  # the archive really is open

    target = tmp_path / "restored"
    done = moorage_permissive("restore", tmp_path / "loose.tar.gz", "--data-dir", target)
    assert done.returncode == 0, done.stderr
    assert open_to_others(target) == []

    restored = MoorageServer(target, env=OPEN).start(timeout=START)
    try:
        assert_pulls(restored, images)
    finally:
        restored.kill()
