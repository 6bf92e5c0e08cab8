"""A secured Moorage server on the advanced edition (scanning and threat blocking on) with
two workers, so that a pull after a policy edit may land on the other process; the
fixture's advisories for the Python packages the test images hold are imported."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.clients.tools import require_tool
from tests.conftest import ROOMY, SECURED
from tests.events.receiver import Receiver
from tests.scan.service.helpers import OSV_PYPA, import_advisories
from tests.support.server import MoorageServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    require_tool("skopeo")
    started = MoorageServer(tmp_path_factory.mktemp("blocking") / "data",
                            extra_args=["--workers", "2"],
                            env={**SECURED, **ROOMY, "MOORAGE_SCAN_ON_PUSH": "true"}).start()
    import_advisories(started, OSV_PYPA / "jinja2", OSV_PYPA / "urllib3")
    yield started
    started.kill()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver().start()
    yield hook
    hook.stop()
