"""Backup and restore refuse a scale-out deployment instead of backing up the wrong thing.

`moorage backup` copies an embedded instance (SQLite and blob files in a data folder). Run
with settings that point at PostgreSQL or S3, it used to back up whatever ./moorage-data held
(often nothing) and exit 0 with "0 repositories": an operator would believe the registry was
safe. Until scale-out backups exist it must refuse, say why and what to use, and write
nothing. The deployment here is real (PostgreSQL, SeaweedFS, Redis, one replica serving).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backup.helpers import OPEN, push_images
from tests.support.scaleout import ScaleOut

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaleOut]:
    deployment = ScaleOut(tmp_path_factory.mktemp("backup-scaleout"), env=OPEN).start(replicas=1)
    try:
        push_images(deployment.replicas[0], 2, prefix="scaled")
        yield deployment
    finally:
        deployment.stop()


def run(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The real command, run where an operator would: a folder with no data folder in it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    return subprocess.run([sys.executable, "-m", "moorage", *args], cwd=cwd,
                          env={**clean, "NO_COLOR": "1", **env}, capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.parametrize("which", ["both", "database_url", "storage_url"])
def test_backup_of_a_scale_out_deployment_is_refused_and_writes_nothing(
        cluster: ScaleOut, tmp_path: Path, which: str) -> None:
    env = cluster.env()
    if which == "database_url":
        env.pop("MOORAGE_STORAGE_URL")
    elif which == "storage_url":
        env.pop("MOORAGE_DATABASE_URL")
    for args in (["backup", "b"], ["backup", "b.tar.gz", "--json"]):
        done = run(tmp_path, env, *args)
        assert done.returncode != 0, done.stdout
        assert "Traceback" not in done.stderr
        named = "PostgreSQL" if which != "storage_url" else "S3"
        assert named in done.stderr and which.replace("both", "database_url") in done.stderr, \
            done.stderr
        assert "embedded" in done.stderr, done.stderr
        assert not (tmp_path / args[1]).exists()
    assert not (tmp_path / "moorage-data").exists(), "a refusal creates no instance"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_leftover_embedded_folder_is_not_backed_up_in_place_of_the_deployment(
        cluster: ScaleOut, tmp_path: Path) -> None:
    """The case that was seen: ./moorage-data holds an old embedded instance, the settings
    point at the deployment; the backup used to copy the old folder and exit 0."""
    made = run(tmp_path, {}, "migrate", "--data-dir", "moorage-data")
    assert made.returncode == 0, made.stderr
    done = run(tmp_path, cluster.env(), "backup", "b")
    assert done.returncode != 0, done.stdout
    assert "PostgreSQL" in done.stderr and "repositories" not in done.stdout, done.stderr
    assert not (tmp_path / "b").exists()


def test_restore_into_a_scale_out_deployment_is_refused(cluster: ScaleOut, tmp_path: Path) -> None:
    (tmp_path / "backup").mkdir()
    done = run(tmp_path, cluster.env(), "restore", "backup")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "PostgreSQL" in done.stderr and "database_url" in done.stderr, done.stderr
    assert not (tmp_path / "moorage-data").exists()
