"""The scan results store on both databases (SQLite and PostgreSQL): reports replaced with
the keys of the one before, packages found by the keys advisories are stored under, rows
gone with their manifest; and the pure merge of several engines' findings."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, insert

from moorage.db.metadata import open_engine, sqlite_url
from moorage.db.migrate import upgrade
from moorage.db.schema import blobs, manifests, namespaces, scan_layer_cache
from moorage.scan.model import Distro, Finding, Inventory, Package, Severity
from moorage.scan.report import merge_findings, summarize
from moorage.scan.store import ScanStore, finding_key

DEB = Package("deb", "Debian:12", "libssl3", "3.0.11-1", source_name="openssl",
              source_version="3.0.11-1", layer="sha256:" + "a" * 64)
PY = Package("python", "PyPI", "Jinja2", "2.10", layer="sha256:" + "b" * 64)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        made = open_engine(sqlite_url(tmp_path))
    else:
        from tests.support.backends import shared

        made = open_engine(shared().postgres().create_database(
            f"scanstore_{uuid.uuid4().hex[:8]}"))
    upgrade(made)
    yield made
    made.dispose()


def _manifest(engine: Engine, digest: str) -> None:
    with engine.begin() as conn:
        conn.execute(insert(manifests).values(
            digest=digest, media_type="application/vnd.oci.image.manifest.v1+json", size=2,
            content=b"{}", created_at=time.time()))


def _finding(ident: str, package: Package, level: str = "high", engines=("osv",),
             aliases=(), fixed=()) -> Finding:
    return Finding(ident, tuple(aliases), package, tuple(fixed), Severity(level),
                   engines=tuple(engines))


def test_reports_packages_and_cascade(engine: Engine) -> None:
    store = ScanStore(engine)
    digest = "sha256:" + "1" * 64
    _manifest(engine, digest)
    store.queued(digest, "team/app", "", 7)
    assert store.get(digest).status == "queued"
    store.running(digest, "team/app", "", 7)
    inventory = Inventory(Distro("debian", "12"), (DEB, PY), (DEB.layer, PY.layer))
    first = [_finding("CVE-1", PY, fixed=("2.10.1",))]
    assert store.finish(digest, inventory, ["osv"], first, [], summarize(first)) is None
    row = store.get(digest)
    assert row.status == "done" and row.summary["high"] == 1 and row.engines == ("osv",)
    assert store.inventory(digest) == Inventory(Distro("debian", "12", ""), (DEB, PY),
                                                (DEB.layer, PY.layer), ())

    # found by the advisory keys: the source package under the release and without it,
    # PyPI's normalised name
    for keys in ([("Debian:12", "openssl")], [("Debian", "openssl")], [("PyPI", "jinja2")]):
        assert store.images_holding(keys) == [(digest, "team/app")], keys
    assert store.images_holding([("Debian:11", "openssl"), ("PyPI", "Jinja2")]) == []

    second = [*first, _finding("CVE-2", DEB, "critical")]
    previous = store.finish(digest, inventory, ["osv"], second, ["a problem"],
                            summarize(second), replace_packages=False)
    assert previous == {finding_key(first[0])}
    assert store.summaries([digest])[digest].summary["critical"] == 1
    assert store.inventory(digest).packages == (DEB, PY)  # kept by a rescan

    assert store.scan_on_push("team", default=True) is True
    with engine.begin() as conn:
        conn.execute(insert(namespaces).values(name="team", created_at=time.time()))
    assert store.set_scan_on_push("team", False, "alice")
    assert store.scan_on_push("team", default=True) is False
    assert not store.set_scan_on_push("nobody", True, "alice")

    # the cache's layers whose blobs are gone
    with engine.begin() as conn:
        for layer in (DEB.layer, PY.layer):
            conn.execute(insert(scan_layer_cache).values(
                digest=layer, cache_key="k", result=b"x", created_at=0, used_at=0))
        conn.execute(insert(blobs).values(digest=DEB.layer, size=1, created_at=0))
    assert store.layers_gone() == [PY.layer]

    with engine.begin() as conn:  # GC deletes the manifest row: its report goes with it
        conn.execute(delete(manifests).where(manifests.c.digest == digest))
    assert store.get(digest) is None
    assert store.images_holding([("PyPI", "jinja2")]) == []


def test_merge_findings_of_two_engines() -> None:
    osv = [_finding("CVE-9", PY, "medium", aliases=("GHSA-x",), fixed=("2.11",)),
           _finding("CVE-8", DEB, "low")]
    other = [_finding("GHSA-x", PY, "critical", engines=("harbor:trivy",), fixed=("3.0",)),
             _finding("CVE-9", DEB, "high", engines=("harbor:trivy",))]
    merged = merge_findings([osv, other])
    by = {(f.id, f.package.name): f for f in merged}
    assert set(by) == {("CVE-9", "Jinja2"), ("CVE-8", "libssl3"), ("CVE-9", "libssl3")}
    one = by[("CVE-9", "Jinja2")]
    assert one.engines == ("harbor:trivy", "osv") and one.severity.level == "critical"
    assert one.fixed_versions == ("2.11", "3.0") and one.aliases == ("GHSA-x",)
    assert summarize(merged) == {"critical": 1, "high": 1, "medium": 0, "low": 1,
                                 "unknown": 0}
    accepted = [merged[0].__class__(**{**merged[0].__dict__, "accepted": "risk taken"})]
    assert summarize(accepted)[merged[0].severity.level] == 0
