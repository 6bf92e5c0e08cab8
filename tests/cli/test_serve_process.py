"""The processes of `moorage serve`: workers die with their main process, and a new `serve`
never shares a port or a data folder with a generation that is still alive.

The OOM killer sends SIGKILL to one process, the biggest, not to the group: the granian main
process can die alone. Its workers must not keep answering on the port beside whatever a
supervisor starts next (granian binds with SO_REUSEPORT, so both would be served).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import OPEN
from tests.support.processes import children, is_running, listeners, wait_until
from tests.support.server import MoorageServer, free_port

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")]

# Seconds a server may take to start on a loaded machine, and a broken build may take before
# a test gives up waiting: bounds against hanging, never margins that an assertion relies on.
BOUND = 120.0


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return True
    except OSError:
        return False


def _listening_workers(server: MoorageServer, count: int) -> list[int]:
    """The main process's children once `count` of them listen on the port: the workers
    are then past start-up and serving, which is the state the OOM killer finds them in."""
    assert server.proc is not None
    main = server.proc.pid

    def ready() -> bool:
        return len(set(children(main)) & listeners(server.port)) >= count

    assert wait_until(ready, BOUND), (children(main), listeners(server.port), server.log())
    return sorted(set(children(main)) & listeners(server.port))


@pytest.fixture
def orphans() -> Iterator[list[int]]:
    """PIDs a test expects to be gone; any still running afterwards are killed, so that a
    failing run does not leave servers behind on the machine."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if is_running(pid):
            os.kill(pid, signal.SIGKILL)


class Serve:
    """A second `moorage serve`, expected to refuse: started, waited for (bounded), and
    killed with its group if it started serving instead."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moorage", "serve", "--listen", f"127.0.0.1:{port}",
             "--data-dir", str(data_dir), "--workers", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, **OPEN}, start_new_session=True)

    def outcome(self) -> tuple[int | None, str]:
        try:
            output, _ = self.proc.communicate(timeout=BOUND)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            output, _ = self.proc.communicate()
            return None, output
        return self.proc.returncode, output


def test_workers_exit_when_the_main_process_is_killed_alone(
        tmp_path: Path, orphans: list[int]) -> None:
    server = MoorageServer(tmp_path / "data", extra_args=["--workers", "2"], env=OPEN,
                           template=False)
    server.start(timeout=BOUND)
    try:
        workers = _listening_workers(server, 2)
        orphans.extend(workers)
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGKILL)  # the main process only, as the OOM killer does
        server.proc.wait()

        wait_until(lambda: not any(is_running(pid) for pid in workers), BOUND)
        assert [pid for pid in workers if is_running(pid)] == []
        assert listeners(server.port) == set()
        assert not _answers(server.port)

        # What a supervisor does next: start again on the same port and data folder.
        server.start(timeout=BOUND)
        assert _answers(server.port)
    finally:
        server.kill()


def test_workers_still_starting_exit_when_the_main_process_is_killed(
        tmp_path: Path, orphans: list[int]) -> None:
    """Killed right after it forked its workers, while they still import and build the app:
    they must not go on to serve."""
    server = MoorageServer(tmp_path / "data", extra_args=["--workers", "2"], env=OPEN,
                           template=False)
    with open(server.log_path, "ab") as log:
        proc = subprocess.Popen(server.command(), stdout=log, stderr=subprocess.STDOUT,
                                env=server.environment(), start_new_session=True)
    try:
        spawned = re.compile(r"Spawning worker-\d+ with PID: (\d+)")
        assert wait_until(lambda: len(spawned.findall(server.log())) == 2, BOUND), server.log()
        workers = [int(pid) for pid in spawned.findall(server.log())]
        orphans.extend(workers)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

        wait_until(lambda: not any(is_running(pid) for pid in workers), BOUND)
        assert [pid for pid in workers if is_running(pid)] == [], server.log()
        assert listeners(server.port) == set()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_a_second_serve_on_the_same_data_folder_refuses_to_start(tmp_path: Path) -> None:
    first = MoorageServer(tmp_path / "data", extra_args=["--workers", "2"], env=OPEN,
                           template=False)
    first.start(timeout=BOUND)
    try:
        code, output = Serve(first.data_dir, free_port()).outcome()
        assert code is not None, f"the second serve started beside the first:\n{output}"
        assert code == 1, output
        assert "is already serving" in output, output
        assert str(first.proc.pid if first.proc else "") in output, output
        assert str(first.data_dir) in output, output
        assert "Starting granian" not in output, output
        assert _answers(first.port)
    finally:
        first.kill()


def test_a_second_serve_on_a_port_in_use_refuses_to_start(tmp_path: Path) -> None:
    first = MoorageServer(tmp_path / "one", extra_args=["--workers", "2"], env=OPEN)
    first.start(timeout=BOUND)
    try:
        _listening_workers(first, 2)
        code, output = Serve(tmp_path / "two", first.port).outcome()
        assert code is not None, f"the second serve shared the port with the first:\n{output}"
        assert code == 1, output
        assert f"127.0.0.1:{first.port} is in use" in output, output
        assert "Starting granian" not in output, output
        assert listeners(first.port) <= set(children(first.proc.pid if first.proc else 0))
    finally:
        first.kill()


def test_a_process_left_holding_the_data_folder_is_named(tmp_path: Path) -> None:
    """A process of an earlier generation (its main process gone) that still holds the data
    folder: the new serve waits for it a bounded while, then refuses and names it."""
    data = tmp_path / "data"
    MoorageServer(data, env=OPEN).start(timeout=BOUND).stop()  # a real instance, cleanly stopped
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time\n"
         "fd = os.open(sys.argv[1], os.O_RDWR)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\n"
         "print('held', flush=True)\n"
         "time.sleep(600)\n", str(data / "serve.lock")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        code, output = Serve(data, free_port()).outcome()
        assert code == 1, output
        assert "still hold" in output, output
        assert str(holder.pid) in output, output
        assert "Starting granian" not in output, output
    finally:
        holder.kill()
        holder.wait()
