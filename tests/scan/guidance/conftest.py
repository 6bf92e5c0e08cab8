"""Advisory data and images for the fix-plan tests: the real advisory fixtures of shared/,
imported with the real importer into a real migrated SQLite database, and images built layer
by layer and inventoried by the real cataloguers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from moorage.db.metadata import open_engine, sqlite_url
from moorage.db.migrate import upgrade
from moorage.scan.advisories.importer import run_import
from moorage.scan.advisories.store import AdvisoryStore
from tests.support.fixtures import SHARED_FIXTURES

PYPA = SHARED_FIXTURES / "osv-pypa" / "vulns"
ALPINE_320 = SHARED_FIXTURES / "osv-alpine" / "vuln-list-v3.20-main"
DEBIAN_OSV = SHARED_FIXTURES / "osv-debian" / "osv"
STATUS = SHARED_FIXTURES / "dpkg" / "status-bookworm-minbase"
TRUTH = SHARED_FIXTURES / "dpkg" / "status-bookworm-minbase.dpkg-query.txt"
PYPI_PACKAGES = ("jinja2", "urllib3", "pyyaml", "zope")

# No advisory in the fixtures names a bookworm minbase package (the Debian Security Tracker
# snapshot predates bookworm), so the source-to-binary test adds one record, written here in
# the shape Debian's DSA conversion has (osv-debian/README.md), for util-linux: its ten
# binary packages include one whose version differs from the source's (bsdutils' epoch).
UTIL_LINUX_RECORD = {
    "id": "TEST-DEB-UTIL-LINUX-1", "modified": "2026-12-07T00:00:00Z",
    "aliases": ["CVE-2099-0001"], "summary": "written for the tests (see conftest.py)",
    "affected": [{"package": {"ecosystem": "Debian:12", "name": "util-linux"},
                  "ranges": [{"type": "ECOSYSTEM", "events": [
                      {"introduced": "0"}, {"fixed": "2.38.1-5+deb12u4"}]}]}],
}


@pytest.fixture(scope="session")
def advisories(tmp_path_factory: pytest.TempPathFactory) -> AdvisoryStore:
    root = tmp_path_factory.mktemp("advisories")
    (root / "db").mkdir()
    engine = open_engine(sqlite_url(root / "db"))
    upgrade(engine)
    store = AdvisoryStore(engine)
    dump = root / "dump"
    for name in PYPI_PACKAGES:
        shutil.copytree(PYPA / name, dump / "pypi" / name)
    shutil.copytree(ALPINE_320, dump / "alpine")
    shutil.copytree(DEBIAN_OSV, dump / "debian")
    (dump / "debian" / "util-linux.json").write_text(json.dumps(UTIL_LINUX_RECORD))
    summary = run_import(dump, store)
    assert summary.skipped_count == 0, summary.as_dict()
    return store


@pytest.fixture
def blobs(tmp_path: Path):  # type: ignore[no-untyped-def]
    from tests.scan.inventory.helpers import CountingStore
    return CountingStore(tmp_path / "blobs")
