"""Version order per OSV ecosystem, through each ecosystem's maintained library.

`version_key(ecosystem, version)` turns a version into an object that sorts as the
ecosystem says, or raises NotComparable (an unknown ecosystem, or a version its rules reject);
matching turns that into "not comparable" for one package and advisory, never an error.

| ecosystem (OSV)                         | order                                          |
|-----------------------------------------|------------------------------------------------|
| PyPI                                    | PEP 440 (`packaging`)                          |
| Debian, Ubuntu                          | dpkg (`python-debian`)                         |
| Alpine, Wolfi, Chainguard               | apk (our own, apk.py)                          |
| npm, crates.io, Go, range type SEMVER   | SemVer 2.0 (`semver`); Go without its `v` and `+incompatible` |
| Maven                                   | Maven's ComparableVersion (`univers`)          |
| Red Hat, Rocky Linux, AlmaLinux, SUSE, openSUSE, Mageia, openEuler, Photon OS | rpm (`univers`) |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moorage.scan.advisories.apk import ApkVersion

MAX_VERSION_LENGTH = 256


class NotComparable(ValueError):
    """The version cannot be placed in its ecosystem's order."""


def base_ecosystem(ecosystem: str) -> str:
    """"Debian:12" → "Debian", "Alpine:v3.20" → "Alpine"."""
    return ecosystem.split(":", 1)[0]


def _pypi(text: str) -> Any:
    from packaging.version import InvalidVersion, Version
    try:
        return Version(text)
    except InvalidVersion as exc:
        raise NotComparable(str(exc)) from None


def _dpkg(text: str) -> Any:
    from debian.debian_support import Version
    try:
        return Version(text)
    except ValueError as exc:
        raise NotComparable(str(exc)) from None


def _apk(text: str) -> Any:
    try:
        return ApkVersion(text)
    except ValueError as exc:
        raise NotComparable(str(exc)) from None


def _semver(text: str) -> Any:
    import semver
    try:
        return semver.Version.parse(text, optional_minor_and_patch=True)
    except (ValueError, TypeError) as exc:
        raise NotComparable(str(exc)) from None


def _go(text: str) -> Any:
    """Go module versions are SemVer with a `v` prefix; `+incompatible` marks a v2+ module
    without go.mod and does not change its place (build metadata has none in SemVer). The
    toolchain (`stdlib`) is written `go1.21.5` in binaries' build information, and `1.21.5`
    in advisories."""
    if text.startswith("go") and text[2:3].isdigit():
        text = text[2:]
    text = text.removeprefix("v").removesuffix("+incompatible")
    return _semver(text)


def _univers(kind: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        from univers import versions
        try:
            return getattr(versions, kind)(text)
        except Exception as exc:  # univers raises several types for a bad version
            raise NotComparable(f"{kind}: {exc}") from None
    return parse


_BY_ECOSYSTEM: dict[str, Callable[[str], Any]] = {
    "PyPI": _pypi,
    "Debian": _dpkg, "Ubuntu": _dpkg,
    "Alpine": _apk, "Wolfi": _apk, "Chainguard": _apk,
    "npm": _semver, "crates.io": _semver, "Go": _go,
    "Maven": _univers("MavenVersion"),
    **{name: _univers("RpmVersion") for name in (
        "Red Hat", "Rocky Linux", "AlmaLinux", "SUSE", "openSUSE", "Mageia", "openEuler",
        "Photon OS")},
}


def supported(ecosystem: str) -> bool:
    return base_ecosystem(ecosystem) in _BY_ECOSYSTEM


def version_key(ecosystem: str, version: str, range_type: str = "ECOSYSTEM") -> Any:
    """A sortable object for `version` in `ecosystem` (SEMVER ranges compare as SemVer
    whatever the ecosystem, Go's `v` aside). Raises NotComparable."""
    if not isinstance(version, str) or not version or len(version) > MAX_VERSION_LENGTH:
        raise NotComparable("empty or over-long version")
    base = base_ecosystem(ecosystem)
    if range_type == "SEMVER":
        return _go(version) if base == "Go" else _semver(version.removeprefix("v"))
    parse = _BY_ECOSYSTEM.get(base)
    if parse is None:
        raise NotComparable(f"no version order for ecosystem {base!r}")
    return parse(version)
