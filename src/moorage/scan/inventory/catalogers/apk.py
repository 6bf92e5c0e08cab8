"""apk: `lib/apk/db/installed`, one stanza of `X:value` lines per package (P name, V
version, o origin: the source package Alpine's secdb names, A arch, L license)."""

from __future__ import annotations

from collections.abc import Callable

from moorage.scan.inventory.limits import Limits
from moorage.scan.model import Package

INSTALLED = "lib/apk/db/installed"


def wants(path: str) -> bool:
    return path == INSTALLED


def parse(path: str, data: bytes, limits: Limits, note: Callable[[str], None]) -> list[Package]:
    found: list[Package] = []
    stanza: dict[str, str] = {}

    def close() -> None:
        if not stanza:
            return
        name, version = stanza.get("P"), stanza.get("V")
        if not name or not version:
            note(f"{path}: a package without {'a name' if not name else 'a version'}; skipped")
        elif len(found) < limits.max_packages_per_file:
            origin = stanza.get("o")
            found.append(Package(
                kind="apk", ecosystem="", name=name[:200], version=version[:200],
                source_name=origin[:200] if origin and origin != name else None,
                path=path, arch=stanza.get("A", "")[:50],
                licenses=tuple(stanza["L"].split()[:20]) if stanza.get("L") else ()))
        stanza.clear()

    for line in data.decode("utf-8", "replace").splitlines():
        if not line.strip():
            close()
            continue
        key, sep, value = line.partition(":")
        if sep and len(key) == 1 and key not in stanza:  # later F:/R: lines repeat keys
            stanza[key] = value.strip()
    close()
    if len(found) >= limits.max_packages_per_file:
        note(f"{path}: more than {limits.max_packages_per_file} packages; the rest skipped")
    return found
