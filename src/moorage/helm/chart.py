"""Helm chart rules, pure: media types, `Chart.yaml` validation, tags, file names.

A chart is stored as one OCI artifact, the way Helm 3/4 push it: the config blob is the chart's
metadata as JSON (its `Chart.yaml`), the first layer the packaged `.tgz`, an optional layer the
`.prov` file. Everything here is a function of bytes and strings: no I/O.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import semver

CONFIG_TYPE = "application/vnd.cncf.helm.config.v1+json"
CHART_TYPE = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
PROV_TYPE = "application/vnd.cncf.helm.chart.provenance.v1.prov"
# Helm 2 era pushes (chart-museum-oci, helm 3.0 experimental) used this layer type
LEGACY_CHART_TYPE = "application/tar+gzip"
CHART_TYPES = frozenset({CHART_TYPE, LEGACY_CHART_TYPE})

# Helm's own rule for chart names (pkg/chart/v2/metadata.go): lowercase letters, digits,
# dashes and dots, starting and ending with a letter or digit. It has no '/', '\', '..'
# nor anything else a path could be made of; names that Helm would refuse are refused here.
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
MAX_NAME = 128
MAX_VERSION = 128
MAX_TEXT = 16 * 1024  # description, icon URL...: what an index may carry of one field
MAX_LIST = 200  # keywords, maintainers, dependencies
API_VERSIONS = ("v1", "v2")


class ChartInvalid(ValueError):
    """A chart that breaks the rules; the message says which, in words for the uploader."""


@dataclass(frozen=True)
class ChartMeta:
    """What the index keeps of a chart version (the rest stays in `raw`)."""

    name: str
    version: str
    api_version: str
    app_version: str = ""
    description: str = ""
    icon: str = ""
    keywords: list[str] = field(default_factory=list)
    maintainers: list[dict[str, Any]] = field(default_factory=list)
    dependencies: list[dict[str, Any]] = field(default_factory=list)
    deprecated: bool = False
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        return version_tag(self.version)

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}.tgz"


def version_tag(version: str) -> str:
    """The OCI tag of a chart version: '+' is not allowed in tags, Helm maps it to '_'."""
    return version.replace("+", "_")


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise ChartInvalid("Chart.yaml has no name")
    if len(name) > MAX_NAME or not NAME_RE.fullmatch(name) or ".." in name:
        shown = name[:60]
        raise ChartInvalid(f"chart name {shown!r} is not valid: use lowercase letters, digits, "
                           "'-' and '.', starting and ending with a letter or digit (no '/' "
                           "or other path characters)")
    return name


def check_version(version: object) -> str:
    """SemVer 2, strictly (what `semver` parses): Helm's index orders versions by it."""
    if isinstance(version, (int, float)) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) or not version:
        raise ChartInvalid("Chart.yaml has no version")
    if len(version) > MAX_VERSION or not semver.Version.is_valid(version):
        raise ChartInvalid(f"chart version {version[:60]!r} is not a valid SemVer 2 version "
                           "(such as 1.2.3, 1.0.0-rc.1 or 2.0.0+build.5)")
    return version


def _text(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key, "")
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # appVersion: 1.16 in YAML is a number
    if not isinstance(value, str):
        raise ChartInvalid(f"Chart.yaml field {key!r} must be a string")
    if len(value) > MAX_TEXT:
        raise ChartInvalid(f"Chart.yaml field {key!r} is longer than {MAX_TEXT} characters")
    return value


def _list(raw: dict[str, Any], key: str, kind: type) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
        raise ChartInvalid(f"Chart.yaml field {key!r} must be a list of "
                           f"{'strings' if kind is str else 'mappings'}")
    if len(value) > MAX_LIST:
        raise ChartInvalid(f"Chart.yaml field {key!r} has more than {MAX_LIST} entries")
    return value


def validate(raw: object) -> ChartMeta:
    """Check a chart's metadata (Chart.yaml parsed, or Helm's OCI config) and keep it."""
    if not isinstance(raw, dict):
        raise ChartInvalid("Chart.yaml is not a mapping")
    api_version = raw.get("apiVersion") or ""
    if api_version not in API_VERSIONS:
        raise ChartInvalid(f"chart apiVersion {str(api_version)[:20]!r} is not supported: "
                           "use v1 or v2")
    name = check_name(raw.get("name"))
    version = check_version(raw.get("version"))
    deprecated = raw.get("deprecated", False)
    return ChartMeta(
        name=name, version=version, api_version=api_version,
        app_version=_text(raw, "appVersion"), description=_text(raw, "description"),
        icon=_text(raw, "icon"), keywords=[str(k)[:200] for k in _list(raw, "keywords", str)],
        maintainers=_list(raw, "maintainers", dict),
        dependencies=_list(raw, "dependencies", dict), deprecated=bool(deprecated),
        raw={**raw, "version": version, "appVersion": _text(raw, "appVersion") or None})


def parse_config(data: bytes) -> ChartMeta:
    """Helm's OCI config blob: the chart's metadata as JSON."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ChartInvalid("the chart's config blob is not JSON") from None
    return validate(raw)


def config_bytes(meta: ChartMeta) -> bytes:
    """The config blob Moorage writes for a chart uploaded through the chart repository API:
    the metadata as Helm would write it (its fields, nulls left out)."""
    raw = {str(k): v for k, v in meta.raw.items() if v not in (None, "", [], {})}
    try:  # YAML may hold what JSON has not (dates, keys that are not strings): as text
        return json.dumps(raw, separators=(",", ":"), default=str).encode()
    except (TypeError, ValueError) as exc:
        raise ChartInvalid(f"Chart.yaml holds values that cannot be stored: {exc}"[:300]) \
            from None


def chart_manifest(config: tuple[str, int], chart: tuple[str, int],
                   prov: tuple[str, int] | None, meta: ChartMeta, created: str) -> bytes:
    """An OCI image manifest for a chart, as `helm push` writes it (no artifactType)."""
    layers = [{"mediaType": CHART_TYPE, "digest": chart[0], "size": chart[1]}]
    if prov is not None:
        layers.append({"mediaType": PROV_TYPE, "digest": prov[0], "size": prov[1]})
    annotations = {"org.opencontainers.image.title": meta.name,
                   "org.opencontainers.image.version": meta.version,
                   "org.opencontainers.image.created": created}
    if meta.description:
        annotations["org.opencontainers.image.description"] = meta.description[:1024]
    body = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": CONFIG_TYPE, "digest": config[0], "size": config[1]},
            "layers": layers, "annotations": annotations}
    return json.dumps(body, separators=(",", ":")).encode()


def split_filename(stem: str) -> tuple[str, str] | None:
    """`mychart-1.2.3` → ("mychart", "1.2.3"); the version starts at the first '-<digit>'
    that makes a SemVer version (chart names may contain '-<digit>' themselves)."""
    for i, ch in enumerate(stem):
        if ch == "-" and i + 1 < len(stem) and stem[i + 1].isdigit():
            name, version = stem[:i], stem[i + 1:]
            if semver.Version.is_valid(version) and NAME_RE.fullmatch(name or "-"):
                return name, version
    return None


def sort_versions(versions: list[str]) -> list[str]:
    """Newest first, by SemVer precedence (what Helm's index sorts by)."""
    def key(v: str) -> semver.Version:
        try:
            return semver.Version.parse(v)
        except ValueError:
            return semver.Version(0)
    return sorted(versions, key=key, reverse=True)
