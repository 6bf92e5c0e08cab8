"""Commands that work on a data folder directly (`keys`, `worker`), through the real command:
read-only means read-only, none makes an instance where there is none, and every one
says which data folder it acted on.

`keys status` once made a whole instance (database, signing key, even a master key) in the
current folder when run without --data-dir; a status command must never create anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backup.helpers import OPEN, push_images
from tests.support.server import MoorageServer

ENCRYPTED = {**OPEN, "MOORAGE_ENCRYPTION": "true"}


def moorage(*args: str, cwd: Path, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    """The real command, in `cwd`, with no MOORAGE_* variables but the test's own."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    base.update({"NO_COLOR": "1", **(env or {})})
    return subprocess.run([sys.executable, "-m", "moorage", *args], cwd=cwd, env=base,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The data folder of a real encrypted instance with a few blobs, its server stopped."""
    data = tmp_path_factory.mktemp("keys") / "data"
    server = MoorageServer(data, env=ENCRYPTED).start(timeout=120)
    try:
        push_images(server, 2, size=5_000)
    finally:
        server.stop()
    yield data


@pytest.mark.parametrize("env", [{}, {"MOORAGE_ENCRYPTION": "true"}],
                         ids=["encryption-off", "encryption-on"])
def test_keys_status_creates_nothing_where_there_is_no_instance(
        tmp_path: Path, env: dict[str, str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = moorage("keys", "status", cwd=empty, env=env)
    assert result.returncode == 1, result
    assert result.stdout == ""
    default = empty / "moorage-data"
    assert result.stderr == (f"moorage: no Moorage instance in {default} (no moorage.db): give "
                             f"the instance's folder with --data-dir\n")
    assert list(empty.iterdir()) == []

    named = tmp_path / "nothing-here"
    result = moorage("keys", "status", "--data-dir", str(named), "--json", cwd=empty, env=env)
    assert result.returncode == 1
    assert str(named) in json.loads(result.stderr)["error"]
    assert not named.exists() and list(empty.iterdir()) == []


def test_keys_status_reads_without_writing_and_names_the_folder(encrypted: Path,
                                                                 tmp_path: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in encrypted.rglob("*")}
    result = moorage("keys", "status", "--data-dir", str(encrypted), cwd=tmp_path,
                     env=ENCRYPTED)
    assert result.returncode == 0, result
    assert result.stderr == f"moorage: data folder: {encrypted}\n"
    shown = json.loads(moorage("keys", "status", "--data-dir", str(encrypted), "--json",
                               cwd=tmp_path, env=ENCRYPTED).stdout)
    assert shown["data_dir"] == str(encrypted) and shown["plaintext_blobs"] == 0
    (key,) = shown["keys"]
    assert key["active"] is True and key["blobs"] >= 4  # 2 images: 3 layers, 2 configs
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["KEY", "ACTIVE", "BLOBS"]
    assert lines[1].split() == [key["key"], "yes", str(key["blobs"])]
    assert {p: p.stat().st_mtime_ns for p in encrypted.rglob("*")} == before
    assert list(tmp_path.iterdir()) == []

    # Encryption off for this command: said plainly, and still nothing written.
    off = moorage("keys", "status", "--data-dir", str(encrypted), cwd=tmp_path, env=OPEN)
    assert off.returncode == 1
    assert "encryption is off" in off.stderr
    assert {p: p.stat().st_mtime_ns for p in encrypted.rglob("*")} == before


def test_keys_rotate_and_rewrap_print_tables_and_json(encrypted: Path, tmp_path: Path) -> None:
    blobs = json.loads(moorage("keys", "status", "--data-dir", str(encrypted), "--json",
                               cwd=tmp_path, env=ENCRYPTED).stdout)["keys"][0]["blobs"]
    rotated = moorage("keys", "rotate", "--data-dir", str(encrypted), "--json", cwd=tmp_path,
                      env=ENCRYPTED)
    assert rotated.returncode == 0, rotated
    new_key = json.loads(rotated.stdout)["active"]
    assert json.loads(rotated.stdout)["data_dir"] == str(encrypted)

    rewrapped = moorage("keys", "rewrap", "--data-dir", str(encrypted), cwd=tmp_path,
                        env=ENCRYPTED)
    assert rewrapped.returncode == 0, rewrapped
    assert rewrapped.stderr == f"moorage: data folder: {encrypted}\n"
    assert "{" not in rewrapped.stdout and "'" not in rewrapped.stdout  # no Python dict
    table = {line.split()[0]: line.split()[1:] for line in rewrapped.stdout.splitlines()[1:]
             if line.strip()}
    assert rewrapped.stdout.splitlines()[0].split() == ["RESULT", "BLOBS"], rewrapped.stdout
    assert table["examined"] == [str(blobs)] and table["rewrapped"] == [str(blobs)]
    assert table["failed"] == ["0"] and table["missing"] == ["0"]

    again = json.loads(moorage("keys", "rewrap", "--data-dir", str(encrypted), "--json",
                               cwd=tmp_path, env=ENCRYPTED).stdout)
    assert again["current"] == blobs and again["rewrapped"] == 0
    status = json.loads(moorage("keys", "status", "--data-dir", str(encrypted), "--json",
                                cwd=tmp_path, env=ENCRYPTED).stdout)
    assert {k["key"]: k["blobs"] for k in status["keys"]}[new_key] == blobs


def test_worker_creates_no_instance_and_names_its_folder(encrypted: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = moorage("worker", "--once", cwd=empty)
    assert refused.returncode == 1, refused
    assert refused.stderr == (f"moorage: no Moorage instance in {empty / 'moorage-data'} (no "
                              f"moorage.db): give the instance's folder with --data-dir\n")
    assert list(empty.iterdir()) == []
    ran = moorage("worker", "--once", "--data-dir", str(encrypted), cwd=empty, env=ENCRYPTED)
    assert ran.returncode == 0, ran
    assert ran.stderr.startswith(f"moorage: data folder: {encrypted}\n"), ran.stderr
