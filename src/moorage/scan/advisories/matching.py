"""Which installed packages advisories affect: the OSV schema's evaluation, per ecosystem.

`match(packages, store)` asks the store for the advisories of each package's lookup keys
((ecosystem, name), batched, through the index: no scan of the whole table), evaluates every
affected entry as OSV's `IsVulnerable` does, and merges the advisories that are aliases of
each other into one Finding, named by its CVE when it has one. Pure CPU work once the rows are
read: the scan job runs it in a worker thread, never on the event loop.

A version an ecosystem's rules reject, or an ecosystem with no known order, never raises: the
pair is reported in `MatchResult.not_comparable` and not counted as a finding.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from moorage.scan.advisories.osv import lookup_keys, normalize_ecosystem, normalize_name
from moorage.scan.advisories.severity import worst
from moorage.scan.advisories.versions import NotComparable, base_ecosystem, version_key
from moorage.scan.model import Advisory, Affected, Finding, Package, Range


class AdvisorySource(Protocol):
    def advisories_for(self, keys: Iterable[tuple[str, str]]
                       ) -> dict[tuple[str, str], list[Advisory]]:
        """The advisories stored under each of these (ecosystem, normalised name) keys."""
        ...


@dataclass
class MatchResult:
    findings: list[Finding] = field(default_factory=list)
    # (package name, package version, advisory id, why) for each pair that could not be
    # compared; the package may still be affected
    not_comparable: list[tuple[str, str, str, str]] = field(default_factory=list)


def _sort_key(ecosystem: str, range_type: str, value: str) -> tuple[int, Any]:
    # "0" sorts before any version (OSV); "*" as a limit is infinity
    if value == "0":
        return (0, None)
    if value == "*":
        return (2, None)
    return (1, version_key(ecosystem, value, range_type))


def _in_range(ecosystem: str, rng: Range, version: Any) -> tuple[bool, list[str]]:
    """OSV's IncludedInRanges for one range: (affected, fixed versions above `version`)."""
    point = (1, version)
    limits = [e.limit for e in rng.events if e.limit is not None]
    if limits and not any(point < _sort_key(ecosystem, rng.type, lim) for lim in limits):
        return False, []
    events = []
    for e in rng.events:
        value = e.introduced or e.fixed or e.last_affected
        if value is not None:  # limits were handled above
            events.append((_sort_key(ecosystem, rng.type, value), e))
    # stable sort by version; at one version, a fix or last_affected after the introduction
    events.sort(key=lambda pair: (pair[0], 0 if pair[1].introduced is not None else 1))
    vulnerable = False
    fixes = []
    for key, e in events:
        if e.introduced is not None and point >= key:
            vulnerable = True
        elif e.fixed is not None and point >= key:
            vulnerable = False
        elif e.last_affected is not None and point > key:
            vulnerable = False
        if e.fixed is not None and point < key and not fixes:
            fixes.append(e.fixed)  # the fix that ends the interval `version` is in
    return vulnerable, fixes if vulnerable else []


def affects(affected: Affected, ecosystem: str, version: str) -> tuple[bool, list[str]]:
    """OSV's IsVulnerable for one affected entry already known to name the package:
    (affected, the fixed versions that would end it). Raises NotComparable."""
    hit = version in affected.versions
    fixes: list[str] = []
    ranges = [r for r in affected.ranges if r.type in ("ECOSYSTEM", "SEMVER")]  # GIT: commits
    for rng in ranges:
        try:
            inside, fixed = _in_range(ecosystem, rng, version_key(ecosystem, version, rng.type))
        except NotComparable:
            if hit:  # listed as affected by name: the range adds only fix versions
                continue
            raise
        if inside:
            hit = True
            fixes.extend(fixed)
    if not hit and affected.versions and not ranges:
        # listed versions only: equal by the ecosystem's order ("1.0" == "1.0.0" in PEP 440)
        try:
            mine = version_key(ecosystem, version)
            hit = any(_equal(ecosystem, listed, mine) for listed in affected.versions)
        except NotComparable:
            pass
    return hit, fixes


def _equal(ecosystem: str, listed: str, mine: Any) -> bool:
    try:
        return bool(version_key(ecosystem, listed) == mine)
    except NotComparable:
        return False


def _names_package(affected: Affected, package: Package) -> bool:
    """The package's own ecosystem, or its release-less base for distributions."""
    mine = normalize_ecosystem(package.ecosystem)
    theirs = affected.ecosystem
    if theirs != mine and theirs != base_ecosystem(mine):
        return False
    return (normalize_name(theirs, affected.name)
            == normalize_name(theirs, package.advisory_name))


def _preferred_id(ids: Iterable[str]) -> str:
    ordered = sorted(set(ids))
    cves = [i for i in ordered if i.startswith("CVE-")]
    return cves[0] if cves else ordered[0]


def _fix_order(ecosystem: str, fixes: set[str]) -> tuple[str, ...]:
    try:
        return tuple(sorted(fixes, key=lambda v: version_key(ecosystem, v)))
    except NotComparable:
        return tuple(sorted(fixes))


def _merge(package: Package, hits: Sequence[tuple[Advisory, list[str]]]) -> list[Finding]:
    """Advisories of one package that share an id or alias become one finding."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for advisory, _ in hits:
        for alias in advisory.aliases:
            parent[find(alias)] = find(advisory.id)
        find(advisory.id)
    groups: dict[str, list[tuple[Advisory, list[str]]]] = {}
    for advisory, fixes in hits:
        groups.setdefault(find(advisory.id), []).append((advisory, fixes))
    findings = []
    for members in groups.values():
        ids = {a.id for a, _ in members} | {x for a, _ in members for x in a.aliases}
        name = _preferred_id(ids)
        fixes = {f for _, fs in members for f in fs}
        links: list[str] = []
        for a, _ in members:
            links.extend(x for x in a.references if x not in links)
        findings.append(Finding(
            id=name, aliases=tuple(sorted(ids - {name})), package=package,
            fixed_versions=_fix_order(package.ecosystem, fixes),
            severity=worst(a.severity for a, _ in members),
            summary=next((a.summary for a, _ in sorted(members, key=lambda m: m[0].id)
                          if a.summary), ""),
            links=tuple(links[:20])))
    return sorted(findings, key=lambda f: f.id)


def match(packages: Sequence[Package], store: AdvisorySource) -> list[Finding]:
    """Findings for `packages`, from the advisories `store` holds for them."""
    return evaluate(packages, store).findings


def evaluate(packages: Sequence[Package], store: AdvisorySource) -> MatchResult:
    """Findings, and the package/advisory pairs whose versions could not be compared."""
    keys = {k for p in packages for k in lookup_keys(p.ecosystem, p.advisory_name)}
    by_key = store.advisories_for(keys)
    result = MatchResult()
    for package in packages:
        seen: set[str] = set()
        hits: list[tuple[Advisory, list[str]]] = []
        for key in lookup_keys(package.ecosystem, package.advisory_name):
            for advisory in by_key.get(key, ()):
                if advisory.id in seen or advisory.withdrawn:
                    continue
                seen.add(advisory.id)
                hit, fixes = False, []
                try:
                    for affected in advisory.affected:
                        if _names_package(affected, package):
                            inside, fixed = affects(affected, package.ecosystem,
                                                    package.advisory_version)
                            hit = hit or inside
                            fixes.extend(fixed)
                except NotComparable as exc:
                    result.not_comparable.append((package.name, package.advisory_version,
                                                  advisory.id, str(exc)[:200]))
                    continue
                if hit:
                    hits.append((advisory, fixes))
        result.findings.extend(_merge(package, hits))
    return result
