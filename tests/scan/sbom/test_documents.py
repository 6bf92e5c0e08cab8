"""CycloneDX 1.6 and SPDX 2.3 documents of inventories, checked by the formats' own
libraries: cyclonedx-python-lib's JSON schema validator and spdx-tools' parser and
validator. Purls are read back and compared field by field with the packages they name."""

from __future__ import annotations

import datetime
import json
import uuid
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from moorage.scan.engines.syft import parse_syft_cyclonedx
from moorage.scan.model import Distro, Inventory, Package
from moorage.scan.sbom import ImageRef, cyclonedx_document, sbom_document, spdx_document
from moorage.scan.sbom.image import MAX_PACKAGES
from moorage.scan.sbom.purls import make_purl
from tests.scan.sbom.conftest import DPKG_TRUTH, SYFT_SAMPLE, require_fixtures, syft_sample

LAYER_1 = "sha256:" + "1" * 64
LAYER_2 = "sha256:" + "2" * 64
IMAGE = ImageRef("team/app", "sha256:" + "f" * 64, "linux/amd64")
WHEN = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.timezone.utc)
SERIAL = uuid.UUID("00000000-0000-4000-8000-000000000001")


def built_inventory() -> Inventory:
    """An inventory as the built-in cataloguers make one: the fixture's dpkg packages
    (names and source versions from dpkg-query's ground truth) and one package of every
    other kind, in two layers."""
    require_fixtures()
    packages = []
    for line in DPKG_TRUTH.read_text().splitlines():
        name, version, source, source_version = line.split()
        packages.append(Package(
            kind="deb", ecosystem="Debian:12", name=name, version=version,
            source_name=source if source != name else None,
            source_version=source_version if source_version != version else None,
            path="var/lib/dpkg/status", layer=LAYER_1, arch="amd64",
            licenses=("GPL-2.0-or-later",) if name == "bash" else ()))
    packages += [
        Package("python", "PyPI", "Jinja2", "2.10", layer=LAYER_2, licenses=("BSD",),
                path="usr/lib/python3/dist-packages/Jinja2-2.10.dist-info/METADATA"),
        Package("python", "PyPI", "PyYAML", "5.3", layer=LAYER_2,
                licenses=("MIT OR Apache-2.0", "MIT")),
        Package("npm", "npm", "@babel/core", "7.23.0", layer=LAYER_2, licenses=("MIT",),
                path="app/node_modules/@babel/core/package.json"),
        Package("go-module", "Go", "github.com/gorilla/mux", "v1.8.0", layer=LAYER_2,
                path="usr/local/bin/app"),
        Package("java-archive", "Maven", "org.apache.logging.log4j:log4j-core", "2.14.1",
                layer=LAYER_2, licenses=("Apache-2.0",), path="app/lib/log4j-core.jar"),
        Package("apk", "Alpine:v3.20", "busybox", "1.36.1-r29", source_name="busybox",
                layer=LAYER_2, path="lib/apk/db/installed", arch="x86_64",
                licenses=("GPL-2.0-only",)),
    ]
    return Inventory(distro=Distro("debian", "12", "Debian GNU/Linux 12 (bookworm)"),
                     packages=tuple(packages), layers=(LAYER_1, LAYER_2))


def fixture_inventory() -> Inventory:
    """The packages of Syft's own SBOM of the fixture image."""
    return parse_syft_cyclonedx(SYFT_SAMPLE.read_bytes())


def assert_valid_cyclonedx(document: bytes) -> dict:
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(document.decode())
    assert errors is None, errors
    parsed = json.loads(document)
    assert parsed["specVersion"] == "1.6"
    return parsed


def assert_valid_spdx(document: bytes, tmp_path: Path) -> dict:
    path = tmp_path / f"{uuid.uuid4().hex}.spdx.json"
    path.write_bytes(document)
    parsed = parse_file(str(path))  # spdx-tools' own JSON parser
    messages = validate_full_spdx_document(parsed)
    assert messages == [], [m.validation_message for m in messages]
    doc = json.loads(document)
    assert doc["spdxVersion"] == "SPDX-2.3"
    return doc


def cdx_purls(doc: dict) -> dict[str, dict]:
    return {c["purl"]: c for c in doc["components"] if "purl" in c}


def spdx_purls(doc: dict) -> set[str]:
    return {ref["referenceLocator"] for p in doc["packages"]
            for ref in p.get("externalRefs", []) if ref["referenceType"] == "purl"}


@pytest.mark.parametrize("inventory", [built_inventory, fixture_inventory],
                         ids=["built", "syft-fixture"])
