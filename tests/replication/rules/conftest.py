"""Real servers for the replication rule tests, each on a loopback port, stopped by PID: the
replicating Moorage (`primary`), a second Moorage with token auth (`peer`), Debian's
Distribution with htpasswd Basic auth behind TLS, and the misbehaving registry. The
Distribution and misbehaving processes are the remote client tests' own (tests/remote)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import ROOMY, SECURED
from tests.remote.conftest import Distribution, Misbehaving
from tests.support.certs import Authority
from tests.support.server import MoorageServer

BASIC_USER, BASIC_PASSWORD = "replicator", "basic-pw-never-logged-4417"
# short enough that a test of a stuck upstream ends soon, long enough for a loaded machine
REPLICATION = {"MOORAGE_REPLICATION_STEP_TIMEOUT": "20", "MOORAGE_REPLICATION_ATTEMPTS": "2",
               "MOORAGE_REPLICATION_JOB_TIMEOUT": "600"}


def moorage(folder, **env: str) -> MoorageServer:  # type: ignore[no-untyped-def]
    return MoorageServer(folder / "data", env={**SECURED, **ROOMY, **REPLICATION,
                                               **env}).start()


@pytest.fixture(scope="module")
def primary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    server = moorage(tmp_path_factory.mktemp("repl-primary"))
    yield server
    server.kill()


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    server = moorage(tmp_path_factory.mktemp("repl-peer"))
    yield server
    server.kill()


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return Authority.make(tmp_path_factory.mktemp("repl-ca"))


@pytest.fixture(scope="module")
def distribution(tmp_path_factory: pytest.TempPathFactory,
                 authority: Authority) -> Iterator[Distribution]:
    """Distribution with htpasswd Basic auth, serving HTTPS with a certificate of `authority`."""
    folder = tmp_path_factory.mktemp("repl-dist")
    htpasswd = folder / "htpasswd"
    made = subprocess.run(["htpasswd", "-Bbn", BASIC_USER, BASIC_PASSWORD],
                          capture_output=True, text=True, check=True, timeout=60)
    htpasswd.write_text(made.stdout)
    cert, key, _ = authority.issue("dist", ["localhost"])
    server = Distribution(folder / "data", htpasswd, (cert, key), authority).start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def misbehaving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Misbehaving]:
    server = Misbehaving(tmp_path_factory.mktemp("repl-misbehaving") / "data").start()
    yield server
    server.kill()
