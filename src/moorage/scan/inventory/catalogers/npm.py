"""npm: `node_modules/NAME/package.json` and `node_modules/@SCOPE/NAME/package.json`, at any
depth of nesting. Other package.json files (a package's own test fixtures, its `lib/`) are
not installed packages and are not read."""

from __future__ import annotations

import json
from collections.abc import Callable

from moorage.scan.inventory.limits import Limits
from moorage.scan.inventory.purl import purl
from moorage.scan.model import Package


def wants(path: str) -> bool:
    parts = path.split("/")
    if len(parts) < 3 or parts[-1] != "package.json":
        return False
    if parts[-3] == "node_modules" and not parts[-2].startswith((".", "@")):
        return True
    return (len(parts) >= 4 and parts[-4] == "node_modules" and parts[-3].startswith("@")
            and not parts[-2].startswith("."))


def parse(path: str, data: bytes, limits: Limits, note: Callable[[str], None]) -> list[Package]:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        note(f"{path}: not valid JSON")
        return []
    if not isinstance(doc, dict):
        note(f"{path}: not a JSON object")
        return []
    name, version = doc.get("name"), doc.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        return []  # a package.json without both is no installed package (workspaces, stubs)
    name, version = name[:214], version[:200]  # npm's own limit on names is 214
    scope, _, bare = name.rpartition("/")
    license_ = doc.get("license")
    return [Package(kind="npm", ecosystem="npm", name=name, version=version, path=path,
                    purl=purl("npm", bare, version, scope or None),
                    licenses=(license_[:200],) if isinstance(license_, str) else ())]
