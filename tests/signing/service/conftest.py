"""Real Moorage servers (the advanced edition: signing on) for the signing service tests:
one with encryption at rest (a master key: server-held keys are sealed) and two workers, one
without (server-held keys refused); the `moorage` command run as a subprocess."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.tools import require_tool
from tests.conftest import ROOMY, SECURED
from tests.signing.service.helpers import Cli
from tests.support.server import MoorageServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    require_tool("skopeo")
    folder = tmp_path_factory.mktemp("signing")
    # the trusted root of keyless signatures: written by the test that needs it (the server
    # reads the file when it changes)
    started = MoorageServer(folder / "data", extra_args=["--workers", "2"],
                            env={**SECURED, **ROOMY, "MOORAGE_ENCRYPTION": "true",
                                 "MOORAGE_SIGNING_TRUSTED_ROOT": str(folder / "root.json")}
                            ).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def cli(server: MoorageServer, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return Cli(server, tmp_path_factory.mktemp("signing-cli"))


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return tmp_path
