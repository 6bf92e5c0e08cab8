"""A secured Moorage server (basic edition: charts on) with two workers, so that an index
read after a push may land on the other process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import ROOMY, SECURED
from tests.support.server import MoorageServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    started = MoorageServer(tmp_path_factory.mktemp("helm") / "data",
                            extra_args=["--workers", "2"],
                            env={**SECURED, **ROOMY, "MOORAGE_EDITION": "basic"}).start()
    yield started
    started.kill()
