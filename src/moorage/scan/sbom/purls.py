"""Package URLs (github.com/package-url/purl-spec) for the packages of an inventory.

A purl is how SBOM consumers (Grype, Dependency-Track, OSV's API) identify a package, so
each document names every package by one. A cataloguer may have set `Package.purl`
already; otherwise it is made here from the kind, name, version and distribution, the way
Syft spells them (`upstream=` for a distribution's source package), so that a document of
ours and one of Syft's name the same package alike.
"""

from __future__ import annotations

from packageurl import PackageURL

from moorage.scan.model import Distro, Package

# purl type of each package kind (model.KINDS)
PURL_TYPES = {"deb": "deb", "apk": "apk", "rpm": "rpm", "python": "pypi", "npm": "npm",
              "go-module": "golang", "java-archive": "maven"}


def purl_of(package: Package, distro: Distro | None) -> str:
    """The package's purl: its own when the cataloguer set one, else made here; "" for a
    kind with no purl type (the document then names it by name and version only)."""
    if package.purl:
        return package.purl
    made = make_purl(package, distro)
    return made.to_string() if made is not None else ""


def make_purl(package: Package, distro: Distro | None) -> PackageURL | None:
    kind = PURL_TYPES.get(package.kind)
    if kind is None or not package.name or not package.version:
        return None
    qualifiers: dict[str, str] = {}
    namespace: str | None = None
    name = package.name
    if kind in ("deb", "apk", "rpm"):
        namespace = distro.id if distro is not None else {"apk": "alpine"}.get(kind, "")
        namespace = namespace or None
        if package.arch:
            qualifiers["arch"] = package.arch
        if distro is not None and distro.version_id:
            qualifiers["distro"] = f"{distro.id}-{distro.version_id}"
        upstream = _upstream(package)
        if upstream:
            qualifiers["upstream"] = upstream
    elif kind == "pypi":
        name = name.lower().replace("_", "-")  # the purl spec's PyPI normalisation
    elif kind == "npm":
        if name.startswith("@") and "/" in name:
            namespace, _, name = name.partition("/")
    elif kind == "golang":
        if "/" in name:
            namespace, _, name = name.rpartition("/")
    elif kind == "maven":
        if ":" in name:
            namespace, _, name = name.partition(":")
    return PackageURL(type=kind, namespace=namespace, name=name, version=package.version,
                      qualifiers=qualifiers or None)


def _upstream(package: Package) -> str:
    """Syft's `upstream` qualifier: the source package, `name@version` when the source
    version differs from the binary's (a binNMU, an epoch on the binary only)."""
    if not package.source_name and not package.source_version:
        return ""
    name = package.source_name or package.name
    if package.source_version and package.source_version != package.version:
        return f"{name}@{package.source_version}"
    return name if name != package.name else ""
