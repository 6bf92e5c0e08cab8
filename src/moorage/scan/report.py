"""Reports: findings of several engines merged into one list, and the summary by severity.

`merge_findings` joins what engines say about the same vulnerability of the same package
(by the id or any alias, and the package's kind, name and version): the engines are
unioned, the worst severity kept, fixed versions unioned. Pure functions; the stored form
of a finding (`finding_to_dict` / `finding_from_dict`) lives here too so that the store and
the API agree on it.

`report_for` is the read path: what the API and the CLI answer is computed from the stored
findings at read time, so that the allowlist (whose entries expire) needs no rescan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, replace
from typing import Any

from moorage.scan.advisories.severity import worst
from moorage.scan.model import LEVELS, Finding, Package, Severity

MAX_FINDINGS = 20_000  # per image: bounded however many advisories a hostile image attracts


def _package_key(p: Package) -> tuple[str, str, str]:
    return (p.kind, p.name, p.version)


def merge_findings(lists: Iterable[Sequence[Finding]]) -> list[Finding]:
    """One finding per (vulnerability id or alias, package kind+name+version)."""
    merged: list[Finding] = []
    index: dict[tuple[tuple[str, str, str], str], int] = {}
    for findings in lists:
        for f in findings:
            names = (f.id, *f.aliases)
            pkg = _package_key(f.package)
            at = next((index[(pkg, n)] for n in names if (pkg, n) in index), None)
            if at is None:
                if len(merged) >= MAX_FINDINGS:
                    continue
                merged.append(f)
                at = len(merged) - 1
            else:
                old = merged[at]
                ids = {old.id, *old.aliases, *names}
                main = old.id if old.id.startswith("CVE-") or not f.id.startswith("CVE-") \
                    else f.id
                fixes = tuple(dict.fromkeys((*old.fixed_versions, *f.fixed_versions)))
                links = tuple(dict.fromkeys((*old.links, *f.links)))[:20]
                merged[at] = replace(
                    old, id=main, aliases=tuple(sorted(ids - {main})), fixed_versions=fixes,
                    severity=worst((old.severity, f.severity)),
                    summary=old.summary or f.summary, links=links,
                    engines=tuple(sorted({*old.engines, *f.engines})))
            for n in (merged[at].id, *merged[at].aliases):
                index[(pkg, n)] = at
    return sorted(merged, key=lambda f: (LEVELS.index(f.severity.level)
                                         if f.severity.level in LEVELS else 99,
                                         f.package.name, f.id))


def add_summaries(summaries: Iterable[dict[str, int]]) -> dict[str, int]:
    """Counts by level of several images (an index's platforms) added together."""
    total = dict.fromkeys(LEVELS, 0)
    for summary in summaries:
        for level, n in summary.items():
            total[level] += n
    return total


def summarize(findings: Iterable[Finding]) -> dict[str, int]:
    """Counts by severity level of the findings not accepted by the allowlist."""
    counts = dict.fromkeys(LEVELS, 0)
    for f in findings:
        if f.accepted is None:
            level = f.severity.level if f.severity.level in counts else "unknown"
            counts[level] += 1
    return counts


def finding_to_dict(f: Finding) -> dict[str, Any]:
    return asdict(f)


def _tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, (list, tuple)) else ()


def package_from_dict(d: dict[str, Any]) -> Package:
    return Package(kind=str(d.get("kind", "")), ecosystem=str(d.get("ecosystem", "")),
                   name=str(d.get("name", "")), version=str(d.get("version", "")),
                   source_name=d.get("source_name"), source_version=d.get("source_version"),
                   path=str(d.get("path", "")), layer=str(d.get("layer", "")),
                   purl=str(d.get("purl", "")), licenses=_tuple(d.get("licenses")),
                   arch=str(d.get("arch", "")), engines=_tuple(d.get("engines")))


def finding_from_dict(d: dict[str, Any]) -> Finding:
    s = d.get("severity") or {}
    return Finding(id=str(d["id"]), aliases=_tuple(d.get("aliases")),
                   package=package_from_dict(d.get("package") or {}),
                   fixed_versions=_tuple(d.get("fixed_versions")),
                   severity=Severity(str(s.get("level", "unknown")), s.get("score"),
                                     s.get("vector")),
                   summary=str(d.get("summary", "")), links=_tuple(d.get("links")),
                   engines=_tuple(d.get("engines")) or ("osv",), accepted=d.get("accepted"))


# -- the read path -----------------------------------------------------------------------
# Steps applied, in order, to the stored findings of an image before they are shown and
# summarised: (namespace, findings) -> findings. The CVE allowlist is one (service.install:
# `apply_allowlist` with the namespace's entries and the service's clock), so that an entry's
# expiry shows at once, without a rescan.
ReadStep = Callable[[str, list[Finding]], list[Finding]]


def report_for(namespace: str, findings: list[Finding],
               steps: Sequence[ReadStep] = ()) -> tuple[list[Finding], dict[str, int]]:
    """The findings as shown (read steps applied) and their summary."""
    for step in steps:
        findings = step(namespace, findings)
    return findings, summarize(findings)


__all__ = ["MAX_FINDINGS", "finding_from_dict", "finding_to_dict", "merge_findings",
           "package_from_dict", "report_for", "summarize"]
