"""Each cataloger against real data or data made by the package manager's own tools: the
real bookworm dpkg database (with dpkg-query's ground truth), Syft's SBOM of the fixture's
root filesystem, an apk database, an npm tree, jars, a Go binary built here, an rpmdb made by
rpm itself."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from moorage.scan.inventory import inventory_of
from tests.scan.inventory.helpers import (ALPINE_OS_RELEASE, DEBIAN_OS_RELEASE, compress,
                                          directory, file, image, metadata, symlink, tar)
from tests.support.fixtures import SHARED_FIXTURES

# shared/fixtures, wherever the clone is (tests/support/fixtures.py)
FIXTURES = SHARED_FIXTURES
STATUS = FIXTURES / "dpkg" / "status-bookworm-minbase"
TRUTH = FIXTURES / "dpkg" / "status-bookworm-minbase.dpkg-query.txt"
SYFT = FIXTURES / "sbom" / "syft-sample.cdx.json"
DIST = "usr/lib/python3/dist-packages"
VULNERABLE = (("Jinja2", "2.10", "BSD"), ("urllib3", "1.24.1", "MIT"), ("PyYAML", "5.3", "MIT"))


def _debian_rootfs() -> list:
    """The root filesystem of ../shared/fixtures/sbom/README.md, as one layer."""
    entries = [directory("etc"), directory("usr/lib"), file("var/lib/dpkg/status",
                                                             STATUS.read_bytes()),
               file("usr/lib/os-release", DEBIAN_OS_RELEASE),
               symlink("etc/os-release", "../usr/lib/os-release"),
               file("etc/debian_version", "12.15\n")]
    for name, version, license_ in VULNERABLE:
        info = f"{DIST}/{name}-{version}.dist-info"
        entries += [file(f"{info}/METADATA", metadata(name, version, license_)),
                    file(f"{info}/RECORD", ""), file(f"{DIST}/{name.lower()}/__init__.py", "")]
    return entries


def test_the_real_dpkg_database_gives_every_package_with_its_source(store) -> None:
    manifest = image(store, [compress(tar(_debian_rootfs()))])
    found = inventory_of(store, manifest)
    debs = {p.name: p for p in found.packages if p.kind == "deb"}
    truth = [line.split() for line in TRUTH.read_text().splitlines() if line.strip()]
    assert len(truth) == 88 and len(debs) == 88
    for name, version, source, source_version in truth:
        package = debs[name]
        assert package.version == version
        assert (package.advisory_name, package.advisory_version) == (source, source_version)
        assert package.ecosystem == "Debian:12"
        assert package.path == "var/lib/dpkg/status"
    assert debs["libc6"].source_name == "glibc"
    assert debs["bash"].source_version == "5.2.15-2"
    assert found.distro is not None and (found.distro.id, found.distro.version_id) == (
        "debian", "12")
    assert found.problems == ()


def test_the_fixture_rootfs_matches_syft(store) -> None:
    """Syft's package list of the same root filesystem: names, versions, types and purls.

    One difference, by design: Syft names Python packages in PEP 503 normal form
    ("jinja2", "pyyaml"), Moorage keeps the distribution's own name ("Jinja2", "PyYAML",
    as the model says: advisories match on the normalised name); the purls agree."""
    manifest = image(store, [compress(tar(_debian_rootfs()))])
    found = inventory_of(store, manifest)
    syft = json.loads(SYFT.read_text())["components"]
    theirs = {(c["name"], c["version"], _syft_type(c)) for c in syft
              if c["type"] != "operating-system"}
    ours = {(p.name.lower() if p.kind == "python" else p.name, p.version, p.kind)
            for p in found.packages}
    assert ours == theirs
    assert {c["purl"] for c in syft if "purl" in c} == {p.purl for p in found.packages}
    system = [c for c in syft if c["type"] == "operating-system"][0]
    assert (found.distro.id, found.distro.version_id) == (system["name"], system["version"])
    python = {p.name: p for p in found.packages if p.kind == "python"}
    assert python["urllib3"].path == f"{DIST}/urllib3-1.24.1.dist-info/METADATA"
    assert python["PyYAML"].ecosystem == "PyPI" and python["PyYAML"].licenses == ("MIT",)


def _syft_type(component: dict) -> str:
    return next(p["value"] for p in component["properties"] if p["name"] == "syft:package:type")


APK_INSTALLED = """C:Q1abc=
P:musl
V:1.2.5-r0
A:x86_64
S:411034
I:635904
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teräs <timo.teras@iki.fi>
F:lib
R:ld-musl-x86_64.so.1
Z:Q1abc=

