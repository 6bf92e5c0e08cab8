"""A real `moorage serve` process on a free loopback port, stopped by PID.

Tests talk to Moorage the way users do: over HTTP to a separate process. This keeps the
suite honest about start-up, shutdown and crash behaviour, which an in-process app hides.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

import httpx


# free_port() hands out ports from PORTS, below the kernel's ephemeral range (32768 and up
# by default), so that no outgoing connection of any process can take a port between the
# moment a test picks it and the moment its server binds it. SeaweedFS also needs each
# port + 10000 (its gRPC port), which lands in 20000-29999 where nothing else is handed out.
# Under pytest-xdist each worker hands out its own slice of PORTS only, so two workers never
# pick the same port; servers started on a port someone else took meanwhile (another test
# run on the machine) are started again on another one (RegistryProcess.start).
PORTS = range(10000, 20000)
_cursor: int | None = None


def port_block() -> range:
    """The ports this test process may hand out: its slice of PORTS under pytest-xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    size = len(PORTS) // max(count, 1)
    return range(PORTS.start + index * size, PORTS.start + (index + 1) * size)


def _below_ephemeral() -> bool:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return low >= PORTS.stop + 10000


def bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(bindable_too: tuple[int, ...] = ()) -> int:
    """A loopback port that nothing is bound to, and that this process has not handed out
    recently (it walks its block from a random start). With `bindable_too=(10000,)`, the
    port + 10000 is free as well."""
    global _cursor
    if not _below_ephemeral():  # an unusual kernel setting: let the kernel choose
        while True:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if all(bindable(port + offset) for offset in bindable_too):
                return port
    block = port_block()
    if _cursor is None:
        _cursor = random.randrange(len(block))
    for _ in range(len(block)):
        _cursor = (_cursor + 1) % len(block)
        port = block[_cursor]
        if bindable(port) and all(bindable(port + offset) for offset in bindable_too):
            return port
    raise RuntimeError(f"no free port left in {block}")


# CPU seconds used by the server processes this test process has stopped or killed, read
# from /proc just before the signal (MOORAGE_TEST_COST_LOG's fourth column, tests/conftest.py).
# Needed because a killed server's workers are reaped by init, not by the test: their CPU
# never reaches the test's RUSAGE_CHILDREN.
servers_cpu = 0.0
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def group_cpu(group: int) -> float:
    """User and system CPU of the live processes of a process group, with what they reaped
    (the preparation child of `moorage serve`, workers already gone)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if int(fields[2]) == group:  # pgrp; then utime, stime, cutime, cstime
            total += sum(int(value) for value in fields[11:15])
    return total / _TICKS


class PortTaken(RuntimeError):
    """The server's port was bound by someone else before the server could bind it."""


