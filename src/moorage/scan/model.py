"""What the scanner's parts hand each other: what an image holds (an Inventory of Packages),
what is known to be vulnerable (Advisories), and what the two make together (Findings).

Plain frozen dataclasses with no behaviour beyond naming things, so that the parts (layer
reading and cataloguing in inventory/, advisory import and matching in advisories/, the
engines, reports and SBOMs) agree on one vocabulary and can be built and tested apart.

Names follow the OSV schema where it has one (ecosystem, name, ranges, events, aliases,
severity), and Syft's package types for `kind`, so that an inventory compares with Syft's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Package kinds, as Syft names them (its CycloneDX `syft:package:type` property).
KINDS = ("deb", "apk", "rpm", "python", "npm", "go-module", "java-archive")
# Severity levels, worst first; "unknown" when no score or level is given.
LEVELS = ("critical", "high", "medium", "low", "unknown")


@dataclass(frozen=True)
class Distro:
    """The distribution an image was built from, read from `etc/os-release` (or
    `usr/lib/os-release`): `id` and `version_id` as the file spells them."""

    id: str  # "debian", "alpine", "ubuntu", "rocky", ...
    version_id: str  # "12", "3.20.3", ...
    pretty_name: str = ""


@dataclass(frozen=True)
class Package:
    """One installed package, as the running container would see it."""

    kind: str  # one of KINDS
    ecosystem: str  # OSV ecosystem, with the release for distributions: "Debian:12",
    #                 "Alpine:v3.20", "PyPI", "npm", "Go", "Maven"
    name: str  # as installed: dpkg binary package, apk package, distribution name for
    #            Python (not normalised), Maven "group:artifact", Go module path
    version: str
    # the source package advisories of distributions are keyed by (dpkg Source, apk origin,
    # rpm source name); None when it is the package itself
    source_name: str | None = None
    source_version: str | None = None
    path: str = ""  # the file it was read from, inside the image ("var/lib/dpkg/status")
    layer: str = ""  # digest of the layer that brought it (its last writer)
    purl: str = ""  # package URL (github.com/package-url/purl-spec)
    licenses: tuple[str, ...] = ()
    arch: str = ""
    # the inventory engines that saw it ("moorage", "syft"), set when inventories of
    # several engines are merged (engines/syft.py); empty: the built-in cataloguers alone
    engines: tuple[str, ...] = ()

    @property
    def advisory_name(self) -> str:
        """The name advisories for this package use."""
        return self.source_name or self.name

    @property
    def advisory_version(self) -> str:
        return self.source_version or self.version


@dataclass(frozen=True)
class Inventory:
    """Everything installed in one image (one platform of an index)."""

    distro: Distro | None
    packages: tuple[Package, ...]
    layers: tuple[str, ...]  # digests, bottom first
    # what could not be read, in words a user can act on ("layer sha256:… is truncated",
    # "usr/bin/app looks like a Go binary but has no build information"); a scan with
    # problems still finishes and reports what it found
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Event:
    """An OSV range event: exactly one of the four is set."""

    introduced: str | None = None
    fixed: str | None = None
    last_affected: str | None = None
    limit: str | None = None


@dataclass(frozen=True)
class Range:
    type: str  # "ECOSYSTEM" | "SEMVER" | "GIT"
    events: tuple[Event, ...]


@dataclass(frozen=True)
class Affected:
    ecosystem: str  # as the advisory says: "PyPI", "Debian:12", "Alpine:v3.20"
    name: str
    ranges: tuple[Range, ...] = ()
    versions: tuple[str, ...] = ()  # explicitly listed affected versions


@dataclass(frozen=True)
class Severity:
    level: str  # one of LEVELS
    score: float | None = None  # CVSS base score, when a vector was given
    vector: str | None = None  # "CVSS:3.1/AV:N/..."


@dataclass(frozen=True)
class Advisory:
    id: str  # "GHSA-…", "PYSEC-…", "CVE-…", "ALPINE-CVE-…"
    aliases: tuple[str, ...]
    summary: str
    severity: Severity
    affected: tuple[Affected, ...]
    references: tuple[str, ...] = ()
    modified: str = ""  # RFC 3339, as the record says
    withdrawn: str | None = None


@dataclass(frozen=True)
class Finding:
    """A vulnerability of one installed package; advisories that are aliases of each other
    make one finding, named by its CVE when it has one."""

    id: str
    aliases: tuple[str, ...]
    package: Package
    fixed_versions: tuple[str, ...]  # empty: no fix known
    severity: Severity
    summary: str = ""
    links: tuple[str, ...] = ()
    engines: tuple[str, ...] = ("osv",)  # which engines found it
    accepted: str | None = None  # the allowlist entry's reason, when accepted


@dataclass
class ScanProblems:
    """Collects what a scan could not read, bounded so a hostile image cannot flood it."""

    limit: int = 200
    items: list[str] = field(default_factory=list)
    dropped: int = 0

    def add(self, problem: str) -> None:
        if len(self.items) < self.limit:
            self.items.append(problem[:500])
        else:
            self.dropped += 1

    def as_tuple(self) -> tuple[str, ...]:
        more = (f"and {self.dropped} more problems",) if self.dropped else ()
        return tuple(self.items) + more