def test_both_documents_pass_their_validators_and_name_every_package(
        inventory, tmp_path: Path) -> None:
    inv = inventory()
    cdx = assert_valid_cyclonedx(cyclonedx_document(inv, IMAGE))
    spdx = assert_valid_spdx(spdx_document(inv, IMAGE), tmp_path)
    spdx_document(inv, IMAGE, validate=True)  # the writer's own validation agrees

    # every package once, plus the operating system (and, in SPDX, the image itself)
    libraries = [c for c in cdx["components"] if c["type"] == "library"]
    assert len(libraries) == len(inv.packages)
    [os_component] = [c for c in cdx["components"] if c["type"] == "operating-system"]
    assert (os_component["name"], os_component["version"]) == ("debian", "12")
    purposes = [p.get("primaryPackagePurpose") for p in spdx["packages"]]
    assert purposes.count("OPERATING_SYSTEM") == 1 and purposes.count("CONTAINER") == 1
    assert purposes.count("LIBRARY") == len(inv.packages)
    # the image is the subject of both
    assert cdx["metadata"]["component"]["type"] == "container"
    assert cdx["metadata"]["component"]["version"] == IMAGE.digest
    [described] = [r["relatedSpdxElement"] for r in spdx["relationships"]
                   if r["relationshipType"] == "DESCRIBES"]
    [image] = [p for p in spdx["packages"] if p["SPDXID"] == described]
    assert image["versionInfo"] == IMAGE.digest
    contained = {r["relatedSpdxElement"] for r in spdx["relationships"]
                 if r["relationshipType"] == "CONTAINS" and r["spdxElementId"] == described}
    assert len(contained) == len(inv.packages) + 1
    # CycloneDX's dependency graph: the image holds every component
    graph = {d["ref"]: d.get("dependsOn", []) for d in cdx["dependencies"]}
    refs = {c["bom-ref"] for c in cdx["components"]}
    assert set(graph[cdx["metadata"]["component"]["bom-ref"]]) == refs
    assert refs <= set(graph)
    # both formats name the same packages by the same purls
    assert set(cdx_purls(cdx)) == spdx_purls(spdx) - {IMAGE.purl()}
    assert len(cdx_purls(cdx)) == len(inv.packages)


def test_purls_round_trip_to_the_packages_they_name() -> None:
    inv = built_inventory()
    cdx = assert_valid_cyclonedx(cyclonedx_document(inv, IMAGE))
    by_purl = cdx_purls(cdx)
    expected = {
        ("deb", "bash"): ("debian", "bash", "5.2.15-2+b13",
                          {"arch": "amd64", "distro": "debian-12",
                           "upstream": "bash@5.2.15-2"}),
        ("deb", "libc6"): ("debian", "libc6", "2.36-9+deb12u14",
                           {"arch": "amd64", "distro": "debian-12", "upstream": "glibc"}),
        ("deb", "bsdutils"): ("debian", "bsdutils", "1:2.38.1-5+deb12u3",
                              {"arch": "amd64", "distro": "debian-12",
                               "upstream": "util-linux@2.38.1-5+deb12u3"}),
        ("pypi", "jinja2"): (None, "jinja2", "2.10", {}),
        ("npm", "core"): ("@babel", "core", "7.23.0", {}),
        ("golang", "mux"): ("github.com/gorilla", "mux", "v1.8.0", {}),
        ("maven", "log4j-core"): ("org.apache.logging.log4j", "log4j-core", "2.14.1", {}),
        ("apk", "busybox"): ("debian", "busybox", "1.36.1-r29",
                             {"arch": "x86_64", "distro": "debian-12"}),
    }
    parsed = {(p.type, p.name): p for p in map(PackageURL.from_string, by_purl)}
    for key, (namespace, name, version, qualifiers) in expected.items():
        purl = parsed[key]
        assert (purl.namespace, purl.name, purl.version, purl.qualifiers) == (
            namespace, name, version, qualifiers), key
    # and each component's purl names its own package: name and version agree
    for text, component in by_purl.items():
        purl = PackageURL.from_string(text)
        assert purl.version == component["version"]
        assert component["name"].lower().replace("_", "-").endswith(purl.name)


def test_our_purls_are_syfts_for_the_same_packages() -> None:
    """Purls made by purls.py from the package fields equal the ones Syft wrote for the
    fixture image (compared parsed: qualifier order is not significant)."""
    inv = fixture_inventory()
    assert len(inv.packages) == 91
    for package in inv.packages:
        ours = make_purl(package, inv.distro)
        assert ours is not None, package
        theirs = PackageURL.from_string(package.purl)
        assert ours.to_dict() == theirs.to_dict(), package.name


def test_documents_name_where_each_package_came_from() -> None:
    inv = built_inventory()
    cdx = assert_valid_cyclonedx(cyclonedx_document(inv, IMAGE))
    [bash] = [c for c in cdx["components"] if c["name"] == "bash"]
    props = {p["name"]: p["value"] for p in bash["properties"]}
    assert props["moorage:location:0:path"] == "/var/lib/dpkg/status"
    assert props["moorage:location:0:layerID"] == LAYER_1
    assert props["moorage:package:type"] == "deb"
    assert props["moorage:package:sourceVersion"] == "5.2.15-2"
    assert [lic["license"]["id"] for lic in bash["licenses"]] == ["GPL-2.0-or-later"]
    image_props = {p["name"]: p["value"]
                   for p in cdx["metadata"]["component"]["properties"]}
    assert image_props["moorage:image:platform"] == "linux/amd64"
    assert image_props["moorage:image:layer:1"] == LAYER_2

    spdx = json.loads(spdx_document(inv, IMAGE))
    [jinja] = [p for p in spdx["packages"] if p["name"] == "Jinja2"]
    assert jinja["sourceInfo"] == (
        "acquired package info from /usr/lib/python3/dist-packages/Jinja2-2.10.dist-info/"
        f"METADATA, layer {LAYER_2}")
    # "BSD" is no SPDX identifier: a LicenseRef declared with its text
    [ref] = [e for e in spdx["hasExtractedLicensingInfos"] if e["extractedText"] == "BSD"]
    assert jinja["licenseDeclared"] == ref["licenseId"]
    [pyyaml] = [p for p in spdx["packages"] if p["name"] == "PyYAML"]
    assert pyyaml["licenseDeclared"] == "(MIT OR Apache-2.0) AND MIT"


