"""Alpine's security database (secdb) converted to OSV records on import.

A secdb file (`v3.11/main.yaml`, or one package as JSON in aquasecurity's vuln-list layout)
says, per origin package, `secfixes: {<version>: [<ids>]}`: each id is fixed in that version
of that release branch. Converted: one OSV record per branch and vulnerability id,
`ALPINE-<branch>-<id>` (ids are per branch because branches differ: see the fixtures' README),
aliased to the id itself, with an affected entry per origin package `{introduced: "0"},
{fixed: <version>}` in ecosystem `Alpine:<branch>`. A version key "0" means "never affected in
this branch": no record is made for it. Strings holding two ids ("CVE-… TALOS-…") give two
aliases; `CVE_2019-2426`-style typos are read as the CVE they mean.
"""

from __future__ import annotations

import re
from typing import Any

from moorage.scan.advisories.osv import BadRecord

_ID = re.compile(r"[A-Z][A-Z0-9]*(?:[-_][A-Za-z0-9.]+)+")
MAX_PACKAGES = 20_000


def is_secdb(document: Any) -> bool:
    return isinstance(document, dict) and "distroversion" in document and (
        "packages" in document or "secfixes" in document)


def _ids(text: str) -> list[str]:
    found = []
    for token in str(text).split():
        token = re.sub(r"^CVE_", "CVE-", token.strip(",;"))
        if _ID.fullmatch(token) and len(token) <= 100:
            found.append(token)
    return found


def convert(document: dict[str, Any]) -> list[dict[str, Any]]:
    """OSV records for one secdb document. Raises BadRecord when it is not shaped as one."""
    branch = document.get("distroversion")
    if not isinstance(branch, str) or not re.fullmatch(r"v?\d+\.\d+|edge", branch):
        raise BadRecord("secdb: distroversion is not a release such as v3.20")
    branch = branch if branch == "edge" or branch.startswith("v") else "v" + branch
    ecosystem = f"Alpine:{branch}"
    if "packages" in document:
        entries = document.get("packages")
        if not isinstance(entries, list) or len(entries) > MAX_PACKAGES:
            raise BadRecord("secdb: packages is not a list (or too long)")
        packages = [e.get("pkg") if isinstance(e, dict) else None for e in entries]
    else:
        packages = [document]
    records: dict[str, dict[str, Any]] = {}
    for pkg in packages:
        if not isinstance(pkg, dict) or not isinstance(pkg.get("name"), str):
            raise BadRecord("secdb: a package has no name")
        secfixes = pkg.get("secfixes") or {}
        if not isinstance(secfixes, dict):
            raise BadRecord(f"secdb: secfixes of {pkg['name']} is not a mapping")
        for version, ids in secfixes.items():
            version = str(version)
            if version == "0" or not isinstance(ids, list):
                continue
            for entry in ids:
                aliases = _ids(entry)
                if not aliases:
                    continue
                ident = f"ALPINE-{branch}-{aliases[0]}"
                record = records.setdefault(ident, {
                    "schema_version": "1.6.0", "id": ident, "aliases": aliases,
                    "summary": f"{aliases[0]} (Alpine {branch} secfixes)",
                    "affected": [], "database_specific": {"source": "alpine-secdb"}})
                record["aliases"] = sorted(set(record["aliases"]) | set(aliases))
                record["affected"].append({
                    "package": {"ecosystem": ecosystem, "name": pkg["name"]},
                    "ranges": [{"type": "ECOSYSTEM",
                                "events": [{"introduced": "0"}, {"fixed": version}]}]})
    return list(records.values())
