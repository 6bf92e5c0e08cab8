"""The data folder's modes on their own (the end-to-end case runs a real `moorage serve`:
tests/cli/test_data_modes.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from moorage.store.datadir import private_dirs, tighten
from tests.support.modes import mode_of, open_to_others


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_private_dirs_makes_every_level_it_creates_private(
        tmp_path: Path, permissive_umask: None) -> None:
    private_dirs(tmp_path / "data" / "blobs" / "sha256" / "ab")
    assert open_to_others(tmp_path / "data") == []


def test_tighten_takes_group_and_other_access_off_the_top_and_the_keys(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "keys").mkdir(parents=True)
    (data / "blobs" / "sha256").mkdir(parents=True)
    for path in (data / "moorage.db", data / "keys" / "master.keys"):
        path.write_text("secret")
        path.chmod(0o644)
    for path in (data, data / "keys", data / "blobs", data / "blobs" / "sha256"):
        path.chmod(0o755)
    changed = tighten(data)
    assert sorted(changed) == sorted(str(p) for p in (
        data, data / "keys", data / "blobs", data / "moorage.db", data / "keys" / "master.keys"))
    assert mode_of(data) == 0o700 and mode_of(data / "moorage.db") == 0o600
    assert mode_of(data / "blobs" / "sha256") == 0o755  # not walked: unreachable behind data/
    assert tighten(data) == []
