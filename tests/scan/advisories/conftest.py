"""Advisory databases for the tests: a real SQLite metadata database migrated to head, as
an instance has it, and the real advisory fixtures of shared/."""

from __future__ import annotations

from pathlib import Path

import pytest

from moorage.db.metadata import open_engine, sqlite_url
from moorage.db.migrate import upgrade
from moorage.scan.advisories.store import AdvisoryStore
from tests.support.fixtures import SHARED_FIXTURES

# shared/fixtures, wherever the clone is (tests/support/fixtures.py)
FIXTURES = SHARED_FIXTURES
PYPA = FIXTURES / "osv-pypa" / "vulns"
ALPINE = FIXTURES / "osv-alpine"
DEBIAN_OSV = FIXTURES / "osv-debian" / "osv"


def new_store(folder: Path) -> AdvisoryStore:
    folder.mkdir(parents=True, exist_ok=True)
    engine = open_engine(sqlite_url(folder))
    upgrade(engine)
    return AdvisoryStore(engine)


@pytest.fixture
def store(tmp_path: Path) -> AdvisoryStore:
    return new_store(tmp_path / "db")


@pytest.fixture(scope="session")
def fixtures() -> Path:
    if not PYPA.is_dir():
        pytest.fail(f"the shared advisory fixtures are missing: {FIXTURES}")
    return FIXTURES
