"""Real registries for the remote client's tests, each a process on a loopback port
stopped by PID: CNCF Distribution (Debian's `docker-registry`) open on plain http, and with
htpasswd Basic auth behind TLS signed by a CA made in the test; Moorage with token auth; and
the misbehaving registry of misbehaving.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, ROOMY, SECURED
from tests.support.certs import Authority
from tests.support.server import MoorageServer, RegistryProcess

BASIC_USER, BASIC_PASSWORD = "replicator", "s3cret-basic-pw-for-tests"
ADMIN = ("admin", ADMIN_PASSWORD)


class Distribution(RegistryProcess):
    """`docker-registry serve`: open, or with htpasswd Basic auth and TLS."""

    name = "docker-registry"
    ready_statuses = (200, 401)

    def __init__(self, data_dir: Path, htpasswd: Path | None = None,
                 tls: tuple[Path, Path] | None = None, authority: Authority | None = None) -> None:
        super().__init__(data_dir, log_name="distribution")
        self.htpasswd, self.tls = htpasswd, tls
        if tls is not None and authority is not None:
            self.scheme = "https"
            self.verify = authority.context()
        self.config_path = self.data_dir.parent / f"{self.data_dir.name}-distribution.yml"

    def command(self) -> list[str]:
        exe = shutil.which("docker-registry")
        if exe is None:
            pytest.skip("needs Debian's docker-registry (scripts/install-system-deps.sh)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        auth = tls = ""
        if self.htpasswd is not None:
            auth = f"auth:\n  htpasswd:\n    realm: remote-tests\n    path: {self.htpasswd}\n"
        if self.tls is not None:
            tls = f"  tls:\n    certificate: {self.tls[0]}\n    key: {self.tls[1]}\n"
        self.config_path.write_text(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.data_dir}\n"
            "  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n"
            f"      enabled: false\n{auth}http:\n  addr: {self.host}\n{tls}")
        return [exe, "serve", str(self.config_path)]

    def environment(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}


class Misbehaving(RegistryProcess):
    name = "misbehaving"

    def command(self) -> list[str]:
        return [sys.executable, str(Path(__file__).with_name("misbehaving.py")), str(self.port)]

    def stats(self) -> dict[str, int]:
        return httpx.get(f"{self.url}/_stats", timeout=30).json()  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return Authority.make(tmp_path_factory.mktemp("remote-ca"))


@pytest.fixture(scope="session")
def distribution(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    """Distribution with no authentication, on plain http."""
    server = Distribution(tmp_path_factory.mktemp("dist-open") / "data").start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def distribution_basic(tmp_path_factory: pytest.TempPathFactory,
                       authority: Authority) -> Iterator[Distribution]:
    """Distribution with htpasswd Basic auth, serving HTTPS with a certificate of `authority`."""
    folder = tmp_path_factory.mktemp("dist-basic")
    htpasswd = folder / "htpasswd"
    made = subprocess.run(["htpasswd", "-Bbn", BASIC_USER, BASIC_PASSWORD], capture_output=True,
                          text=True, check=True, timeout=60)
    htpasswd.write_text(made.stdout)
    cert, key, _ = authority.issue("dist", ["localhost"])
    server = Distribution(folder / "data", htpasswd, (cert, key), authority).start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def moorage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    """Moorage with token auth on (the Docker token flow) and a known administrator."""
    server = MoorageServer(tmp_path_factory.mktemp("remote-moorage") / "data",
                           env={**SECURED, **ROOMY}).start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def misbehaving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Misbehaving]:
    server = Misbehaving(tmp_path_factory.mktemp("misbehaving") / "data").start()
    yield server
    server.kill()


def token_requests(server: MoorageServer) -> int:
    """How many `/auth/token` requests Moorage answered (its own request counter)."""
    text = httpx.get(f"{server.url}/metrics", timeout=60).text
    total = 0
    for line in text.splitlines():
        if line.startswith("moorage_http_requests_total{") and 'route="/auth/token"' in line:
            total += int(float(re.split(r"\s+", line.strip())[-1]))
    return total
