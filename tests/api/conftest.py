"""Fixtures for protocol tests: an HTTP client on the shared registry and a unique repo."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.api.helpers import unique_repo
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