C:Q1def=
P:libcrypto3
V:3.3.2-r0
A:x86_64
L:Apache-2.0
o:openssl
F:usr/lib
R:libcrypto.so.3

C:Q1ghi=
P:ssl_client
V:1.36.1-r29
A:x86_64
L:GPL-2.0-only
o:busybox

P:broken-no-version
A:x86_64
"""


def test_an_apk_database_gives_origins_and_the_alpine_release(store) -> None:
    manifest = image(store, [compress(tar([file("etc/os-release", ALPINE_OS_RELEASE),
                                            file("lib/apk/db/installed", APK_INSTALLED)]))])
    found = inventory_of(store, manifest)
    apks = {p.name: p for p in found.packages}
    assert set(apks) == {"musl", "libcrypto3", "ssl_client"}
    assert apks["libcrypto3"].advisory_name == "openssl"
    assert apks["ssl_client"].advisory_name == "busybox"
    assert apks["musl"].advisory_name == "musl" and apks["musl"].licenses == ("MIT",)
    assert {p.ecosystem for p in apks.values()} == {"Alpine:v3.20"}
    assert apks["libcrypto3"].purl == ("pkg:apk/alpine/libcrypto3@3.3.2-r0?arch=x86_64"
                                       "&distro=alpine-3.20.3&upstream=openssl")
    assert any("broken-no-version" not in p and "without a version" in p
               for p in found.problems)


def _package_json(name: str, version: str | None = None) -> str:
    return json.dumps({"name": name, **({"version": version} if version else {})})


def test_an_npm_tree_gives_installed_packages_only(store) -> None:
    root = "app/node_modules"
    manifest = image(store, [compress(tar([
        file("app/package.json", _package_json("my-app", "1.0.0")),  # the app, not installed
        file(f"{root}/lodash/package.json", _package_json("lodash", "4.17.20")),
        file(f"{root}/@babel/core/package.json", _package_json("@babel/core", "7.0.0")),
        file(f"{root}/express/package.json", _package_json("express", "4.17.1")),
        file(f"{root}/express/node_modules/qs/package.json", _package_json("qs", "6.7.0")),
        file(f"{root}/express/lib/package.json", _package_json("not-a-package", "9.9.9")),
        file(f"{root}/express/test/fixtures/x/package.json", _package_json("fixture", "1.0")),
        file(f"{root}/stub/package.json", _package_json("stub")),  # no version: no package
        file(f"{root}/bad/package.json", "{not json"),
    ]))])
    found = inventory_of(store, manifest)
    assert {(p.name, p.version) for p in found.packages} == {
        ("lodash", "4.17.20"), ("@babel/core", "7.0.0"), ("express", "4.17.1"),
        ("qs", "6.7.0")}
    babel = next(p for p in found.packages if p.name == "@babel/core")
    assert babel.purl == "pkg:npm/%40babel/core@7.0.0" and babel.ecosystem == "npm"
    assert any("bad/package.json: not valid JSON" in p for p in found.problems)


def _jar(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def _pom(group: str, artifact: str, version: str) -> dict[str, bytes]:
    text = f"#Generated by Maven\ngroupId={group}\nartifactId={artifact}\nversion={version}\n"
    return {f"META-INF/maven/{group}/{artifact}/pom.properties": text.encode()}


def test_jars_and_nested_jars_give_maven_coordinates(store) -> None:
    log4j = _jar(_pom("org.apache.logging.log4j", "log4j-core", "2.14.1")
                 | {"org/apache/Log.class": b"\xca\xfe\xba\xbe"})
    text = _jar(_pom("org.apache.commons", "commons-text", "1.9"))
    deep = _jar({"lib/a.jar": _jar({"lib/b.jar": _jar({"lib/c.jar": _jar(
        _pom("too", "deep", "1"))})})})
    war = _jar(_pom("com.example", "shop", "1.0.0") | {"WEB-INF/lib/commons-text-1.9.jar": text,
                                                      "WEB-INF/lib/deep.jar": deep})
    manifest = image(store, [compress(tar([file("opt/app/log4j-core-2.14.1.jar", log4j),
                                           file("opt/app/shop.war", war),
                                           file("opt/app/broken.jar", b"PK\x03\x04 no zip")]))])
    found = inventory_of(store, manifest)
    got = {(p.name, p.version, p.path) for p in found.packages}
    assert got == {
        ("org.apache.logging.log4j:log4j-core", "2.14.1", "opt/app/log4j-core-2.14.1.jar:"
         "META-INF/maven/org.apache.logging.log4j/log4j-core/pom.properties"),
        ("com.example:shop", "1.0.0",
         "opt/app/shop.war:META-INF/maven/com.example/shop/pom.properties"),
        ("org.apache.commons:commons-text", "1.9", "opt/app/shop.war:WEB-INF/lib/"
         "commons-text-1.9.jar:META-INF/maven/org.apache.commons/commons-text/pom.properties"),
    }
    log = next(p for p in found.packages if p.name.endswith("log4j-core"))
    assert log.purl == "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"
    assert log.kind == "java-archive" and log.ecosystem == "Maven"
    assert any("nested deeper than 3" in p for p in found.problems)
    assert any("broken.jar: not a readable archive" in p for p in found.problems)


def _go() -> str | None:
    return shutil.which("go")


@pytest.mark.slow
@pytest.mark.skipif(_go() is None, reason="Go is not installed (golang-go)")
def test_a_go_binary_built_here_gives_its_modules(store, tmp_path: Path) -> None:
    source = tmp_path / "hello"
    source.mkdir()
    (source / "go.mod").write_text("module example.com/hello\n\ngo 1.19\n")
    (source / "main.go").write_text('package main\n\nimport "fmt"\n\nfunc main() '
                                    '{ fmt.Println("hello") }\n')
    env = {**os.environ, "GOPATH": str(tmp_path / "gopath"), "GOCACHE": str(tmp_path / "cache"),
           "GOPROXY": "off", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    subprocess.run(["go", "build", "-o", str(tmp_path / "hello-bin"), "."], cwd=source,
                   env=env, check=True, timeout=900)
    version = subprocess.run(["go", "env", "GOVERSION"], env=env, capture_output=True,
                             text=True, check=True).stdout.strip()
    binary = (tmp_path / "hello-bin").read_bytes()
    manifest = image(store, [compress(tar([file("usr/local/bin/hello", binary, 0o755)]))])
    found = inventory_of(store, manifest)
    assert {(p.name, p.version) for p in found.packages} == {
        ("stdlib", version), ("example.com/hello", "(devel)")}
    main = next(p for p in found.packages if p.name == "example.com/hello")
    assert main.purl == "pkg:golang/example.com/hello@%28devel%29"
    assert main.kind == "go-module" and main.ecosystem == "Go"
    assert main.path == "usr/local/bin/hello" and found.problems == ()


SPEC = """Name: {name}
Version: {version}
Release: {release}
{epoch}Summary: a package made by the test
License: MIT
BuildArch: noarch

