"""What an SBOM describes: one image (one platform of an index) in one repository."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import metadata

from packageurl import PackageURL

from moorage.scan.model import Package

# Bounds: the documents are built in memory, so an inventory larger than this is refused
# rather than turned into a document nobody can load (a real image has a few thousand).
MAX_PACKAGES = 100_000
# Moorage's own names for what Syft calls `syft:package:type`, `syft:location:0:path`...
PROPERTY_PREFIX = "moorage"


@dataclass(frozen=True)
class ImageRef:
    """The image an inventory was made of."""

    repository: str  # "team/app"
    digest: str  # the image manifest's digest (the platform's, for an index)
    platform: str = ""  # "linux/amd64", "linux/arm64/v8"; "" when unknown
    host: str = ""  # "registry.example.com", for the image's purl; "" leaves it out

    def purl(self) -> str:
        """`pkg:oci/app@sha256%3A…?repository_url=HOST/team/app&arch=amd64`, as the purl
        spec names an OCI image."""
        qualifiers = {"repository_url": f"{self.host}/{self.repository}" if self.host
                      else self.repository}
        parts = self.platform.split("/")
        if len(parts) >= 2 and parts[1]:
            qualifiers["arch"] = parts[1]
        return PackageURL(type="oci", name=self.repository.rsplit("/", 1)[-1].lower(),
                          version=self.digest, qualifiers=qualifiers).to_string()


def generator_version() -> str:
    """Moorage's version, named in every document and in its referrer's annotation."""
    try:
        return metadata.version("moorage")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "0"


def library_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return ""


def package_key(package: Package) -> str:
    """A stable identifier of a package within one document: the same inventory gives the
    same identifiers (deterministic documents), two copies of one package at two paths
    get two."""
    text = "\x00".join((package.kind, package.name, package.version, package.arch,
                        package.path, package.layer))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sorted_packages(packages: tuple[Package, ...]) -> list[Package]:
    """The packages in document order, without exact duplicates."""
    if len(packages) > MAX_PACKAGES:
        raise ValueError(f"the inventory lists {len(packages)} packages; an SBOM holds at "
                         f"most {MAX_PACKAGES}")
    unique = {package_key(p): p for p in packages}
    return sorted(unique.values(), key=lambda p: (p.kind, p.name, p.version, p.arch, p.path,
                                                  p.layer))
