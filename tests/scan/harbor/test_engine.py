"""The adapter as a scan engine, against an image pushed with skopeo: the adapter process
pulls it from the real server with the credential Moorage minted, reads its dpkg database,
and its report becomes findings. The credential pulls that repository and nothing else; an
adapter that never finishes, or answers garbage, is a clear problem."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import Callable

import httpx
import pytest

from moorage.access.errors import Invalid
from moorage.access.principal import Principal
from moorage.scan.engines.base import ScanTarget
from moorage.scan.engines.harbor import AdapterError, HarborEngine, ScannerService
from moorage.scan.model import Distro, Inventory, Package
from tests.scan.harbor.conftest import AdapterProcess, Pushed
from tests.support.server import MoorageServer
from tests.web.helpers import api, unique

pytestmark = [pytest.mark.clients, pytest.mark.slow]

ZLIB = Package("deb", "Debian:12", "zlib1g", "1:1.2.13.dfsg-1", source_name="zlib",
               path="var/lib/dpkg/status")
INVENTORY = Inventory(Distro("debian", "12"), (ZLIB,), ())
# The adapter's vulnerability database: two installed packages, one version not installed.
DB = [
    {"package": "zlib1g", "version": "1:1.2.13.dfsg-1", "id": "CVE-2023-45853",
     "fix_version": "1:1.2.13.dfsg-2", "severity": "Critical",
     "description": "MiniZip in zlib has an integer overflow",
     "links": ["https://security-tracker.debian.org/tracker/CVE-2023-45853", "javascript:x"],
     "score_v3": 9.8, "vector_v3": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
     "cwe_ids": ["CWE-190"]},
    {"package": "adduser", "version": "3.134", "id": "TEMP-0000001-ADDUSER",
     "severity": "Negligible"},
    {"package": "adduser", "version": "0.1", "id": "CVE-1999-0001", "severity": "High"},
]


def register(server: MoorageServer, adapter: AdapterProcess) -> str:
    name = unique("eng")
    resp = api(server, "POST", "/scanners", json={"name": name, "url": adapter.url})
    assert resp.status_code == 201, resp.text
    return name


def engine_of(scanners: ScannerService, name: str, **changes: object) -> HarborEngine:
    service = dataclasses.replace(scanners, **changes)  # type: ignore[arg-type]
    found = [e for e in service.engines() if e.adapter == name]
    assert len(found) == 1
    return found[0]


def target(pushed: Pushed) -> ScanTarget:
    return ScanTarget(pushed.repository, pushed.digest, "", INVENTORY)


def test_the_adapter_pulls_with_its_credential_and_its_findings_come_back(
        server: MoorageServer, adapters: Callable[..., AdapterProcess], pushed: Pushed,
        other: Pushed, scanners: ScannerService) -> None:
    adapter = adapters(db=DB)
    name = register(server, adapter)
    engine = engine_of(scanners, name)
    assert engine.name == f"harbor:{name}"
    findings = asyncio.run(engine.findings(target(pushed)))
    by_id = {f.id: f for f in findings}
    assert set(by_id) == {"CVE-2023-45853", "TEMP-0000001-ADDUSER"}
    zlib = by_id["CVE-2023-45853"]
    assert zlib.package == ZLIB  # the inventory's package: kind deb, Debian:12
    assert zlib.fixed_versions == ("1:1.2.13.dfsg-2",)
    assert (zlib.severity.level, zlib.severity.score, zlib.severity.vector) == \
        ("critical", 9.8, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
    assert zlib.links == ("https://security-tracker.debian.org/tracker/CVE-2023-45853",)
    assert zlib.summary == "MiniZip in zlib has an integer overflow"
    assert zlib.engines == (f"harbor:{name}",)
    adduser = by_id["TEMP-0000001-ADDUSER"]
    # not in the inventory handed over: the adapter's name, no kind or ecosystem guessed
    assert (adduser.package.kind, adduser.package.ecosystem, adduser.package.name,
            adduser.package.version) == ("", "", "adduser", "3.134")
    assert adduser.severity.level == "low" and adduser.fixed_versions == ()

    # what the adapter was asked, and what it did with the credential
    scan = [r for r in adapter.records("requests.jsonl") if "scan" in r][0]
    assert scan["content_type"] == \
        "application/vnd.scanner.adapter.scan.request+json; version=1.0"
    request = scan["request"]
    assert request["registry"]["url"] == server.url
    assert request["artifact"] == {"repository": pushed.repository, "digest": pushed.digest,
                                   "mime_type": "application/vnd.oci.image.manifest.v1+json"}
    reports = [r for r in adapter.records("requests.jsonl") if "report" in r]
    assert reports and all(r["accept"] ==
                           "application/vnd.security.vulnerability.report; version=1.1"
                           for r in reports)
    pulls = adapter.records("pulls.jsonl")
    assert len(pulls) == 2 and all(p["status"] == 200 for p in pulls)  # manifest, one layer
    authorization = request["registry"]["authorization"]
    assert authorization.startswith("Bearer ")

    headers = {"Authorization": authorization}
    own = httpx.get(f"{server.url}/v2/{pushed.repository}/manifests/{pushed.digest}",
                    headers=headers, timeout=120,
                    params=None)
    assert own.status_code == 200
    elsewhere = httpx.get(f"{server.url}/v2/{other.repository}/manifests/{other.digest}",
                          headers=headers, timeout=120)
    assert elsewhere.status_code in (401, 403), elsewhere.text
    blob = b"not allowed"
    push = httpx.post(f"{server.url}/v2/{pushed.repository}/blobs/uploads/", headers=headers,
                      params={"digest": "sha256:" + hashlib.sha256(blob).hexdigest()},
                      content=blob, timeout=120)
    assert push.status_code in (401, 403), push.text
    delete = httpx.delete(f"{server.url}/v2/{pushed.repository}/manifests/{pushed.digest}",
                          headers=headers, timeout=120)
    assert delete.status_code in (401, 403, 405), delete.text
    # no management API either
    assert httpx.get(f"{server.url}/api/v1/users/me", headers=headers,
                     timeout=120).status_code == 401


def test_an_adapter_that_never_finishes_is_given_up_at_the_timeout(
        server: MoorageServer, adapters: Callable[..., AdapterProcess], pushed: Pushed,
        scanners: ScannerService) -> None:
    name = register(server, adapters(mode="never"))
    engine = engine_of(scanners, name, timeout=3.0)
    with pytest.raises(AdapterError) as raised:
        asyncio.run(engine.findings(target(pushed)))
    message = str(raised.value)
    assert f"scanner adapter {name}" in message
    assert "did not finish within the scan timeout of 3 s" in message
    assert pushed.digest in message


@pytest.mark.parametrize(("mode", "words"), [
    ("malformed", "`vulnerabilities` is not a list"),
    ("oversized", "larger than the 1048576 bytes allowed"),
])
def test_a_bad_report_is_a_clear_problem(
        server: MoorageServer, adapters: Callable[..., AdapterProcess], pushed: Pushed,
        scanners: ScannerService, mode: str, words: str) -> None:
    name = register(server, adapters(mode=mode, db=DB))
    engine = engine_of(scanners, name, max_report_bytes=1 << 20)
    with pytest.raises(AdapterError) as raised:
        asyncio.run(engine.findings(target(pushed)))
    assert words in str(raised.value) and f"scanner adapter {name}" in str(raised.value)


def test_a_disabled_adapter_is_no_engine(
        server: MoorageServer, adapters: Callable[..., AdapterProcess],
        scanners: ScannerService) -> None:
    name = register(server, adapters())
    assert api(server, "PATCH", f"/scanners/{name}", json={"enabled": False}
               ).status_code == 200
    assert name not in [e.adapter for e in scanners.engines()]


def test_an_adapter_that_does_not_answer_is_refused_after_the_call_timeout(
        adapters: Callable[..., AdapterProcess], scanners: ScannerService) -> None:
    adapter = adapters(mode="hang")
    admin = Principal(1, "admin", "user", is_admin=True)
    service = dataclasses.replace(scanners, manage_timeout=1.0)
    with pytest.raises(Invalid) as raised:
        asyncio.run(service.add(admin, unique("hung"), adapter.url))
    assert "did not answer the metadata request within 1 s" in str(raised.value)
