"""Secured instances (token auth on, a known admin) on each backend, with several processes.

Decisions that must hold across processes (visibility, immutability, network rules) are
tested here: on the embedded backend with `--workers 2`, on scale-out with two replicas that
share only PostgreSQL, S3 and Redis. A test spreads its requests over `servers` and opens a
new connection for each request, so that consecutive requests land on different processes.

Conftests import `secured` to use it (pytest finds fixtures imported into a conftest).
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


@pytest.fixture(scope="session", params=BACKENDS)
def secured(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    env = {**SECURED, **ROOMY}
    if request.param == "scaleout":
        from tests.support.scaleout import ScaleOut

        cluster = ScaleOut(tmp_path_factory.mktemp("secured-scaleout"), env=env)
        try:
            cluster.start(replicas=2)
            yield Secured("scaleout", list(cluster.replicas))
        finally:
            cluster.stop()
        return
    server = MoorageServer(tmp_path_factory.mktemp("secured") / "data", env=env,
                           extra_args=["--workers", "2"]).start()
    try:
        yield Secured("embedded", [server, server])
    finally:
        server.stop()
