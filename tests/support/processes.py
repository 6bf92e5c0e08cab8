"""What the kernel says about processes and listening sockets (Linux `/proc`).

Process-lifecycle tests need facts a server's own answers cannot give: which processes are
still running (a zombie is not: it holds no socket, no file, no lock), which are the children
of a given process, and which processes hold a listening socket on a port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

_PROC = Path("/proc")
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent PID) of a process, or None once it is gone."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2:].split()  # the name may hold spaces and parentheses
    return fields[0], int(fields[1])


def is_running(pid: int) -> bool:
    """True while the process exists and has not exited (zombies have exited)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def children(pid: int) -> list[int]:
    """The running processes whose parent is `pid`."""
    found = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[1] == pid and stat[0] not in ("Z", "X"):
                found.append(int(entry.name))
    return sorted(found)


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (_PROC / "net" / table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def listeners(port: int) -> set[int]:
    """PIDs of the processes holding a listening TCP socket on `port`."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    pids = set()
    if not wanted:
        return pids
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in wanted:
                    pids.add(int(entry.name))
                    break
            except OSError:
                continue
    return pids


def wait_until(predicate: Callable[[], bool], bound: float = 60.0, step: float = 0.05) -> bool:
    """Poll `predicate` until it holds or `bound` seconds pass; its last value.

    The bound only keeps a broken build from hanging the run; callers assert on the state
    itself, never on how long it took.
    """
    deadline = time.monotonic() + bound
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return predicate()
        time.sleep(step)


def stop_group(proc: subprocess.Popen[bytes] | subprocess.Popen[str] | None,
               grace: float = 15.0) -> None:
    """End a server started in a process group of its own (`start_new_session=True`):
    SIGTERM to the group, SIGKILL to it if the server is still there after `grace` seconds."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
