"""The data folder's modes and its one-server lock, on their own (the end-to-end cases run a
real `moorage serve`: tests/cli/test_data_modes.py and tests/cli/test_serve_process.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from moorage.store.datadir import LOCK_NAME, DataDirBusy, ServeLock, private_dirs, tighten
from tests.support.modes import mode_of, open_to_others


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


class FakeClock:
    """Time that passes only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept = 0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += 1


def _hold(path: Path) -> subprocess.Popen[str]:
    """Another process holding the lock on `path`, as a leftover worker would."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time\n"
         "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\n"
         "print('held', flush=True)\n"
         "time.sleep(600)\n", str(path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


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


def test_a_live_holder_is_refused_at_once(tmp_path: Path) -> None:
    first = ServeLock(tmp_path)
    first.acquire("serve", "127.0.0.1:5000")
    clock = FakeClock()
    try:
        with pytest.raises(DataDirBusy, match=rf"PID {os.getpid()}, on 127.0.0.1:5000"):
            ServeLock(tmp_path, clock=clock, sleep=clock.sleep).acquire("serve", "x:1")
    finally:
        first.release()
    assert clock.slept == 0
    second = ServeLock(tmp_path)
    second.acquire("serve", "127.0.0.1:5001")  # free once released
    second.release()


def test_leftovers_of_a_dead_generation_get_a_grace_period_then_are_named(
        tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    (tmp_path / LOCK_NAME).write_text(f"{gone.stdout.strip()} serve 127.0.0.1:5000\n")
    holder = _hold(tmp_path / LOCK_NAME)
    clock, notices = FakeClock(), []
    try:
        with pytest.raises(DataDirBusy) as refused:
            ServeLock(tmp_path, clock=clock, sleep=clock.sleep).acquire(
                "serve", "127.0.0.1:5000", grace=10, notice=notices.append)
    finally:
        holder.kill()
        holder.wait()
    assert clock.now >= 10 and len(notices) == 1
    assert f"PID {gone.stdout.strip()}, gone" in str(refused.value)
    assert f"PIDs {holder.pid}" in str(refused.value)
    # The holder is gone now: the lock is free and records its new owner.
    lock = ServeLock(tmp_path)
    lock.acquire("serve", "127.0.0.1:5000")
    assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()} serve 127.0.0.1:5000\n"
    lock.release()
