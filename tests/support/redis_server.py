"""A throwaway Redis server on a free loopback port (Debian's redis-server), stopped by PID."""

from __future__ import annotations

import copy
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.server import free_port


class RedisServer:
    def __init__(self, databases: int = 16) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="moorage-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.databases = databases
        self.db = 0  # the database number url() names
        self.shared = False  # a view of a server others use (see view())
        self.restarting = False  # started before: start() comes back on the same port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{self.db}"

    def view(self, db: int) -> "RedisServer":
        """This server as seen by one deployment: url() names database `db`; stop() leaves
        the server running, and kill() and start() refuse (an outage would hit others too)."""
        view = copy.copy(self)
        view.db = db
        view.shared = True
        return view

    def _own(self) -> None:
        if self.shared:
            raise RuntimeError("a shared Redis cannot be stopped or restarted by one of its "
                               "users: give the test a server of its own")

    def start(self) -> "RedisServer":
        self._own()
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server not found: apt-get install redis-server")
        for attempt in range(3):
            if self._start(exe):
                self.restarting = True
                return self
            if attempt < 2 and not self.restarting:  # its port was taken: another one
                self.port = free_port()
        raise RuntimeError("redis-server did not start")

    def _start(self, exe: str) -> bool:
        self.proc = subprocess.Popen(
            [exe, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.dir),
             "--databases", str(self.databases)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        import redis

        deadline = time.monotonic() + 60  # bounds a hang only
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                return False
            try:
                if redis.Redis(host="127.0.0.1", port=self.port).ping():
                    return True
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not answer")

    def kill(self) -> None:
        """Kill the server by PID but keep its port and folder: start() brings it back there
        (an outage, for the tests of degraded modes)."""
        self._own()
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None

    def stop(self) -> None:
        if self.shared:
            return
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)
