"""A throwaway PostgreSQL cluster on a free loopback port (Debian's postgresql package).

The cluster runs as the `postgres` user (initdb refuses root), lives in its own temporary
folder, and is stopped by pg_ctl (falling back to its PID) when the test session ends.
"""

from __future__ import annotations

import copy
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.server import free_port


def _bin(name: str) -> str:
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} not found: apt-get install postgresql")
    return found


class PostgresCluster:
    def __init__(self, max_connections: int = 200) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="moorage-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.max_connections = max_connections
        self.database = "moorage"  # what url() names by default
        self.shared = False  # a view of a cluster others use: stop() leaves it running
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *cmd: str) -> None:
        done = subprocess.run([*self._as_postgres, *cmd], capture_output=True, text=True,
                              timeout=660)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr[-2000:]}")

    def start(self) -> "PostgresCluster":
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync")
        for attempt in range(3):
            try:
                self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
                          "-w", "-t", "600",
                          "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
                                f"-c fsync=off -c max_connections={self.max_connections}",
                          "start")
                break
            except RuntimeError:
                # the port was taken between free_port() and the bind: another one
                log = (self.root / "log").read_text(errors="replace")
                if attempt == 2 or "already in use" not in log:
                    raise
                (self.root / "log").unlink()
                self.port = free_port()
        self.create_database("moorage")
        return self

    def view(self, database: str) -> "PostgresCluster":
        """This cluster as seen by one deployment: url() names `database` (which the caller
        creates), and stop() leaves the cluster running for the others."""
        view = copy.copy(self)
        view.database = database
        view.shared = True
        return view

    def create_database(self, name: str, template: str | None = None) -> str:
        """CREATE DATABASE `name` (a copy of `template` if given: a migrated schema without
        running the migrations again); returns its URL."""
        statement = f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else "")
        deadline = time.monotonic() + 20
        while True:
            done = subprocess.run([_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                                   "postgres", "-c", statement],
                                  capture_output=True, text=True, timeout=30)
            if done.returncode == 0 or "already exists" in done.stderr:
                return self.url(name)
            if time.monotonic() > deadline:
                raise RuntimeError(done.stderr)
            time.sleep(0.2)

    def url(self, database: str | None = None) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database or self.database}"

    def pause(self) -> None:
        """Stop the server but keep its data and port: resume() brings it back (an outage)."""
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def resume(self) -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-w",
                  "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
                        f"-c fsync=off -c max_connections=200", "start")

    def stop(self) -> None:
        if self.shared:
            return
        try:
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except (RuntimeError, subprocess.TimeoutExpired):
            pid_file = self.data / "postmaster.pid"
            if pid_file.exists():
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)