%description
A package made by the test.

%files
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("rpmbuild") is None, reason="rpm is not installed")
def test_an_rpmdb_made_by_rpm_gives_its_packages(store, tmp_path: Path) -> None:
    top, db = tmp_path / "rpmbuild", tmp_path / "rpmdb"
    packages = [("hello", "2.12", "1.el9", ""), ("openssl-libs", "3.0.7", "24.el9", "1")]
    for name, version, release, epoch in packages:
        spec = tmp_path / f"{name}.spec"
        spec.write_text(SPEC.format(name=name, version=version, release=release,
                                    epoch=f"Epoch: {epoch}\n" if epoch else ""))
        subprocess.run(["rpmbuild", "-bb", "--define", f"_topdir {top}", str(spec)],
                       check=True, capture_output=True, timeout=300)
    subprocess.run(["rpm", "--dbpath", str(db), "--initdb"], check=True, timeout=120)
    built = sorted(str(p) for p in (top / "RPMS").rglob("*.rpm"))
    subprocess.run(["rpm", "--dbpath", str(db), "-i", "--justdb", "--nodeps", "--noscripts",
                    *built], check=True, capture_output=True, timeout=300)
    truth = subprocess.run(
        ["rpm", "--dbpath", str(db), "-qa", "--qf",
         "%{NAME} %{EPOCH}:%{VERSION}-%{RELEASE} %{ARCH} %{SOURCERPM}\n"],
        check=True, capture_output=True, text=True, timeout=120).stdout.split("\n")
    expected = {(n, v.removeprefix("(none):"), a, s)
                for n, v, a, s in (line.split() for line in truth if line)}
    rocky = 'NAME="Rocky Linux"\nID="rocky"\nVERSION_ID="9.3"\n'
    manifest = image(store, [compress(tar([
        file("etc/os-release", rocky),
        file("var/lib/rpm/rpmdb.sqlite", (db / "rpmdb.sqlite").read_bytes())]))])
    found = inventory_of(store, manifest)
    assert len(expected) == 2
    assert {(p.name, p.version, p.arch) for p in found.packages} == {
        (n, v, a) for n, v, a, _ in expected}
    ssl = next(p for p in found.packages if p.name == "openssl-libs")
    assert ssl.version == "1:3.0.7-24.el9" and ssl.ecosystem == "Rocky Linux:9"
    assert ssl.purl == ("pkg:rpm/rocky/openssl-libs@3.0.7-24.el9?arch=noarch&distro=rocky-9.3"
                        "&epoch=1&upstream=openssl-libs-3.0.7-24.el9.src.rpm")