class RegistryProcess:
    """A registry server process on a free loopback port: started, waited for until `/v2/`
    answers, stopped (SIGTERM) or killed (SIGKILL) by its process group, restarted.

    Subclasses say how to launch themselves (`command`, `environment`) and which `/v2/`
    statuses mean "ready"; Moorage and the CNCF Distribution peer share the rest.
    """

    name = "registry"
    ready_statuses: tuple[int, ...] = (200,)
    scheme = "http"
    verify: Any = True  # an ssl.SSLContext trusting a server that speaks HTTPS

    # What a server says when its port was taken (by another test run on the machine)
    # between free_port() and its bind: start() then tries another port.
    port_taken = ("Address already in use", "address already in use")

    def __init__(self, data_dir: Path, port: int | None = None, log_name: str = "server") -> None:
        self.data_dir = Path(data_dir)
        self.port_chosen = port is None  # by us: another one may be chosen if it is taken
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-{log_name}.log"

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, the form skopeo/podman/oras expect in image references."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def start(self, timeout: float = 180.0) -> "Self":
        for attempt in range(3):
            try:
                return self._start(timeout)
            except PortTaken:
                if attempt == 2:
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> "Self":
        # An upper bound only (a healthy server answers in about a second): on two cores
        # shared by several suites, importing the app alone took 17 s, and 30 s failed starts.
        cmd = self.command()
        self._log = open(self.log_path, "ab")
        logged_before = self._log.tell()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=self.environment(), start_new_session=True)
        deadline = time.monotonic() + timeout
        # One client for the whole wait: httpx.get() makes a client, and so an SSL context
        # loading the CA bundle, per call: ~30 ms of CPU a poll, 2-4 s a start on a loaded
        # machine, where a poll on a kept client costs 0.2 ms.
        with httpx.Client(timeout=1.0, verify=self.verify) as poller:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    self._log.close()
                    said = self.log_path.read_bytes()[logged_before:].decode(errors="replace")
                    if self.port_chosen and any(words in said for words in self.port_taken):
                        raise PortTaken(self.port)
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                                       f"{self.log()}")
                try:
                    if poller.get(f"{self.url}/v2/").status_code in self.ready_statuses:
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.name} did not answer within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, as an operator or systemd would; returns the exit code."""
        return self._signal(signal.SIGTERM, timeout)

    def kill(self) -> int | None:
        """SIGKILL the whole process group: a crash, with no chance to clean up."""
        return self._signal(signal.SIGKILL, 10.0)

    def _signal(self, sig: int, timeout: float) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        global servers_cpu
        servers_cpu += group_cpu(self.proc.pid)
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait(5)
        self._log.close()
        return code

    def restart(self) -> "Self":
        self.stop()
        return self.start()


_TEMPLATES: dict[str, Path] = {}


def migrated_database() -> Path:
    """An empty SQLite metadata database at the head revision, made once per test process
    (by the same Alembic upgrade `moorage serve` runs on a new folder) and copied into the
    new data folders of test servers (MoorageServer.start).

    Every first start of a server would otherwise run all the migrations again: ~0.4 s of
    CPU each, for some two hundred servers a run. The migrations stay tested: tests/db
    migrates SQLite and PostgreSQL and checks the result against the declared schema, and
    runs `moorage serve` on an empty folder; tests/cli/test_serve_process.py starts its
    servers on empty folders (`template=False`).
    """
    from moorage.db.metadata import open_engine, sqlite_url
    from moorage.db.migrate import head_revision, upgrade

    head = head_revision()
    found = _TEMPLATES.get(head)
    if found is not None and found.exists():
        return found
    import atexit
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="moorage-template-"))
    atexit.register(shutil.rmtree, folder, True)
    engine = open_engine(sqlite_url(folder))
    try:
        upgrade(engine)
        with engine.connect() as conn:  # everything in the main file, no -wal beside it
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()
    _TEMPLATES[head] = folder / "moorage.db"
    return _TEMPLATES[head]


# The resolver of test servers waits 1 s for an answer and asks once (glibc reads RES_OPTIONS;
# its default is 5 s, twice). Tests give servers hosts that resolve nowhere (webhooks to
# example.com, upstreams and scanners that do not exist; the machine has no internet), and the
# test machine's DNS server drops many queries: each drop held a request or a job for 5-10 s
# (tests/events/test_api.py: 41 -> 21 s). A name without an answer fails as one that does not
# exist, as before; names in /etc/hosts never ask DNS. A test's own env may set it otherwise.
RESOLVER = {"RES_OPTIONS": "timeout:1 attempts:1"}


class MoorageServer(RegistryProcess):
    """One Moorage instance with its own data folder; can be stopped, killed and restarted.

    A server whose data folder does not exist yet, on SQLite, starts on a copy of an already
    migrated, empty database (migrated_database); `template=False` for a start on an empty
    folder, as a new installation's.
    """

    name = "moorage"
    ready_statuses = (200, 401)

    def __init__(self, data_dir: Path, port: int | None = None, extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None, template: bool = True) -> None:
        super().__init__(data_dir, port)
        self.extra_args = list(extra_args or [])
        self.env = dict(env or {})
        self.template = template

    def start(self, timeout: float = 180.0) -> "Self":
        if self.template and not self.data_dir.exists() and self._on_sqlite():
            self.data_dir.mkdir(mode=0o700, parents=True)
            target = self.data_dir / "moorage.db"
            shutil.copyfile(migrated_database(), target)
            target.chmod(0o600)
        return super().start(timeout)

    def _on_sqlite(self) -> bool:
        """No database URL given (the embedded SQLite database in the data folder)."""
        env = self.environment()
        if env.get("MOORAGE_DATABASE_URL") or env.get("MOORAGE_CONFIG"):
            return False
        return not any(arg in ("--database-url", "--config") or
                       arg.startswith(("--database-url=", "--config=")) for arg in self.extra_args)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "moorage", "serve", "--listen", self.host,
                "--data-dir", str(self.data_dir), *self.extra_args]

    def environment(self) -> dict[str, str]:
        return {**RESOLVER, **os.environ, **self.env}
