"""Shared fixtures: real Moorage processes on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import MoorageServer


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    """One server shared by the tests that only push and pull (fast)."""
    server = MoorageServer(tmp_path_factory.mktemp("shared") / "data").start()
    yield server
    server.stop()


@pytest.fixture
def fresh_registry(tmp_path: Path) -> Iterator[MoorageServer]:
    """A server of the test's own, for tests that restart, kill or count things."""
    server = MoorageServer(tmp_path / "data").start()
    yield server
    server.kill()
