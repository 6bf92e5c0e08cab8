"""Console tests: a real `moorage serve` (token auth on, 2 workers) and headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import ADMIN_PASSWORD, ROOMY, SECURED
from tests.support.browser import browse, chromium  # noqa: F401 - fixtures
from tests.support.server import MoorageServer


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    """A secured instance of the module's own, on two workers (a session's requests land on
    both processes, so nothing about a session may live in one)."""
    server = MoorageServer(tmp_path_factory.mktemp("console") / "data",
                           env={**SECURED, **ROOMY}, extra_args=["--workers", "2"]).start()
    yield server
    server.stop()


@pytest.fixture
def admin_password() -> str:
    return ADMIN_PASSWORD
