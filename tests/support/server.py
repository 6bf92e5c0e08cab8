"""A real `moorage serve` process on a free loopback port, stopped by PID.

Tests talk to Moorage the way users do: over HTTP to a separate process. This keeps the
suite honest about start-up, shutdown and crash behaviour, which an in-process app hides.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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

    def __init__(self, data_dir: Path, port: int | None = None, log_name: str = "server") -> None:
        self.data_dir = Path(data_dir)
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
        # An upper bound only (a healthy server answers in about a second): on two cores
        # shared by several suites, importing the app alone took 17 s, and 30 s failed starts.
        cmd = self.command()
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=self.environment(), start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/v2/", timeout=1.0,
                             verify=self.verify).status_code in self.ready_statuses:
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


class MoorageServer(RegistryProcess):
    """One Moorage instance with its own data folder; can be stopped, killed and restarted."""

    name = "moorage"
    ready_statuses = (200, 401)

    def __init__(self, data_dir: Path, port: int | None = None, extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        super().__init__(data_dir, port)
        self.extra_args = list(extra_args or [])
        self.env = dict(env or {})

    def command(self) -> list[str]:
        return [sys.executable, "-m", "moorage", "serve", "--listen", self.host,
                "--data-dir", str(self.data_dir), *self.extra_args]

    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.env}
