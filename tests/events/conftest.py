"""Fixtures for the webhook tests: receivers, and the shared accounts of tests/web."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cli.conftest import admin_cli  # noqa: F401  (CLI logged in as admin)
from tests.events.receiver import Receiver
from tests.web.conftest import people  # noqa: F401  (shared accounts fixture)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver of the test's own, answering 200."""
    hook = Receiver().start()
    yield hook
    hook.stop()
