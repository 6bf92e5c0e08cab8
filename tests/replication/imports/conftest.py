"""Real servers for the import tests, each on a loopback port, stopped by PID: Debian's
Distribution with htpasswd Basic auth behind TLS as the source (the replication tests'
own kind of fixture), holding 200 small distinct images; Moorage instances that import; and
the Harbor API stand-in (tests/support/harbor_api.py) in front of the same Distribution.

The 200 images are pushed once per test run (through the registry client, into a
Distribution of their own; ~30 s and ~17 s of CPU on a loaded machine), and each module's
Distribution serves a copy of that storage folder: no module sees another's, and an import
only reads its source."""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.remote.conftest import Distribution
from tests.replication.imports.helpers import Seeded, seed
from tests.replication.rules.conftest import BASIC_PASSWORD, BASIC_USER, authority, moorage
from tests.support.certs import Authority
from tests.support.server import MoorageServer, RegistryProcess

__all__ = ["authority"]  # the replication tests' fixture, used here


def _distribution(folder: Path, authority: Authority) -> Distribution:
    """Distribution with htpasswd Basic auth, serving HTTPS with a certificate of `authority`
    from `folder / "data"` (not started)."""
    htpasswd = folder / "htpasswd"
    made = subprocess.run(["htpasswd", "-Bbn", BASIC_USER, BASIC_PASSWORD],
                          capture_output=True, text=True, check=True, timeout=60)
    htpasswd.write_text(made.stdout)
    cert, key, _ = authority.issue("dist", ["localhost"])
    return Distribution(folder / "data", htpasswd, (cert, key), authority)


def _seeded_storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding `data/` (a seeded Distribution's storage) and `seeded.json`, made
    by the first test process of this run that asks (the others wait on the lock)."""
    base = tmp_path_factory.getbasetemp()
    # under xdist, the parent of a worker's folder is common to the run's workers only
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = shared / "imports-source"
    with open(shared / "imports-source.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "seeded.json").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            ca = Authority.make(folder / "ca")
            source = _distribution(folder, ca).start()
            try:
                content = asyncio.run(seed(source, str(ca.ca_file)))
            finally:
                source.kill()
            written = folder / f"seeded.json.{os.getpid()}"
            written.write_text(json.dumps(dataclasses.asdict(content)))
            written.rename(folder / "seeded.json")
    return folder


@pytest.fixture(scope="session")
def seeded_storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _seeded_storage(tmp_path_factory)


@pytest.fixture(scope="module")
def distribution(tmp_path_factory: pytest.TempPathFactory, authority: Authority,
                 seeded_storage: Path) -> Iterator[Distribution]:
    """This module's source: a Distribution on its own copy of the seeded storage."""
    folder = tmp_path_factory.mktemp("repl-dist")
    shutil.copytree(seeded_storage / "data", folder / "data", symlinks=True)
    server = _distribution(folder, authority).start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def seeded(distribution: Distribution, seeded_storage: Path) -> Seeded:
    """The source's content: 200 repositories in three namespaces, one tag each."""
    content = json.loads((seeded_storage / "seeded.json").read_text())
    return Seeded(images={k: tuple(v) for k, v in content["images"].items()},
                  sizes=content["sizes"])


@pytest.fixture(scope="module")
def importer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    server = moorage(tmp_path_factory.mktemp("import-into"))
    yield server
    server.kill()


class HarborApi(RegistryProcess):
    name = "harbor-api"
    ready_statuses = (401,)  # /v2/ forwarded to the Distribution, which asks for Basic

    def __init__(self, data_dir: Path, upstream: Distribution, ca_file: str) -> None:
        super().__init__(data_dir, log_name="harbor-api")
        self.upstream, self.ca_file = upstream, ca_file
        self.record = self.data_dir.parent / f"{self.data_dir.name}-requests.jsonl"

    def command(self) -> list[str]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return [sys.executable, "-m", "tests.support.harbor_api", "--port", str(self.port),
                "--upstream", self.upstream.url, "--ca", self.ca_file, "--user", BASIC_USER,
                "--password", BASIC_PASSWORD, "--record", str(self.record)]

    def requests(self) -> list[dict[str, str]]:
        import json
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]


@pytest.fixture(scope="module")
def harbor(tmp_path_factory: pytest.TempPathFactory, distribution: Distribution,
           authority, seeded: Seeded) -> Iterator[HarborApi]:  # type: ignore[no-untyped-def]
    server = HarborApi(tmp_path_factory.mktemp("harbor") / "data", distribution,
                       str(authority.ca_file)).start()
    yield server
    server.kill()
