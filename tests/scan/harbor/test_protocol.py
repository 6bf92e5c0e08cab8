"""The adapter API's rules as pure functions: which metadata is an adapter Moorage can use,
how a v1.1 report becomes findings, how long Refresh-After is taken to be, and that the
secret Moorage calls an adapter with never shows and is sealed when encryption is on."""

from __future__ import annotations

from pathlib import Path

import pytest

from moorage.scan.engines.harbor.client import AdapterAuth, refresh_after
from moorage.scan.engines.harbor.protocol import (REPORT_V11, AdapterError, findings_of_report,
                                                  parse_metadata)
from moorage.scan.engines.harbor.store import SealError, seal, unseal
from moorage.scan.model import Inventory, Package
from moorage.store.keys import load_keyring

OCI = "application/vnd.oci.image.manifest.v1+json"
DOCKER = "application/vnd.docker.distribution.manifest.v2+json"


def metadata(consumes: list[str], produces: list[str], **capability: object) -> dict:
    return {"scanner": {"name": "Trivy", "vendor": "Aqua Security", "version": "0.50.1"},
            "capabilities": [{"consumes_mime_types": consumes, "produces_mime_types": produces,
                              **capability}]}


def test_metadata_of_a_v11_image_scanner_is_accepted() -> None:
    meta = parse_metadata(metadata([OCI, DOCKER], [
        "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0",
        "application/vnd.security.vulnerability.report;version=1.1"]))
    assert (meta.name, meta.vendor, meta.version) == ("Trivy", "Aqua Security", "0.50.1")
    assert meta.consumes == (OCI, DOCKER)


@pytest.mark.parametrize(("data", "words"), [
    ([], "not a JSON object"),
    ({"hello": "world"}, "is this a Harbor scanner adapter"),
    (metadata([OCI], ["application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0"]),
     "cannot produce the v1.1 vulnerability report"),
    (metadata(["application/vnd.cncf.helm.config.v1+json"], [REPORT_V11]),
     "cannot produce the v1.1"),
    (metadata([OCI], ["application/vnd.security.sbom.report+json; version=1.0"], type="sbom"),
     "offers no vulnerability report"),
    ({"scanner": {}, "capabilities": []}, "does not name the scanner"),
])
def test_metadata_that_does_not_fit_is_refused_with_the_reason(data: object,
                                                               words: str) -> None:
    with pytest.raises(AdapterError, match=words):
        parse_metadata(data)


def test_a_report_becomes_findings() -> None:
    openssl = Package("deb", "Debian:12", "libssl3", "3.0.11-1~deb12u2", source_name="openssl")
    inventory = Inventory(None, (openssl,), ())
    report = {"vulnerabilities": [
        {"id": "CVE-2024-0727", "package": "libssl3", "version": "3.0.11-1~deb12u2",
         "fix_version": "3.0.13-1~deb12u1, 3.0.14-1", "severity": "Medium",
         "preferred_cvss": {"score_v3": 5.5, "vector_v3": "CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/"
                                                         "C:N/I:N/A:H", "score_v2": 4.3},
         "links": ["https://avd.aquasec.com/nvd/cve-2024-0727", "file:///etc/passwd"],
         "cwe_ids": ["CWE-476"], "vendor_attributes": {"anything": [1, 2]}},
        {"id": "CVE-2023-0001", "package": "openssl", "version": "3.0.11-1~deb12u2",
         "severity": "High", "cvss3_score": "7.5"},  # by source name; the v1.0 score field
        {"id": "CVE-2023-0002", "package": "lodash", "version": "4.17.20", "severity": "odd",
         "preferred_cvss": {"score_v2": 99}},
        {"id": "CVE-2024-0727", "package": "libssl3", "version": "3.0.11-1~deb12u2"},  # again
        {"package": "nameless"}, "not an object", {"id": "CVE-1", "package": ""},
    ]}
    converted = findings_of_report(report, "harbor:trivy", inventory)
    first, by_source, unknown = converted.findings
    assert first.package == openssl and first.engines == ("harbor:trivy",)
    assert first.fixed_versions == ("3.0.13-1~deb12u1", "3.0.14-1")
    assert (first.severity.level, first.severity.score) == ("medium", 5.5)
    assert first.severity.vector.startswith("CVSS:3.1/")
    assert first.links == ("https://avd.aquasec.com/nvd/cve-2024-0727",)
    assert by_source.package == openssl and by_source.severity.score == 7.5
    assert (unknown.package.kind, unknown.package.ecosystem, unknown.package.name) == \
        ("", "", "lodash")
    assert (unknown.severity.level, unknown.severity.score) == ("unknown", None)
    assert converted.problems == ("3 items of its report name no vulnerability id or package "
                                  "and were skipped",)


@pytest.mark.parametrize("report", [[], {"vulnerabilities": {}}, {"vulnerabilities": "x"}])
def test_a_report_that_is_not_one_is_an_error(report: object) -> None:
    with pytest.raises(AdapterError):
        findings_of_report(report, "harbor:x", Inventory(None, (), ()))


def test_an_empty_report_is_no_findings() -> None:
    assert findings_of_report({"vulnerabilities": None}, "harbor:x",
                              Inventory(None, (), ())).findings == ()


@pytest.mark.parametrize(("header", "seconds"), [
    (None, 2.0), ("5", 5.0), ("0", 0.2), ("-3", 0.2), ("86400", 60.0), ("soon", 2.0),
    ("nan", 2.0)])
def test_refresh_after_is_bounded(header: str | None, seconds: float) -> None:
    assert refresh_after(header) == seconds


def test_the_adapter_secret_never_shows_and_is_sealed_with_encryption(tmp_path: Path) -> None:
    auth = AdapterAuth("apikey", "s3cr3t-key")
    assert "s3cr3t" not in repr(auth) and "s3cr3t" not in str(auth)
    assert auth.headers() == {"X-ScannerAdapter-API-Key": "s3cr3t-key"}
    assert AdapterAuth("basic", "u:p").headers() == {"Authorization": "Basic dTpw"}
    keyring = load_keyring("", tmp_path, environ={})
    sealed = seal("s3cr3t-key", "trivy", keyring)
    assert b"s3cr3t" not in sealed
    assert unseal(sealed, "trivy", keyring) == "s3cr3t-key"
    with pytest.raises(SealError):
        unseal(sealed, "other", keyring)  # bound to its adapter's row
    with pytest.raises(SealError, match="encryption at rest is off"):
        unseal(sealed, "trivy", None)
    assert unseal(seal("plain", "trivy", None), "trivy", None) == "plain"
