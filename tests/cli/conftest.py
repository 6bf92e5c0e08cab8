"""Driving the real `moorage` command as a subprocess, with a config folder of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ADMIN_PASSWORD
from tests.support.server import MoorageServer
from tests.web.conftest import People, people  # noqa: F401  (shared accounts fixture)


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str


class Cli:
    """`moorage` with XDG_CONFIG_HOME pointing at a test folder, so that login, logout and
    the credentials file are exercised for real without touching the user's own."""

    def __init__(self, server: MoorageServer, config_home: Path) -> None:
        self.server = server
        self.config_home = config_home
        self.config_home.mkdir(parents=True, exist_ok=True)

    @property
    def credentials(self) -> Path:
        return self.config_home / "moorage" / "credentials.json"

    def __call__(self, *args: str, input: str | None = None,
                 env: dict[str, str] | None = None) -> Result:
        base = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
        base.update({"XDG_CONFIG_HOME": str(self.config_home), "NO_COLOR": "1"})
        base.pop("COLUMNS", None)
        proc = subprocess.run([sys.executable, "-m", "moorage", *args], input=input,
                              capture_output=True, text=True, env={**base, **(env or {})},
                              timeout=60)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *args: str, input: str | None = None,
           env: dict[str, str] | None = None) -> str:
        """Run and insist on success; the stdout."""
        result = self(*args, input=input, env=env)
        assert result.code == 0, (args, result)
        return result.stdout

    def login(self, username: str = "admin", password: str = ADMIN_PASSWORD) -> Result:
        return self("login", self.server.url, "-u", username, "--password-stdin",
                    input=password + "\n")


@pytest.fixture
def cli(secure_registry: MoorageServer, tmp_path: Path) -> Cli:
    """Not logged in."""
    return Cli(secure_registry, tmp_path / "config")


@pytest.fixture(scope="session")
def admin_cli(secure_registry: MoorageServer, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """Logged in as admin once for the session; tests that log out use `cli` instead."""
    runner = Cli(secure_registry, tmp_path_factory.mktemp("admin-config"))
    result = runner.login()
    assert result.code == 0, result
    return runner
