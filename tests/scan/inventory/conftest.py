from __future__ import annotations

from pathlib import Path

import pytest

from tests.scan.inventory.helpers import CountingStore


@pytest.fixture
def store(tmp_path: Path) -> CountingStore:
    return CountingStore(tmp_path / "data")
