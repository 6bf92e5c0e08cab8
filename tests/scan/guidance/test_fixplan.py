"""Fix plans for images built here and inventoried by the real cataloguers, matched against
the real advisory fixtures: every fixable finding is cleared by the planned version (checked
against the fixtures' own ranges, with `packaging.version` for PyPI, not through the code
under test), no package goes beyond the least version that clears all its findings, distro
fixes move every binary package built from the fixed source, and the commands are exact."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import yaml
from packaging.version import Version

from moorage.scan.advisories.apk import ApkVersion
from moorage.scan.advisories.matching import match
from moorage.scan.advisories.store import AdvisoryStore
from moorage.scan.allowlist import AllowlistEntry, apply_allowlist
from moorage.scan.fixplan import fix_plan
from moorage.scan.inventory import inventory_of
from moorage.scan.model import Finding, Inventory
from tests.scan.guidance.conftest import ALPINE_320, PYPA, STATUS, TRUTH
from tests.scan.pypi_reference import pypi_affected
from tests.scan.inventory.helpers import (ALPINE_OS_RELEASE, DEBIAN_OS_RELEASE, compress,
                                          directory, file, image, metadata, symlink, tar)

DIST = "usr/lib/python3/dist-packages"
PYTHON = (("Jinja2", "2.10"), ("urllib3", "1.24.1"), ("PyYAML", "5.3"), ("Zope", "4.0"))


def _debian_base() -> bytes:
    return compress(tar([directory("etc"), directory("usr/lib"),
                         file("var/lib/dpkg/status", STATUS.read_bytes()),
                         file("usr/lib/os-release", DEBIAN_OS_RELEASE),
                         symlink("etc/os-release", "../usr/lib/os-release")]))


def _python_layer() -> bytes:
    entries = []
    for name, version in PYTHON:
        entries.append(file(f"{DIST}/{name}-{version}.dist-info/METADATA",
                            metadata(name, version)))
    return compress(tar(entries))


def _scan(blobs, advisories: AdvisoryStore, layers: list[bytes]
          ) -> tuple[Inventory, list[Finding]]:
    inventory = inventory_of(blobs, image(blobs, layers))
    assert inventory.problems == ()
    return inventory, match(inventory.packages, advisories)


# -- an independent reading of the PyPI fixture's ranges ------------------------------------
def _records() -> dict[str, list[dict]]:
    """Every PyPA record of the packages in the image, by each of its ids and aliases."""
    out: dict[str, list[dict]] = {}
    for folder in ("jinja2", "urllib3", "pyyaml", "zope"):
        for path in (PYPA / folder).glob("*.yaml"):
            record = yaml.safe_load(path.read_text())
            for ident in [record["id"], *record.get("aliases", [])]:
                out.setdefault(ident, []).append(record)
    return out


def _still_affected(finding: Finding, version: str, records: dict[str, list[dict]]) -> bool:
    seen = {id(r): r for i in (finding.id, *finding.aliases) for r in records.get(i, [])}
    assert seen, f"no fixture record for {finding.id}"
    return any(pypi_affected(r, finding.package.name, version) for r in seen.values())


def test_python_packages_get_the_least_versions_that_clear_every_finding(blobs, advisories
                                                                           ) -> None:
    inventory, findings = _scan(blobs, advisories, [_debian_base(), _python_layer()])
    python = [f for f in findings if f.package.kind == "python"]
    assert {f.package.name for f in python} == {"Jinja2", "urllib3", "PyYAML", "Zope"}
    plan = fix_plan(python, inventory)
    records = _records()
    targets = {u.name: u.target for u in plan.upgrades}
    assert targets["Jinja2"] == "2.11.3" and targets["PyYAML"] == "5.4"
    assert targets["urllib3"] == "1.26.18"
    assert plan.blocked == [] and plan.unfixable == []
    cleared = {i for u in plan.upgrades for i in u.findings}
    assert cleared == {f.id for f in python}
    for f in python:
        target = targets[f.package.name]
        # cleared, by the fixture's own ranges
        assert not _still_affected(f, target, records), (f.id, target)
    for upgrade in plan.upgrades:
        mine = [f for f in python if f.package.name == upgrade.name]
        # minimal: every lower fix version on offer leaves some finding open
        lower = {v for f in mine for v in f.fixed_versions
                 if Version(upgrade.installed) < Version(v) < Version(upgrade.target)}
        for version in lower:
            assert any(_still_affected(f, version, records) for f in mine), \
                (upgrade.name, version)
        assert upgrade.target in {v for f in mine for v in f.fixed_versions}


def test_a_finding_with_several_fixes_needs_the_greatest(blobs, advisories) -> None:
    """zope 4.0: CVE-2021-32807 and CVE-2021-32811 share a GHSA alias, so they make one
    finding with fixes 4.3 and 4.6.3; 4.3 is still affected by CVE-2021-32811, so the plan
    takes 4.6.3 (or more, for the package's other findings), never 4.3."""
    inventory, findings = _scan(blobs, advisories, [_debian_base(), _python_layer()])
    zope = [f for f in findings if f.package.name == "Zope"]
    merged = next(f for f in zope if "CVE-2021-32811" in (f.id, *f.aliases))
    assert set(merged.fixed_versions) == {"4.3", "4.6.3"}
    records = _records()
    assert _still_affected(merged, "4.3", records)
    assert not _still_affected(merged, "4.6.3", records)
    plan = fix_plan([merged], inventory)
    assert [u.target for u in plan.upgrades] == ["4.6.3"]
    assert [c.command for c in plan.commands] == ["pip install 'Zope>=4.6.3'"]


def test_the_pip_command_and_the_layer_that_brought_the_packages(blobs, advisories) -> None:
    inventory, findings = _scan(blobs, advisories, [_debian_base(), _python_layer()])
    wanted = [f for f in findings if f.package.name in ("Jinja2", "urllib3", "PyYAML")]
    plan = fix_plan(wanted, inventory)
    assert [(c.manager, c.command) for c in plan.commands] == [
        ("pip", "pip install 'Jinja2>=2.11.3' 'PyYAML>=5.4' 'urllib3>=1.26.18'")]
    top = inventory.layers[1]
    jinja = next(u for u in plan.upgrades if u.name == "Jinja2")
    assert jinja.layer is not None and (jinja.layer.index, jinja.layer.count) == (2, 2)
    assert jinja.layer.text == (f"brought by layer 2 of 2 ({top}); if this layer is part of "
                                f"your base image, rebuild on a newer base")
    doc = json.loads(json.dumps(plan.as_dict()))
    assert doc["commands"] == [{"manager": "pip", "command": plan.commands[0].command}]
    assert doc["upgrades"][0]["layer"]["digest"] == top
    lines = plan.lines()
    assert lines[0] == "3 upgrades clear 11 findings:"
    assert "  Jinja2 2.10 -> 2.11.3: CVE-2019-10906, CVE-2020-28493" in lines
    assert "  pip install 'Jinja2>=2.11.3' 'PyYAML>=5.4' 'urllib3>=1.26.18'" in lines


def test_a_dpkg_fix_moves_every_binary_package_of_the_source(blobs, advisories) -> None:
    inventory, findings = _scan(blobs, advisories, [_debian_base()])
    assert {f.id for f in findings} == {"CVE-2099-0001"}
    plan = fix_plan(findings, inventory)
    truth = [line.split() for line in TRUTH.read_text().splitlines() if line.strip()]
    built = sorted((b, v) for b, v, source, _ in truth if source == "util-linux")
    assert len(built) == 8 and ("bsdutils", "1:2.38.1-5+deb12u3") in built
    [upgrade] = plan.upgrades
    assert (upgrade.name, upgrade.installed, upgrade.target) == (
        "util-linux", "2.38.1-5+deb12u3", "2.38.1-5+deb12u4")
    assert [name for name, _ in upgrade.packages] == [b for b, _ in built]
    # bsdutils' own version has an epoch the source's lacks: its exact fixed version is not
    # known here, so apt takes the newest; the others get the fixed version exactly
    args = " ".join(b if v != "2.38.1-5+deb12u3" else f"{b}=2.38.1-5+deb12u4"
                    for b, v in built)
    assert [c.command for c in plan.commands] == [f"apt-get install --only-upgrade {args}"]
    assert args.startswith("bsdutils libblkid1=2.38.1-5+deb12u4 ")
    assert upgrade.layer is not None and upgrade.layer.index == 1
    assert "the bottom layer, which usually comes from the base image" in upgrade.layer.text


def test_the_real_debian_advisory_on_a_wheezy_database(blobs, advisories) -> None:
    """DSA-3029-1 (nginx, Debian 7), the fixture's real OSV record, against a dpkg database
    written here with nginx's binary packages."""
    status = "".join(
        f"Package: {name}\nStatus: install ok installed\nArchitecture: amd64\n"
        f"Source: nginx\nVersion: 1.2.1-2.2+wheezy2\nDescription: {name}\n\n"
        for name in ("nginx-common", "nginx-full"))
    release = DEBIAN_OS_RELEASE.replace('VERSION_ID="12"', 'VERSION_ID="7"')
    layer = compress(tar([file("var/lib/dpkg/status", status),
                          file("etc/os-release", release)]))
    inventory, findings = _scan(blobs, advisories, [layer])
    assert {(f.id, f.package.name) for f in findings} == {
        ("CVE-2014-3616", "nginx-common"), ("CVE-2014-3616", "nginx-full")}
    plan = fix_plan(findings, inventory)
    assert [c.command for c in plan.commands] == [
        "apt-get install --only-upgrade nginx-common=1.2.1-2.2+wheezy3 "
        "nginx-full=1.2.1-2.2+wheezy3"]
    assert [u.findings for u in plan.upgrades] == [("CVE-2014-3616",)]


def _secfixes(origin: str) -> dict[str, list[str]]:
    data = json.loads((ALPINE_320 / f"{origin}.json").read_text())
    return {v: ids for v, ids in data["secfixes"].items() if v != "0"}


def test_an_apk_fix_moves_every_package_of_the_origin(blobs, advisories) -> None:
    installed = {"busybox": ("busybox", "1.36.1-r0"), "busybox-binsh": ("busybox", "1.36.1-r0"),
                 "ssl_client": ("busybox", "1.36.1-r0"), "musl": ("musl", "1.2.5-r0"),
                 "musl-utils": ("musl", "1.2.5-r0"), "libcrypto3": ("openssl", "3.3.0-r0"),
                 "libssl3": ("openssl", "3.3.0-r0"), "zlib": ("zlib", "1.3.1-r1")}
    db = "".join(f"C:Q1{'x' * 27}=\nP:{name}\nV:{version}\nA:x86_64\no:{origin}\n\n"
                 for name, (origin, version) in installed.items())
    layer = compress(tar([file("lib/apk/db/installed", db),
                          file("etc/os-release", ALPINE_OS_RELEASE)]))
    inventory, findings = _scan(blobs, advisories, [layer])
    plan = fix_plan(findings, inventory)
    # what the secdb says, read here: per origin, the greatest fix above the installed version
    # (apk order through ApkVersion: no other apk comparer is on this machine)
    expected = {}
    for origin in ("busybox", "musl", "openssl", "zlib"):
        version = next(v for o, v in installed.values() if o == origin)
        fixes = [v for v in _secfixes(origin) if ApkVersion(v) > ApkVersion(version)]
        if fixes:
            expected[origin] = max(fixes, key=ApkVersion)
    assert {u.name: u.target for u in plan.upgrades} == expected
    assert expected["musl"] == "1.2.5-r3" and "zlib" not in expected
    for f in findings:
        target = ApkVersion(expected[f.package.advisory_name])
        assert any(ApkVersion(fix) <= target for fix, ids in _secfixes(
            f.package.advisory_name).items() if f.id in ids or set(f.aliases) & set(ids))
    args = []
    for origin in sorted(expected):
        args += [f"'{name}>={expected[origin]}'" for name in sorted(installed)
                 if installed[name][0] == origin]
    assert [c.command for c in plan.commands] == [f"apk add --upgrade {' '.join(args)}"]
    assert "'musl>=1.2.5-r3' 'musl-utils>=1.2.5-r3'" in plan.commands[0].command


def _finding(name: str, version: str, fixes: tuple[str, ...], kind: str = "python",
             ecosystem: str = "PyPI", ident: str = "CVE-2020-0001") -> Finding:
    from moorage.scan.model import Package, Severity
    return Finding(id=ident, aliases=(), package=Package(kind, ecosystem, name, version),
                   fixed_versions=fixes, severity=Severity("high"))


def test_unfixable_blocked_and_accepted_findings_are_listed_apart() -> None:
    inventory = Inventory(distro=None, packages=(), layers=())
    findings = [_finding("demo", "2.0", ()),
                _finding("demo", "2.0", ("1.5",), ident="CVE-2020-0002"),
                _finding("demo", "2.0", ("not a version!",), ident="CVE-2020-0003"),
                _finding("demo", "2.0", ("2.1",), ident="CVE-2020-0004"),
                _finding("other", "1.0", ("1.1",), ident="CVE-2020-0005")]
    entry = AllowlistEntry("team", "cve-2020-0005", "not reachable", None,
                           datetime(2026, 1, 1, tzinfo=timezone.utc), "admin")
    plan = fix_plan(apply_allowlist(findings, [entry], datetime.now(timezone.utc)), inventory)
    assert [(u.name, u.target, u.findings) for u in plan.upgrades] == [
        ("demo", "2.1", ("CVE-2020-0004",))]
    assert plan.unfixable == [("CVE-2020-0001", "demo", "2.0")]
    assert {b.id: b.why for b in plan.blocked} == {
        "CVE-2020-0002": "every listed fix is at or below the installed version",
        "CVE-2020-0003": "its fixed versions (not a version!) cannot be ordered in PyPI"}
    assert plan.accepted == [("CVE-2020-0005", "other", "1.0", "not reachable")]
    assert plan.lines()[-1] == "  CVE-2020-0005 in other 1.0: not reachable"


def test_commands_of_the_other_managers() -> None:
    inventory = Inventory(distro=None, packages=(), layers=())
    findings = [_finding("left-pad", "1.0.0", ("1.3.0",), "npm", "npm"),
                _finding("golang.org/x/net", "v0.1.0", ("0.17.0",), "go-module", "Go"),
                _finding("stdlib", "go1.21.0", ("1.21.5",), "go-module", "Go"),
                _finding("org.apache.logging.log4j:log4j-core", "2.14.1", ("2.17.1",),
                         "java-archive", "Maven"),
                _finding("openssl-libs", "1:3.0.7-24.el9", ("1:3.0.7-25.el9",), "rpm",
                         "Rocky Linux:9")]
    plan = fix_plan(findings, inventory)
    assert plan.blocked == []
    assert [c.command for c in plan.commands] == [
        "dnf upgrade openssl-libs-1:3.0.7-25.el9",
        "npm install left-pad@1.3.0",
        "go get golang.org/x/net@v0.17.0",
        "rebuild with Go 1.21.5 or newer",
        "mvn versions:use-dep-version -Dincludes=org.apache.logging.log4j:log4j-core "
        "-DdepVersion=2.17.1 -DforceVersion=true"]