def test_a_berkeleydb_rpm_database_is_reported_not_read(store) -> None:
    manifest = image(store, [compress(tar([file("var/lib/rpm/Packages", b"\x00" * 4096)]))])
    found = inventory_of(store, manifest)
    assert found.packages == ()
    assert any("BerkeleyDB format" in p and "not read" in p for p in found.problems)


def test_a_distroless_status_d_gives_its_packages(store) -> None:
    """Distroless images keep one file per package under status.d (no Status field), with
    md5sums files beside them."""
    layer = compress(tar([
        file("etc/os-release", DEBIAN_OS_RELEASE),
        file("var/lib/dpkg/status.d/base", "Package: base-files\nVersion: 12.4+deb12u15\n"
                                           "Architecture: amd64\n"),
        file("var/lib/dpkg/status.d/libssl3", "Package: libssl3\nVersion: 3.0.15-1~deb12u1\n"
                                              "Architecture: amd64\nSource: openssl\n"),
        file("var/lib/dpkg/status.d/libssl3.md5sums", "d41d8cd98f00b204e9800998ecf8427e  x\n"),
    ]))
    found = inventory_of(store, image(store, [layer]))
    got = {(p.name, p.version, p.advisory_name, p.advisory_version, p.path)
           for p in found.packages}
    assert got == {
        ("base-files", "12.4+deb12u15", "base-files", "12.4+deb12u15",
         "var/lib/dpkg/status.d/base"),
        ("libssl3", "3.0.15-1~deb12u1", "openssl", "3.0.15-1~deb12u1",
         "var/lib/dpkg/status.d/libssl3")}
    assert found.problems == ()


@pytest.mark.parametrize("os_release,kind,ecosystem", [
    ('ID=ubuntu\nVERSION_ID="22.04"\n', "deb", "Ubuntu:22.04"),
    ('ID=debian\nVERSION_ID="11"\n', "deb", "Debian:11"),
    ("ID=alpine\nVERSION_ID=3.19.1\n", "apk", "Alpine:v3.19"),
    ('ID="almalinux"\nVERSION_ID="9.4"\n', "rpm", "AlmaLinux:9"),
])
def test_the_ecosystem_follows_osv_names(os_release: str, kind: str, ecosystem: str) -> None:
    from moorage.scan.inventory.catalogers.osrelease import parse
    from moorage.scan.inventory.combine import ecosystem as ecosystem_of

    assert ecosystem_of(parse(os_release), kind) == ecosystem
