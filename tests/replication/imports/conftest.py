"""Real servers for the import tests, each on a loopback port, stopped by PID: Debian's
Distribution with htpasswd Basic auth behind TLS as the source (the replication tests' own
fixture), seeded once with 200 small distinct images; Moorage instances that import; and
the Harbor API stand-in (tests/support/harbor_api.py) in front of the same Distribution."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.remote.conftest import Distribution
from tests.replication.imports.helpers import Seeded, seed
from tests.replication.rules.conftest import (BASIC_PASSWORD, BASIC_USER, authority,
                                              distribution, moorage)
from tests.support.server import MoorageServer, RegistryProcess

__all__ = ["authority", "distribution"]  # the replication tests' fixtures, used here


@pytest.fixture(scope="module")
def seeded(distribution: Distribution, authority) -> Seeded:  # type: ignore[no-untyped-def]
    """The source's content: 200 repositories in three namespaces, one tag each."""
    return asyncio.run(seed(distribution, str(authority.ca_file)))


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
