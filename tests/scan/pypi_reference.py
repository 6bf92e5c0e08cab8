"""An independent reading of the PyPA fixture's OSV records, for tests to compute what the
scanner should find and fix without asking the code under test: PyPI names compared as
PEP 503 says, versions in PEP 440 order (`packaging`), ECOSYSTEM ranges walked in order of
their events, explicit `versions` lists. Deliberately simple and separate from
`moorage.scan.advisories.matching`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.support.fixtures import SHARED_FIXTURES

OSV_PYPA = SHARED_FIXTURES / "osv-pypa" / "vulns"


def pypa_records(name: str, root: Path = OSV_PYPA) -> list[dict[str, Any]]:
    """The fixture's records of one package (its folder), withdrawn ones left out."""
    records = (yaml.safe_load(p.read_text()) for p in sorted((root / name.lower()).glob("*.yaml")))
    return [r for r in records if not r.get("withdrawn")]


def pypi_affected(record: dict[str, Any], name: str, version: str | Version) -> bool:
    """Whether the record says `name` at `version` is affected: a listed version, or a place
    in an ECOSYSTEM range after an introduction and before the next fix (or at/below a
    last_affected)."""
    mine = Version(str(version))
    for affected in record.get("affected") or []:
        package = affected.get("package") or {}
        if package.get("ecosystem", "PyPI") != "PyPI" or \
                canonicalize_name(package.get("name", "")) != canonicalize_name(name):
            continue
        if str(version) in [str(v) for v in affected.get("versions") or []]:
            return True
        for rng in affected.get("ranges") or []:
            if rng.get("type") != "ECOSYSTEM":
                continue
            events = sorted(((Version("0") if str(v) == "0" else Version(str(v)), kind)
                             for e in rng["events"] for kind, v in e.items()),
                            key=lambda pair: (pair[0], pair[1] != "introduced"))
            inside = False
            for at, kind in events:
                if kind == "introduced" and mine >= at:
                    inside = True
                elif kind == "fixed" and mine >= at:
                    inside = False
                elif kind == "last_affected" and mine > at:
                    inside = False
            if inside:
                return True
    return False


def expected_pypi(name: str, version: str) -> set[str]:
    """The ids of the fixture's records that affect `name` at `version`."""
    return {r["id"] for r in pypa_records(name) if pypi_affected(r, name, version)}
