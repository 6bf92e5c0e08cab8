"""Combining layer results, bottom first, into what the running container sees.

A file catalogued in one layer counts only while no layer above hides it: a whiteout of it
or of a directory above it, an opaque directory above it, or a later write at its path (or
at a directory of its path, made a file or a link). OS packages then get their ecosystem
and purl from the distribution the visible os-release names (through its symlink, as
`etc/os-release -> ../usr/lib/os-release` is in Debian).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from moorage.scan.inventory.catalogers import osrelease
from moorage.scan.inventory.limits import Limits
from moorage.scan.inventory.purl import purl
from moorage.scan.inventory.records import FileRecord, LayerResult
from moorage.scan.model import Distro, Inventory, Package, ScanProblems

# os-release ID -> OSV ecosystem name (osv-schema's ecosystem list)
ECOSYSTEMS = {"debian": "Debian", "ubuntu": "Ubuntu", "alpine": "Alpine",
              "rocky": "Rocky Linux", "almalinux": "AlmaLinux", "rhel": "Red Hat",
              "opensuse-leap": "openSUSE", "sles": "SUSE", "mariner": "Mariner",
              "azurelinux": "Azure Linux", "wolfi": "Wolfi", "chainguard": "Chainguard",
              "photon": "Photon OS"}
OS_KINDS = ("deb", "apk", "rpm")
DEFAULT_NAMESPACE = {"deb": "debian", "apk": "alpine", "rpm": ""}


def _ancestors(path: str) -> list[str]:
    out = []
    while "/" in path:
        path = path.rsplit("/", 1)[0]
        out.append(path)
    return out


def _hidden_by(layer: LayerResult, path: str) -> bool:
    """Whether `layer` hides a lower layer's entry at `path`."""
    if path in layer.paths or path in layer.whiteouts or path in layer.dirs:
        return True
    above = _ancestors(path)
    if "" in layer.opaques or any(a in layer.opaques for a in above):
        return True
    return any(a in layer.whiteouts or a in layer.paths for a in above)


def visible(layers: Sequence[LayerResult]) -> tuple[dict[str, tuple[int, FileRecord]],
                                                      dict[str, str]]:
    """The records and symlinks the top of the stack shows: path -> (layer index, record),
    path -> symlink target."""
    records: dict[str, tuple[int, FileRecord]] = {}
    links: dict[str, tuple[int, str]] = {}
    for index, layer in enumerate(layers):
        for table in (records, links):
            for path in [p for p in table if _hidden_by(layer, p)]:
                del table[path]
        records.update((p, (index, r)) for p, r in layer.records.items())
        links.update((p, (index, t)) for p, t in layer.symlinks.items())
    return records, {p: t for p, (_, t) in links.items()}


def resolve(path: str, links: dict[str, str], limits: Limits) -> str | None:
    """`path` with every symlink on the way followed, inside the image only ('..' stops at
    its root, an absolute target starts there); None for a loop or a chain over the limit."""
    todo = [p for p in path.split("/") if p]
    done: list[str] = []
    hops = 0
    while todo:
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        here = "/".join(done + [part])
        target = links.get(here)
        if target is None:
            done.append(part)
            continue
        hops += 1
        if hops > limits.max_link_hops:
            return None
        if target.startswith("/"):
            done = []
        todo = [p for p in target.split("/") if p] + todo
    return "/".join(done)


def distro_of(records: dict[str, tuple[int, FileRecord]], links: dict[str, str],
              limits: Limits, problems: ScanProblems) -> Distro | None:
    for candidate in osrelease.PATHS:
        if candidate not in records and candidate not in links:
            continue
        target = resolve(candidate, links, limits)
        if target is None:
            problems.add(f"{candidate}: a symbolic link loop (or a chain of more than "
                         f"{limits.max_link_hops} links); the distribution is not known")
            continue
        found = records.get(target)
        if found is None or found[1].text is None:
            continue
        distro = osrelease.parse(found[1].text)
        if distro is not None:
            return distro
    return None


def ecosystem(distro: Distro | None, kind: str) -> str:
    """OSV's ecosystem for an OS package: "Debian:12", "Alpine:v3.20", "Ubuntu:22.04"."""
    if distro is None:
        return {"deb": "Debian", "apk": "Alpine", "rpm": ""}[kind]
    name = ECOSYSTEMS.get(distro.id, distro.id)
    version = distro.version_id
    if distro.id == "alpine" and version:
        version = "v" + ".".join(version.split(".")[:2])
    elif distro.id in ("debian", "rocky", "almalinux", "rhel") and version:
        version = version.split(".")[0]
    return f"{name}:{version}" if version else name


def finish(package: Package, distro: Distro | None, layer: str) -> Package:
    """The package as the inventory reports it: its layer, and for an OS package its
    ecosystem and Syft-form purl (namespace and `distro=` from the distribution)."""
    if package.kind not in OS_KINDS:
        return replace(package, layer=layer)
    namespace = distro.id if distro else DEFAULT_NAMESPACE[package.kind]
    qualifiers = {"arch": package.arch}
    if distro:
        qualifiers["distro"] = f"{distro.id}-{distro.version_id}" if distro.version_id \
            else distro.id
    version = package.version
    if package.kind == "deb" and package.source_name:
        same_version = package.source_version in (None, package.version)
        qualifiers["upstream"] = package.source_name if same_version \
            else f"{package.source_name}@{package.source_version}"
        if package.source_name == package.name and same_version:
            del qualifiers["upstream"]
    elif package.kind == "apk" and package.source_name:
        qualifiers["upstream"] = package.source_name
    elif package.kind == "rpm":
        # carried from the cataloger: "upstream=NAME-V-R.src.rpm"
        qualifiers["upstream"] = package.purl.removeprefix("upstream=")
        epoch, sep, rest = version.partition(":")
        if sep and epoch.isdigit():
            qualifiers["epoch"], version = epoch, rest
    return replace(package, layer=layer, ecosystem=ecosystem(distro, package.kind),
                   purl=purl(package.kind, package.name, version, namespace or None,
                             qualifiers))


def inventory(layers: Sequence[LayerResult], limits: Limits,
              problems: ScanProblems | None = None) -> Inventory:
    """The Inventory of an image whose layers (bottom first) were read into `layers`."""
    problems = problems or ScanProblems()
    for layer in layers:
        for problem in layer.problems:
            problems.add(problem)
    records, links = visible(layers)
    distro = distro_of(records, links, limits, problems)
    packages = [finish(p, distro, layers[index].digest)
                for path, (index, record) in sorted(records.items())
                for p in record.packages]
    return Inventory(distro=distro, packages=tuple(packages),
                     layers=tuple(layer.digest for layer in layers),
                     problems=problems.as_tuple())
