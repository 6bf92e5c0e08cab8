"""Secured instances (token auth on, a known admin) on each backend, with several processes.

Decisions that must hold across processes (visibility, immutability, network rules) are
tested here: on the embedded backend with `--workers 2`, on scale-out with two replicas that
share only PostgreSQL, S3 and Redis. A test spreads its requests over `servers` and opens a
new connection for each request, so that consecutive requests land on different processes.

tests/conftest.py loads this module as a plugin, so that `secured`, `secured_embedded` and
`secured_scaleout` are one set of instances for every folder (a fixture imported into two
conftests is two fixtures, each with instances of its own).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import BACKENDS, ROOMY, SECURED
from tests.support.server import MoorageServer


@dataclass
class Secured:
    kind: str  # "embedded" or "scaleout"
    servers: list[MoorageServer]  # the same server twice on the embedded backend

    @property
    def server(self) -> MoorageServer:
        return self.servers[0]


@pytest.fixture(scope="session")
def secured_embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    server = MoorageServer(tmp_path_factory.mktemp("secured") / "data", env={**SECURED, **ROOMY},
                           extra_args=["--workers", "2"]).start(timeout=120)
    try:
        yield Secured("embedded", [server, server])
    finally:
        server.stop()


@pytest.fixture(scope="session")
def secured_scaleout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    from tests.support.scaleout import ScaleOut

    cluster = ScaleOut(tmp_path_factory.mktemp("secured-scaleout"), env={**SECURED, **ROOMY})
    try:
        cluster.start(replicas=2)
        yield Secured("scaleout", list(cluster.replicas))
    finally:
        cluster.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def secured(request: pytest.FixtureRequest) -> Secured:
    """The instance of the test's backend. Each backend's is made once per session: a
    session fixture parametrized by backend would be torn down and made again whenever
    pytest's order of tests switches backend (a scale-out cluster costs ~15 s to start)."""
    return request.getfixturevalue(f"secured_{request.param}")  # type: ignore[no-any-return]
