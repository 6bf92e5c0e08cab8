"""The data folder and the backups are private to the user the server runs as.

`moorage.db` holds password hashes, webhook secrets and the audit log; `keys/` the token
signing key and the encryption master keys; a backup holds all of them. Nothing Moorage
writes may be readable by other local users, whatever umask it was started with.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.backup.helpers import OPEN, push_images
from tests.support.modes import (PermissiveServer, mode_of, moorage_permissive, open_members,
                                 open_to_others)

pytestmark = pytest.mark.slow
START = 120.0  # seconds a server may take to start on a loaded machine


def _start_an_upload(server: PermissiveServer) -> None:
    """An upload left in progress, so that the staging area holds a file too."""
    with httpx.Client(base_url=server.url, timeout=60) as http:
        location = http.post("/v2/modes/staged/blobs/uploads/").headers["location"]
        chunk = os.urandom(10_000)
        assert http.patch(location, content=chunk, headers={
            "Content-Range": f"0-{len(chunk) - 1}",
            "Content-Type": "application/octet-stream"}).status_code == 202


@pytest.mark.parametrize("encryption", [False, True], ids=["plain", "encrypted"])
def test_everything_in_the_data_folder_and_its_backups_is_private(
        tmp_path: Path, encryption: bool) -> None:
    env = {**OPEN, "MOORAGE_ENCRYPTION": "true" if encryption else "false"}
    data = tmp_path / "data"
    server = PermissiveServer(data, extra_args=["--workers", "2"], env=env)
    server.start(timeout=START)
    try:
        push_images(server, 4, prefix="modes")
        _start_an_upload(server)
        expected = ["moorage.db", "moorage.db-wal", "moorage.db-shm", "blobs/sha256",
                    "keys/token-signing-es256.pem", "locks", "serve.lock"]
        if encryption:
            expected.append("keys/master.keys")
        for name in expected:
            assert (data / name).exists(), name
        assert any((data / "uploads").iterdir())
        assert mode_of(data) == 0o700
        assert open_to_others(data) == []
        if encryption:
            return  # backups copy blobs verified against their digests: plaintext ones only

        folder, tar, tgz = tmp_path / "out" / "folder", tmp_path / "b.tar", tmp_path / "b.tar.gz"
        for dest in (folder, tar, tgz):
            made = moorage_permissive("backup", dest, "--data-dir", data, "--json")
            assert made.returncode == 0, made.stderr
        assert mode_of(tmp_path / "out") == 0o700  # the folder the backup created for itself
        assert open_to_others(folder) == []
        for archive in (tar, tgz):
            assert mode_of(archive) == 0o600
            assert open_members(archive) == []
    finally:
        server.kill()

    for backup, name in ((tgz, "from-tgz"), (folder, "from-folder")):
        restored = tmp_path / name
        done = moorage_permissive("restore", backup, "--data-dir", restored, "--json")
        assert done.returncode == 0, done.stderr
        assert (restored / "moorage.db").is_file()
        assert open_to_others(restored) == []


def test_a_data_folder_left_open_by_an_earlier_version_is_tightened_on_start(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = PermissiveServer(data, env=OPEN).start(timeout=START)
    push_images(server, 1, prefix="old")
    server.stop()
    # What a data folder made before this fix looks like under umask 022.
    for path in [data, *data.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)

    server.start(timeout=START)
    try:
        assert mode_of(data) == 0o700  # no other user can reach anything below it now
        top = [data / p.name for p in data.iterdir()] + list((data / "keys").rglob("*"))
        assert [f"{p} {mode_of(p):04o}" for p in top if mode_of(p) & 0o077] == []
        assert "tightened" in server.log()
    finally:
        server.kill()
