"""A secured server with the audit log on each backend, for the tests that attack the writer.

The shared `secure_registry` runs on SQLite only, and PostgreSQL refuses things SQLite
stores (a NUL character in a text column): a hostile value must be tried on both.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import BACKENDS, ROOMY, SECURED
from tests.support.server import MoorageServer


@pytest.fixture(scope="module", params=BACKENDS)
def audited(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    """One worker, so that a request that poisons the writer and the requests after it
    land on the same recorder."""
    env = {**SECURED, **ROOMY}
    if request.param == "scaleout":
        from tests.support.scaleout import ScaleOut

        cluster = ScaleOut(tmp_path_factory.mktemp("audited-scaleout"), env=env)
        try:
            yield cluster.start(replicas=1).replicas[0]
        finally:
            cluster.stop()
        return
    server = MoorageServer(tmp_path_factory.mktemp("audited") / "data", env=env).start()
    yield server
    server.kill()
