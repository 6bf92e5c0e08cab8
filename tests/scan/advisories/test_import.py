"""Importing real advisory dumps (shared/fixtures): counts against the files, incremental
re-imports, withdrawn and removed records, Alpine secdb and Debian OSV matched to packages,
and the expected findings of known PyPI packages computed here independently of the code."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.version import Version

from moorage.scan.advisories.importer import run_import
from moorage.scan.advisories.matching import match
from moorage.scan.advisories.store import AdvisoryStore
from moorage.scan.model import Package
from tests.scan.advisories.conftest import ALPINE, DEBIAN_OSV, PYPA, new_store


def _files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.yaml"))


def _withdrawn(path: Path) -> bool:
    return any(line.startswith("withdrawn:") for line in path.read_text().splitlines())


@pytest.fixture(scope="module")
def pypa_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[AdvisoryStore, Any]:
    store = new_store(tmp_path_factory.mktemp("pypa"))
    return store, run_import(PYPA, store)


def test_a_folder_import_counts_every_file(pypa_store: tuple[AdvisoryStore, Any]) -> None:
    store, summary = pypa_store
    files = _files(PYPA)
    withdrawn = [f for f in files if _withdrawn(f)]
    assert len(files) == 2661 and withdrawn
    assert (summary.added, summary.withdrawn, summary.skipped_count, summary.updated) \
        == (len(files) - len(withdrawn), len(withdrawn), 0, 0)
    status = store.status()
    assert status["total"] == len(files) - len(withdrawn)
    assert status["ecosystems"] == {"PyPI": len(files) - len(withdrawn)}
    assert status["last_import"]["summary"]["added"] == summary.added
    for path in withdrawn:
        assert store.get(path.stem) is None


def test_a_second_import_of_the_same_dump_writes_nothing(
        pypa_store: tuple[AdvisoryStore, Any]) -> None:
    store, first = pypa_store
    before = store.writes
    again = run_import(PYPA, store)
    assert (again.added, again.updated, again.removed, again.unchanged) \
        == (0, 0, 0, first.added)
    assert store.writes == before and again.writes == 0


def test_the_zipped_dump_imports_the_same(tmp_path: Path,
                                          pypa_store: tuple[AdvisoryStore, Any]) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in _files(PYPA):
            zf.write(path, path.relative_to(PYPA).as_posix())
    store = new_store(tmp_path / "db")
    summary = run_import(archive, store)
    assert (summary.added, summary.withdrawn, summary.skipped_count) \
        == (pypa_store[1].added, pypa_store[1].withdrawn, 0)
    # the same records whichever way they came: the folder now changes nothing
    assert run_import(PYPA, store).writes == 0


def _reference_pysec_ids(package: str, version: str) -> set[str]:
    """Read straight from the fixture, with PEP 440 only: which records list `version` or
    put it in an [introduced, fixed) interval of an ECOSYSTEM range."""
    v = Version(version)
    found = set()
    for path in PYPA.joinpath(package).glob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        if doc.get("withdrawn"):
            continue
        for affected in doc["affected"]:
            if affected["package"]["name"].lower() != package:
                continue
            if version in [str(x) for x in affected.get("versions", [])]:
                found.add(doc["id"])
            for rng in affected.get("ranges", []):
                if rng["type"] != "ECOSYSTEM":  # GIT ranges name commits
                    continue
                start = None
                for event in rng["events"]:
                    if "introduced" in event:
                        start = Version(str(event["introduced"]))
                    elif "fixed" in event and start is not None:
                        if start <= v < Version(str(event["fixed"])):
                            found.add(doc["id"])
                        start = None
                if start is not None and start <= v:
                    found.add(doc["id"])
    return found


@pytest.mark.parametrize(("name", "installed", "version"), [
    ("jinja2", "Jinja2", "2.10"), ("urllib3", "urllib3", "1.24.1"),
    ("pyyaml", "PyYAML", "5.3")])
def test_known_packages_get_the_findings_the_fixture_says(
        pypa_store: tuple[AdvisoryStore, Any], name: str, installed: str,
        version: str) -> None:
    store, _ = pypa_store
    expected = _reference_pysec_ids(name, version)
    assert expected  # each of these versions has known advisories
    findings = match([Package("python", "PyPI", installed, version)], store)
    found = {i for f in findings for i in (f.id, *f.aliases) if i.startswith("PYSEC-")}
    assert found == expected
    assert all(f.id.startswith("CVE-") for f in findings)  # named by their CVE
    assert all(f.fixed_versions and Version(f.fixed_versions[0]) > Version(version)
               for f in findings)


def _copy(tmp_path: Path, *packages: str) -> Path:
    dump = tmp_path / "dump"
    for package in packages:
        shutil.copytree(PYPA / package, dump / package)
    return dump


def test_a_changed_modified_time_updates_exactly_that_record(store: AdvisoryStore,
                                                             tmp_path: Path) -> None:
    dump = _copy(tmp_path, "jinja2", "urllib3")
    first = run_import(dump, store)
    target = dump / "jinja2" / "PYSEC-2019-217.yaml"
    text = target.read_text()
    assert "modified: '2021-11-22T04:57:52.862665Z'" in text
    target.write_text(text.replace("modified: '2021-11-22T04:57:52.862665Z'",
                                   "modified: '2024-01-01T00:00:00Z'"))
    before = store.writes
    second = run_import(dump, store)
    assert (second.updated, second.added, second.removed, second.unchanged) \
        == (1, 0, 0, first.added - 1)
    assert store.get("PYSEC-2019-217")["modified"] == "2024-01-01T00:00:00Z"
    # one record replaced: its row, package row and alias rows deleted and written again
    aliases = len(yaml.safe_load(text).get("aliases") or [])
    assert store.writes - before == 2 * (1 + 1 + aliases)


def test_a_withdrawn_record_is_dropped(store: AdvisoryStore, tmp_path: Path) -> None:
    dump = _copy(tmp_path, "pyyaml")
    run_import(dump, store)
    assert store.get("PYSEC-2020-96") is not None
    assert store.get("CVE-2020-1747")["id"] == "PYSEC-2020-96"  # by alias too
    target = dump / "pyyaml" / "PYSEC-2020-96.yaml"
    target.write_text(target.read_text() + "withdrawn: '2024-02-01T00:00:00Z'\n")
    summary = run_import(dump, store)
    assert summary.withdrawn == 1
    assert store.get("PYSEC-2020-96") is None
    assert not [f for f in match([Package("python", "PyPI", "pyyaml", "5.3")], store)
                if "PYSEC-2020-96" in f.aliases]


def test_records_gone_from_a_full_dump_are_removed_unless_partial(store: AdvisoryStore,
                                                                  tmp_path: Path) -> None:
    dump = _copy(tmp_path, "jinja2", "pyyaml")
    run_import(dump, store)
    (dump / "jinja2" / "PYSEC-2014-8.yaml").unlink()
    assert run_import(dump, store, partial=True).removed == 0
    assert store.get("PYSEC-2014-8") is not None
    (dump / "broken.json").write_text("{not json")
    kept = run_import(dump, store)
    assert (kept.removed, kept.stale_kept, kept.skipped_count) == (0, 1, 1)
    assert store.get("PYSEC-2014-8") is not None
    (dump / "broken.json").unlink()
    removed = run_import(dump, store)
    assert removed.removed == 1 and store.get("PYSEC-2014-8") is None
    # an import of another ecosystem removes nothing of PyPI's
    other = tmp_path / "alpine"
    shutil.copytree(ALPINE / "vuln-list-v3.20-main", other)
    assert run_import(other, store).removed == 0
    assert store.get("PYSEC-2019-217") is not None


def test_alpine_secdb_is_converted_and_matched_by_origin_package(store: AdvisoryStore) -> None:
    summary = run_import(ALPINE, store)
    assert summary.added > 5000 and summary.skipped_count == 0
    assert set(store.status()["ecosystems"]) == {"Alpine:v3.9", "Alpine:v3.10",
                                                "Alpine:v3.11", "Alpine:v3.20"}

    def cves(package: Package) -> set[str]:
        return {f.id for f in match([package], store)}

    # zlib.json of v3.20: CVE-2018-25032 fixed in 1.2.11-r4, CVE-2022-37434 in 1.2.12-r2, and
    # two ids under "0" (never affected in that branch)
    zlib = Package("apk", "Alpine:v3.20", "zlib", "1.2.12-r1")
    assert cves(zlib) == {"CVE-2022-37434"}
    assert cves(Package("apk", "Alpine:v3.20", "zlib", "1.2.11-r3")) \
        == {"CVE-2018-25032", "CVE-2022-37434"}
    assert cves(Package("apk", "Alpine:v3.20", "zlib", "1.3.1-r0")) == set()
    assert cves(Package("apk", "Alpine:v3.19", "zlib", "1.2.11-r3")) == set()
    # a binary package is matched through its origin: libcrypto1.1 comes from openssl
    libcrypto = Package("apk", "Alpine:v3.11", "libcrypto1.1", "1.1.1d-r2",
                        source_name="openssl")
    findings = {f.id: f for f in match([libcrypto], store)}
    assert "CVE-2019-1551" in findings  # v3.11 main.yaml: 1.1.1d-r2 fixes CVE-2019-1547 …
    assert findings["CVE-2019-1551"].fixed_versions == ("1.1.1d-r3",)
    assert "CVE-2019-1547" not in findings
    assert cves(Package("apk", "Alpine:v3.11", "libcrypto1.1", "1.1.1d-r2")) == set()


def test_debian_osv_is_matched_by_source_package_and_dpkg_order(store: AdvisoryStore) -> None:
    assert run_import(DEBIAN_OSV, store).added == 1

    def found(version: str, release: str = "Debian:7") -> list[str]:
        return [f.id for f in match([Package("deb", release, "nginx-common", version,
                                             source_name="nginx")], store)]

    assert found("1.2.1-2.2+wheezy2") == ["CVE-2014-3616"]
    assert found("1.2.1-2.2+wheezy3") == []
    assert found("1.2.1-2.2+wheezy10") == []  # dpkg order, not string order
    assert found("1.2.1-2.2") == ["CVE-2014-3616"]
    assert found("1.2.1-2.2+wheezy2", "Debian:8") == []
    finding = match([Package("deb", "Debian:7", "nginx-common", "1.2.1-2.2+wheezy2",
                             source_name="nginx")], store)[0]
    assert finding.aliases == ("DSA-3029-1",)
    assert finding.fixed_versions == ("1.2.1-2.2+wheezy3",)


def test_the_same_import_and_matching_on_postgresql(tmp_path: Path) -> None:
    """Scale-out deployments keep advisories in PostgreSQL: the same queries there (the
    (ecosystem, name) tuple lookup, the alias join, the incremental comparison)."""
    import uuid

    from moorage.db.metadata import open_engine
    from moorage.db.migrate import upgrade
    from tests.support.backends import shared

    engine = open_engine(shared().postgres().create_database(
        f"advisories_{uuid.uuid4().hex[:8]}"))
    upgrade(engine)
    store = AdvisoryStore(engine)
    dump = _copy(tmp_path, "jinja2", "pyyaml")
    first = run_import(dump, store)
    assert first.added == 9 and run_import(dump, store).writes == 0
    assert store.get("CVE-2020-1747")["id"] == "PYSEC-2020-96"
    assert {f.id for f in match([Package("python", "PyPI", "PyYAML", "5.3")], store)} \
        == {"CVE-2020-1747", "CVE-2020-14343"}
    assert store.status()["ecosystems"] == {"PyPI": 9}
