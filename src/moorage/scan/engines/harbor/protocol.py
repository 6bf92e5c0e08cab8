"""Harbor's pluggable scanner adapter API (v1.1 of the vulnerability report), as data: the
media types, the adapter's metadata, and a report turned into `Finding`s.

Pure functions over parsed JSON, so that the client (client.py) stays about HTTP and these
rules are tested without a network. Everything an adapter sends is bounded and checked: an
adapter is a separate program that may be broken, outdated or hostile, and a bad answer
becomes an `AdapterError` with words a user can act on, never a crash.

The spec: github.com/goharbor/pluggable-scanner-spec (api/spec/scanner-adapter-openapi-*.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from moorage.scan.model import Finding, Inventory, Package, Severity

# What Moorage's images are (the artifact MIME types an adapter must consume).
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
IMAGE_MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
# The report Moorage reads: the v1.1 vulnerability report (preferred_cvss, cwe_ids, ...).
REPORT_V11 = "application/vnd.security.vulnerability.report; version=1.1"
SCAN_REQUEST = "application/vnd.scanner.adapter.scan.request+json; version=1.0"
METADATA_ACCEPT = ("application/vnd.scanner.adapter.metadata+json; version=1.1, "
                   "application/vnd.scanner.adapter.metadata+json; version=1.0, "
                   "application/json;q=0.5")

# Bounds on what an adapter's answers may hold.
MAX_CAPABILITIES = 50
MAX_MIME_TYPES = 50
MAX_TEXT = 255
MAX_DESCRIPTION = 2000
MAX_LINKS = 20
MAX_VULNERABILITIES = 100_000

# The spec's severity scale -> Moorage's levels. Negligible ("only theoretical in nature")
# has no level of its own here: it is the least of them, low.
_LEVELS = {"critical": "critical", "high": "high", "medium": "medium", "low": "low",
           "negligible": "low", "unknown": "unknown"}


class AdapterError(Exception):
    """What went wrong with an adapter, in words for its administrator (never a secret)."""


def normal_media_type(value: str) -> str:
    """`Type; version=1.1` and `type;version=1.1` are one media type."""
    main, _, params = value.partition(";")
    parts = [main.strip().lower()]
    parts += sorted(p.strip().lower().replace(" ", "") for p in params.split(";") if p.strip())
    return "; ".join(parts)


@dataclass(frozen=True)
class Metadata:
    """The scanner behind an adapter, and whether it can do what Moorage asks of it."""

    name: str
    vendor: str
    version: str
    consumes: tuple[str, ...]  # the image manifest types it scans (of IMAGE_MANIFESTS)
    produces: tuple[str, ...]  # the report types of the capability that scans them
    properties: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {"scanner": {"name": self.name, "vendor": self.vendor, "version": self.version},
                "consumes_mime_types": list(self.consumes),
                "produces_mime_types": list(self.produces), "properties": self.properties}


def _text(value: object, limit: int = MAX_TEXT) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _strings(value: object, limit: int) -> list[str]:
    if not isinstance(value, list):
        return []
    return [v[:MAX_TEXT] for v in value[:limit] if isinstance(v, str)]


def parse_metadata(data: object) -> Metadata:
    """The adapter's `GET /api/v1/metadata` answer, checked: it must scan OCI or Docker image
    manifests and produce the v1.1 vulnerability report for them."""
    if not isinstance(data, Mapping):
        raise AdapterError("its metadata is not a JSON object (is this a Harbor scanner "
                           "adapter?)")
    scanner = data.get("scanner")
    capabilities = data.get("capabilities")
    if not isinstance(scanner, Mapping) or not isinstance(capabilities, list):
        raise AdapterError("its metadata has no `scanner` and `capabilities` (is this a "
                           "Harbor scanner adapter?)")
    name = _text(scanner.get("name"))
    if not name:
        raise AdapterError("its metadata does not name the scanner")
    wanted = normal_media_type(REPORT_V11)
    offered: list[str] = []
    for capability in capabilities[:MAX_CAPABILITIES]:
        if not isinstance(capability, Mapping):
            continue
        if capability.get("type", "vulnerability") != "vulnerability":
            continue  # an SBOM capability (spec 1.2) is not what is asked for
        consumes = _strings(capability.get("consumes_mime_types"), MAX_MIME_TYPES)
        produces = _strings(capability.get("produces_mime_types"), MAX_MIME_TYPES)
        offered += produces
        images = tuple(t for t in IMAGE_MANIFESTS
                       if t in {normal_media_type(c) for c in consumes})
        if images and wanted in {normal_media_type(p) for p in produces}:
            raw = data.get("properties")
            props = {str(k)[:MAX_TEXT]: v[:MAX_TEXT] for k, v in list(raw.items())[:50]
                     if isinstance(v, str)} if isinstance(raw, Mapping) else {}
            return Metadata(name, _text(scanner.get("vendor")), _text(scanner.get("version")),
                            images, tuple(produces), props)
    if not offered:
        raise AdapterError(f"scanner {name} offers no vulnerability report for OCI or Docker "
                           f"image manifests")
    raise AdapterError(f"scanner {name} cannot produce the v1.1 vulnerability report "
                       f"({REPORT_V11}) for OCI or Docker image manifests; it produces "
                       f"{', '.join(sorted(set(offered))[:5])}")


def scan_request(registry_url: str, authorization: str, repository: str, digest: str,
                 mime_type: str, tag: str = "") -> dict[str, Any]:
    """The body of `POST /api/v1/scan` (ScanRequest)."""
    artifact: dict[str, str] = {"repository": repository, "digest": digest,
                                "mime_type": mime_type}
    if tag:
        artifact["tag"] = tag
    return {"registry": {"url": registry_url, "authorization": authorization},
            "artifact": artifact}


# -- the report ---------------------------------------------------------------------------
def _score(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, (int, float)) and 0.0 <= float(value) <= 10.0:
        return float(value)
    return None


def _severity(item: Mapping[str, Any]) -> Severity:
    level = _LEVELS.get(_text(item.get("severity")).lower(), "unknown")
    score = vector = None
    for details in (item.get("preferred_cvss"), item.get("cvss")):
        if isinstance(details, Mapping):
            for s_key, v_key in (("score_v3", "vector_v3"), ("score_v2", "vector_v2")):
                score = _score(details.get(s_key))
                if score is not None:
                    vector = _text(details.get(v_key), 512) or None
                    return Severity(level, score, vector)
    score = _score(item.get("cvss3_score") or item.get("cve3_score"))  # the v1.0 fields
    if score is not None:
        vector = _text(item.get("cvss3_vector"), 512) or None
    return Severity(level, score, vector)


def _links(value: object) -> tuple[str, ...]:
    return tuple(link for link in _strings(value, MAX_LINKS * 5)
                 if link.startswith(("https://", "http://")))[:MAX_LINKS]


def _fixes(value: object) -> tuple[str, ...]:
    """`fix_version` ("" for none; Trivy lists several as "1.2.3, 1.3.1")."""
    text = _text(value)
    return tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))


def package_of(name: str, version: str, inventory: Inventory) -> Package:
    """The inventory's package an adapter names, when exactly one installed package has that
    name (or source name) and version; otherwise the adapter's name and version alone, of
    no known kind or ecosystem (a report does not say which package manager it means)."""
    found = [p for p in inventory.packages if p.name == name and p.version == version]
    if not found:
        found = [p for p in inventory.packages
                 if p.source_name == name and (p.source_version or p.version) == version]
    kinds = {(p.kind, p.ecosystem, p.name) for p in found}
    if len(kinds) == 1:
        return found[0]
    return Package(kind="", ecosystem="", name=name, version=version)


@dataclass(frozen=True)
class Converted:
    findings: tuple[Finding, ...]
    problems: tuple[str, ...]


def findings_of_report(report: object, engine: str, inventory: Inventory) -> Converted:
    """A v1.1 report's vulnerabilities as findings of `engine` ("harbor:<adapter>"); items
    that are not vulnerabilities (no id or no package) are skipped and counted."""
    if not isinstance(report, Mapping):
        raise AdapterError("its report is not a JSON object")
    items = report.get("vulnerabilities")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise AdapterError("its report's `vulnerabilities` is not a list")
    if len(items) > MAX_VULNERABILITIES:
        raise AdapterError(f"its report lists {len(items)} vulnerabilities, more than "
                           f"{MAX_VULNERABILITIES}")
    findings: dict[tuple[str, str, str], Finding] = {}
    skipped = 0
    for item in items:
        ident = _text(item.get("id")).strip() if isinstance(item, Mapping) else ""
        name = _text(item.get("package"), 512).strip() if isinstance(item, Mapping) else ""
        if not ident or not name:
            skipped += 1
            continue
        version = _text(item.get("version"))
        key = (ident, name, version)
        if key in findings:
            continue
        findings[key] = Finding(
            id=ident, aliases=(), package=package_of(name, version, inventory),
            fixed_versions=_fixes(item.get("fix_version")), severity=_severity(item),
            summary=_text(item.get("description"), MAX_DESCRIPTION),
            links=_links(item.get("links")), engines=(engine,))
    problems = (f"{skipped} items of its report name no vulnerability id or package and were "
                f"skipped",) if skipped else ()
    return Converted(tuple(findings.values()), problems)


def error_message(data: object) -> str:
    """The message of an ErrorResponse ({"error": {"message": ...}}), bounded."""
    if isinstance(data, Mapping) and isinstance(data.get("error"), Mapping):
        return _text(data["error"].get("message"), 300)
    return ""