@pytest.mark.parametrize("format", ["cyclonedx", "spdx"])
def test_documents_are_deterministic_apart_from_time_and_serial(format: str) -> None:
    inv = built_inventory()
    shuffled = Inventory(inv.distro, tuple(reversed(inv.packages)), inv.layers)
    build = {"cyclonedx": cyclonedx_document, "spdx": spdx_document}[format]
    first = build(inv, IMAGE, generated_at=WHEN, serial=SERIAL)
    assert build(shuffled, IMAGE, generated_at=WHEN, serial=SERIAL) == first
    other = build(inv, IMAGE)  # now, a fresh serial
    assert other != first
    if format == "cyclonedx":
        a, b = json.loads(first), json.loads(other)
        for doc in (a, b):
            del doc["serialNumber"], doc["metadata"]["timestamp"]
        assert a == b
        assert json.loads(first)["serialNumber"] == SERIAL.urn
    else:
        a, b = json.loads(first), json.loads(other)
        for doc in (a, b):
            del doc["documentNamespace"], doc["creationInfo"]["created"]
        assert a == b
        assert json.loads(first)["creationInfo"]["created"] == "2026-12-01T12:00:00Z"


def test_exact_duplicates_are_listed_once_and_bounds_hold() -> None:
    bash = Package("deb", "Debian:12", "bash", "5.2.15-2+b13", path="var/lib/dpkg/status")
    inv = Inventory(None, (bash, bash), ())
    cdx = assert_valid_cyclonedx(cyclonedx_document(inv, IMAGE))
    assert [c["name"] for c in cdx["components"]] == ["bash"]
    too_many = Inventory(None, (bash,) * (MAX_PACKAGES + 1), ())
    with pytest.raises(ValueError, match="at most"):
        cyclonedx_document(too_many, IMAGE)
    with pytest.raises(ValueError, match="unknown SBOM format"):
        sbom_document("swid", inv, IMAGE)


def test_an_image_without_distribution_or_packages_is_still_a_valid_document(
        tmp_path: Path) -> None:
    empty = Inventory(None, (), ())
    cdx = assert_valid_cyclonedx(cyclonedx_document(empty, ImageRef("a", IMAGE.digest)))
    assert cdx.get("components", []) == []
    assert_valid_spdx(spdx_document(empty, ImageRef("a", IMAGE.digest)), tmp_path)


def test_the_syft_fixture_is_what_the_tests_expect() -> None:
    """Guards the fixture the other tests lean on: 88 deb and 3 python packages."""
    kinds = [p["value"] for c in syft_sample()["components"]
             for p in c.get("properties", []) if p["name"] == "syft:package:type"]
    assert sorted(set(kinds)) == ["deb", "python"] and len(kinds) == 91


def test_odd_package_fields_still_make_valid_documents(tmp_path: Path) -> None:
    """What a hostile or broken image can put in its package databases (names with
    spaces, slashes and non-ASCII, no version, licenses that are no SPDX expression, long
    text) ends up quoted in valid documents, never in a refused or broken one."""
    odd = (
        Package("python", "PyPI", "wéird name/../x", "", licenses=("GPL v2 / \"or\" later",)),
        Package("npm", "npm", "@scope/pkg", "1.0.0", licenses=("(MIT",)),
        Package("deb", "Debian:12", "", "1.0", licenses=("x" * 5000,)),
        Package("java-archive", "Maven", "no-group", "1", licenses=("MIT AND",)),
        Package("go-module", "Go", "stdlib", "go1.22.1", path="../../etc/passwd"),
        Package("rpm", "", "bash", "5.1-1", source_name="bash", source_version="5.1-1"),
    )
    inv = Inventory(Distro("", "", ""), odd, ())
    cdx = assert_valid_cyclonedx(cyclonedx_document(inv, IMAGE))
    assert len([c for c in cdx["components"] if c["type"] == "library"]) == len(odd)
    spdx = assert_valid_spdx(spdx_document(inv, IMAGE), tmp_path)
    assert len(spdx["packages"]) == len(odd) + 2
    extracted = {e["extractedText"] for e in spdx["hasExtractedLicensingInfos"]}
    assert {"GPL v2 / \"or\" later", "(MIT", "MIT AND", "x" * 500} <= extracted
