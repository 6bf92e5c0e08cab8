"""Fixtures for protocol tests: an HTTP client on the shared registry and a unique repo."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.api.helpers import unique_repo
from tests.api.uploadcheck import Target
from tests.conftest import BACKENDS, OPEN
from tests.support.server import MoorageServer


@pytest.fixture
def client(registry: MoorageServer) -> Iterator[httpx.Client]:
    """A plain HTTP client on the shared server; no redirects, so a test sees every status."""
    with httpx.Client(base_url=registry.url, timeout=30.0) as c:
        yield c


@pytest.fixture
def repo() -> str:
    """A repository name of the test's own on the shared server."""
    return unique_repo()


@pytest.fixture(scope="session")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    """An open instance with `--workers 2`, shared by the tests that race requests."""
    server = MoorageServer(tmp_path_factory.mktemp("races") / "data", env=OPEN,
                           extra_args=["--workers", "2"]).start()
    yield server
    server.stop()


@pytest.fixture(params=["workers", "replicas"])
def target(request: pytest.FixtureRequest) -> Target:
    """Two entry points to one registry, for races: a server with two granian workers (each
    connection lands on either), or the two replicas of the scale-out cluster."""
    if request.param == "workers":
        server: MoorageServer = request.getfixturevalue("two_workers")
        return Target((server.url, server.url), server.data_dir)
    if "scaleout" not in BACKENDS:
        pytest.skip("scale-out backend not selected")
    cluster = request.getfixturevalue("scaleout")
    return Target((cluster.replicas[0].url, cluster.replicas[1].url), None)
