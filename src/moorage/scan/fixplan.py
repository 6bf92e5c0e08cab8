"""Fix guidance: the smallest set of package upgrades that clears an image's fixable findings,
and the commands that make them, per package manager.

Pure: `fix_plan(findings, inventory)` reads nothing and writes nothing.

**Per package, one target version.** Findings are grouped by what advisories key them on
(kind, ecosystem, name and version as advisories see them: the *source* package of a
distribution, the package itself elsewhere), and each group gets the least version that
clears all its findings, in the ecosystem's own order (`advisories.versions.version_key`).

**Several fixed versions in one finding.** Only fixes above the installed version count.
Matching (advisories/matching.py) gives a finding one fix per advisory or range whose
affected interval *holds the installed version*, so a version clears the finding only once it
has left every one of those intervals: at its greatest fix. Taking a smaller one as "another
branch's fix" would be wrong on real data: zope 4.0's finding CVE-2021-32807 (merged with
CVE-2021-32811 through a shared GHSA alias) lists 4.3 and 4.6.3, and 4.3 is still affected by
CVE-2021-32811. So the target is the least version at which a rescan against the same data
stops reporting each finding: the greatest of the needed fixes; a fix on a later branch that
no interval holding the installed version names (3.1.4 when 2.10's interval ends at 2.11.3) is
never chosen. (A range that begins between the installed version and the target is not in
the finding at all: only a rescan after the upgrade can see it.) A finding whose fixes cannot be used (all at or below the installed version, or
not comparable in the ecosystem's order) is reported as blocked, with the reason, and does
not move its package.

**Commands.** Distribution advisories name source packages, so a dpkg or apk fix upgrades
every installed binary package built from that source (`source_name`/origin); a binary whose
own version differs from its source's (a binNMU) is upgraded to the archive's newest version
instead of an exact one, since its exact fixed version is not known here.

**Layers, honestly.** There is no database of base images here, so the plan does not claim
that a package comes from one. It says which layer brought the package (for OS packages: the
layer that last wrote the package database), as "layer k of n", with the advice to rebuild on
a newer base if that layer is part of the base image; the bottom layer almost always is.

Accepted findings (the CVE allowlist) are listed apart and move nothing.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from moorage.scan.advisories.versions import NotComparable, version_key
from moorage.scan.model import Finding, Inventory, Package

# package kind -> (manager, what runs it)
MANAGERS = {"deb": "apt", "apk": "apk", "rpm": "dnf", "python": "pip", "npm": "npm",
            "go-module": "go", "java-archive": "maven"}


@dataclass(frozen=True)
class LayerNote:
    index: int  # 1-based, bottom first
    count: int
    digest: str

    @property
    def text(self) -> str:
        where = f"brought by layer {self.index} of {self.count} ({self.digest})"
        if self.index == 1:
            return (f"{where}, the bottom layer, which usually comes from the base image: "
                    f"rebuild on a newer base")
        return f"{where}; if this layer is part of your base image, rebuild on a newer base"


@dataclass(frozen=True)
class Upgrade:
    """One package (as advisories name it) moved to one version."""

    kind: str
    ecosystem: str
    name: str  # the advisory name: the source package for distributions
    installed: str
    target: str  # the least version that clears all the findings below
    packages: tuple[tuple[str, str], ...]  # (installed package, its exact target or "")
    findings: tuple[str, ...]  # the finding ids this upgrade clears
    layer: LayerNote | None = None

    @property
    def manager(self) -> str:
        return MANAGERS.get(self.kind, self.kind)


@dataclass(frozen=True)
class Blocked:
    """A finding with fixes that cannot be turned into an upgrade, and why."""

    id: str
    package: str
    version: str
    fixed_versions: tuple[str, ...]
    why: str


@dataclass(frozen=True)
class Command:
    manager: str
    command: str


@dataclass
class FixPlan:
    upgrades: list[Upgrade] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)
    unfixable: list[tuple[str, str, str]] = field(default_factory=list)  # (id, package, version)
    accepted: list[tuple[str, str, str, str]] = field(default_factory=list)  # + reason

    def as_dict(self) -> dict[str, Any]:
        return {
            "upgrades": [{
                "manager": u.manager, "kind": u.kind, "ecosystem": u.ecosystem,
                "name": u.name, "installed": u.installed, "target": u.target,
                "packages": [{"name": n, "version": v or None} for n, v in u.packages],
                "findings": list(u.findings),
                "layer": None if u.layer is None else {
                    "index": u.layer.index, "count": u.layer.count,
                    "digest": u.layer.digest, "note": u.layer.text},
            } for u in self.upgrades],
            "commands": [{"manager": c.manager, "command": c.command} for c in self.commands],
            "blocked": [{"id": b.id, "package": b.package, "version": b.version,
                         "fixed_versions": list(b.fixed_versions), "why": b.why}
                        for b in self.blocked],
            "unfixable": [{"id": i, "package": p, "version": v} for i, p, v in self.unfixable],
            "accepted": [{"id": i, "package": p, "version": v, "reason": r}
                         for i, p, v, r in self.accepted],
        }

    def lines(self) -> list[str]:
        out: list[str] = []
        if self.upgrades:
            out.append(f"{len(self.upgrades)} upgrades clear "
                       f"{sum(len(u.findings) for u in self.upgrades)} findings:")
            for u in self.upgrades:
                names = ", ".join(n for n, _ in u.packages)
                shown = u.name if names == u.name else f"{u.name} ({names})"
                out.append(f"  {shown} {u.installed} -> {u.target}: {', '.join(u.findings)}")
                if u.layer is not None:
                    out.append(f"    {u.layer.text}")
            out.append("Commands:")
            out.extend(f"  {c.command}" for c in self.commands)
        else:
            out.append("No upgrade to make.")
        if self.blocked:
            out.append("Fixes that cannot be applied:")
            out.extend(f"  {b.id} in {b.package} {b.version}: {b.why}" for b in self.blocked)
        if self.unfixable:
            out.append(f"No fix known yet ({len(self.unfixable)}):")
            out.extend(f"  {i} in {p} {v}" for i, p, v in self.unfixable)
        if self.accepted:
            out.append(f"Accepted ({len(self.accepted)}):")
            out.extend(f"  {i} in {p} {v}: {r}" for i, p, v, r in self.accepted)
        return out


# -- choosing versions ---------------------------------------------------------------------
def _key(ecosystem: str, version: str) -> Any:
    """The ecosystem's order (Go's toolchain, "go1.21.5" in binaries, included)."""
    return version_key(ecosystem, version)


def _target(ecosystem: str, installed: str, findings: Sequence[Finding],
            plan: FixPlan) -> tuple[str | None, list[Finding]]:
    """The least version that clears every finding that can be placed; the others go to
    plan.blocked. (target, the findings it clears)."""
    try:
        mine = _key(ecosystem, installed)
    except NotComparable as exc:
        for f in findings:
            plan.blocked.append(Blocked(f.id, f.package.name, f.package.version,
                                        f.fixed_versions, f"the installed version cannot be "
                                        f"ordered: {str(exc)[:120]}"))
        return None, []
    placed: list[tuple[Finding, list[tuple[Any, str]]]] = []
    for f in findings:
        above, odd = [], []
        for text in f.fixed_versions:
            try:
                key = _key(ecosystem, text)
            except NotComparable:
                odd.append(text)
                continue
            if key > mine:
                above.append((key, text))
        if not above:
            why = (f"its fixed versions ({', '.join(odd)}) cannot be ordered in {ecosystem}"
                   if odd else "every listed fix is at or below the installed version")
            plan.blocked.append(Blocked(f.id, f.package.name, f.package.version,
                                        f.fixed_versions, why))
            continue
        above.sort(key=lambda pair: pair[0])
        placed.append((f, above))
    if not placed:
        return None, []
    # each finding needs its greatest fix; the package, the greatest of those
    need = [above[-1] for _, above in placed]
    return max(need, key=lambda pair: pair[0])[1], [f for f, _ in placed]


# -- commands ------------------------------------------------------------------------------
def _arg(kind: str, name: str, target: str) -> str:
    if kind == "deb":
        return f"{name}={target}" if target else name
    if kind == "apk":
        return shlex.quote(f"{name}>={target}")
    if kind == "rpm":
        return f"{name}-{target}"
    if kind == "python":
        return shlex.quote(f"{name}>={target}")
    if kind == "npm":
        return f"{name}@{target}"
    if kind == "go-module":
        return f"{name}@v{target.removeprefix('v')}"
    return f"{name}:{target}"


def _commands(upgrades: Sequence[Upgrade]) -> list[Command]:
    by_kind: dict[str, list[str]] = {}
    out: list[Command] = []
    single: list[Command] = []  # one command per package: after the grouped ones
    for u in upgrades:
        if u.kind == "java-archive":
            single.append(Command("maven", f"mvn versions:use-dep-version -Dincludes={u.name} "
                                        f"-DdepVersion={u.target} -DforceVersion=true"))
            continue
        if u.kind == "go-module" and u.name == "stdlib":
            single.append(Command("go", f"rebuild with Go {u.target.removeprefix('go')} or newer"))
            continue
        args = by_kind.setdefault(u.kind, [])
        for name, exact in u.packages:
            arg = _arg(u.kind, name, exact if u.kind == "deb" else u.target)
            if arg not in args:
                args.append(arg)
    prefix = {"deb": "apt-get install --only-upgrade", "apk": "apk add --upgrade",
              "rpm": "dnf upgrade", "python": "pip install", "npm": "npm install",
              "go-module": "go get"}
    for kind, args in by_kind.items():
        if kind in prefix:
            out.append(Command(MANAGERS[kind], f"{prefix[kind]} {' '.join(args)}"))
        else:
            out.append(Command(kind, f"upgrade {' '.join(args)}"))
    order = list(MANAGERS.values())
    return sorted(out + single, key=lambda c: order.index(c.manager) if c.manager in order else 99)


# -- the plan ------------------------------------------------------------------------------
def _built_from(inventory: Inventory, key: tuple[str, str, str, str], target: str,
                found: Sequence[Package]) -> tuple[tuple[str, str], ...]:
    """The installed packages one upgrade moves, each with its exact target (deb: the fixed
    source version when the binary's version is its source's; "" when not known)."""
    kind, ecosystem, name, version = key
    members = [p for p in inventory.packages
               if (p.kind, p.ecosystem, p.advisory_name, p.advisory_version) == key]
    out: dict[str, str] = {}
    for p in [*found, *members]:
        if p.name not in out:
            exact = target if p.version == p.advisory_version else ""
            out[p.name] = exact
    return tuple(sorted(out.items()))


def _layer(inventory: Inventory, package: Package) -> LayerNote | None:
    if package.layer and package.layer in inventory.layers:
        return LayerNote(inventory.layers.index(package.layer) + 1, len(inventory.layers),
                         package.layer)
    return None


def fix_plan(findings: Sequence[Finding], inventory: Inventory) -> FixPlan:
    """The upgrades that clear every fixable finding, the commands, and what stays open."""
    plan = FixPlan()
    groups: dict[tuple[str, str, str, str], list[Finding]] = {}
    for f in findings:
        p = f.package
        if f.accepted:
            plan.accepted.append((f.id, p.name, p.version, f.accepted))
        elif not f.fixed_versions:
            plan.unfixable.append((f.id, p.name, p.version))
        else:
            key = (p.kind, p.ecosystem, p.advisory_name, p.advisory_version)
            groups.setdefault(key, []).append(f)
    for key, members in sorted(groups.items()):
        kind, ecosystem, name, installed = key
        target, cleared = _target(ecosystem, installed, members, plan)
        if target is None:
            continue
        ids = tuple(sorted({f.id for f in cleared}))
        plan.upgrades.append(Upgrade(
            kind=kind, ecosystem=ecosystem, name=name, installed=installed, target=target,
            packages=_built_from(inventory, key, target, [f.package for f in members]),
            findings=ids, layer=_layer(inventory, members[0].package)))
    plan.commands = _commands(plan.upgrades)
    return plan


__all__ = ["Blocked", "Command", "FixPlan", "LayerNote", "Upgrade", "fix_plan"]
