"""An inventory as a CycloneDX 1.6 JSON document, built with cyclonedx-python-lib.

The image is the document's subject (`metadata.component`, type container, with its purl);
the distribution is an operating-system component; each package is a library component
with its purl, version, licenses, and Moorage properties naming where it was found, on the
model of Syft's (`moorage:location:0:path`, `moorage:location:0:layerID`,
`moorage:package:type`). The output is the same for the same inventory apart from the
timestamp and serial number, which callers may fix too.

Pure and CPU-bound (measured: 4.5 s for 2,000 packages on 2 cores under a load of 12, most
of it the library's own sorting and serializing): a job calls it in a worker thread.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.dependency import Dependency
from cyclonedx.model.license import DisjunctiveLicense, LicenseExpression
from cyclonedx.model.tool import ToolRepository
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from moorage.scan.model import Distro, Inventory, Package
from moorage.scan.sbom.image import (PROPERTY_PREFIX as P, ImageRef, generator_version,
                                     package_key, sorted_packages)
from moorage.scan.sbom.purls import purl_of

MEDIA_TYPE = "application/vnd.cyclonedx+json"


def cyclonedx_document(inventory: Inventory, image: ImageRef, *,
                       generated_at: datetime.datetime | None = None,
                       serial: uuid.UUID | None = None) -> bytes:
    """The CycloneDX 1.6 JSON document of `inventory`, UTF-8 encoded."""
    generated_at = generated_at or datetime.datetime.now(datetime.timezone.utc)
    root = _image_component(image, inventory)
    tools = ToolRepository(components=[Component(
        type=ComponentType.APPLICATION, name="moorage", version=generator_version(),
        bom_ref="tool:moorage")])
    bom = Bom(serial_number=serial or uuid.uuid4(),
              metadata=BomMetaData(timestamp=generated_at, tools=tools, component=root))
    parts: list[Component] = []
    if inventory.distro is not None:
        parts.append(_os_component(inventory.distro))
    for package in sorted_packages(inventory.packages):
        parts.append(_package_component(package, inventory.distro))
    bom.components.update(parts)
    # The dependency graph: the image holds every part. Built directly, because
    # Bom.register_dependency scans the whole graph for each part (quadratic).
    bom.dependencies.add(Dependency(ref=root.bom_ref,
                                    dependencies=[Dependency(ref=p.bom_ref) for p in parts]))
    bom.dependencies.update(Dependency(ref=p.bom_ref) for p in parts)
    _fast_registration(bom)
    return JsonV1Dot6(bom).output_as_string(indent=2).encode()


def _fast_registration(bom: Bom) -> None:
    """Give `bom` a dependency lookup by reference. The library's output step registers
    every component in the dependency graph by scanning the whole graph each time
    (quadratic: seconds for an image of 2,000 packages); the graph built here is already
    complete, so a set lookup answers that step. Set on the instance: a subclass of Bom
    would not serialize."""
    original = bom.register_dependency
    registered = {d.ref for d in bom.dependencies}

    def register_dependency(target: Any, depends_on: Any = None) -> None:
        if depends_on is None and target.bom_ref in registered:
            return
        original(target, depends_on)
        registered.update(d.ref for d in bom.dependencies)

    bom.register_dependency = register_dependency  # type: ignore[method-assign]


def _image_component(image: ImageRef, inventory: Inventory) -> Component:
    properties = [Property(name=f"{P}:image:repository", value=image.repository)]
    if image.platform:
        properties.append(Property(name=f"{P}:image:platform", value=image.platform))
    properties += [Property(name=f"{P}:image:layer:{i}", value=digest)
                   for i, digest in enumerate(inventory.layers)]
    return Component(type=ComponentType.CONTAINER, name=image.repository,
                     version=image.digest, bom_ref=f"image:{image.digest}",
                     purl=PackageURL.from_string(image.purl()), properties=properties)


def _os_component(distro: Distro) -> Component:
    properties = [Property(name=f"{P}:distro:id", value=distro.id),
                  Property(name=f"{P}:distro:versionID", value=distro.version_id)]
    return Component(type=ComponentType.OPERATING_SYSTEM, name=distro.id or "unknown",
                     version=distro.version_id or None,
                     description=distro.pretty_name or None,
                     bom_ref=f"os:{distro.id}@{distro.version_id}", properties=properties)


def _package_component(package: Package, distro: Distro | None) -> Component:
    purl = purl_of(package, distro)
    properties = [Property(name=f"{P}:package:type", value=package.kind),
                  Property(name=f"{P}:package:ecosystem", value=package.ecosystem)]
    if package.source_name:
        properties.append(Property(name=f"{P}:package:sourceName", value=package.source_name))
    if package.source_version:
        properties.append(Property(name=f"{P}:package:sourceVersion",
                                   value=package.source_version))
    if package.arch:
        properties.append(Property(name=f"{P}:package:arch", value=package.arch))
    if package.engines:
        properties.append(Property(name=f"{P}:package:foundBy",
                                   value=",".join(package.engines)))
    if package.path:
        properties.append(Property(name=f"{P}:location:0:path",
                                   value="/" + package.path.lstrip("/")))
    if package.layer:
        properties.append(Property(name=f"{P}:location:0:layerID", value=package.layer))
    return Component(type=ComponentType.LIBRARY, name=package.name or "unknown",
                     version=package.version or None,
                     bom_ref=f"package:{package.kind}:{package_key(package)}",
                     purl=PackageURL.from_string(purl) if purl else None,
                     licenses=_licenses(package.licenses), properties=properties)


def _licenses(declared: tuple[str, ...]) -> list[LicenseExpression | DisjunctiveLicense]:
    """SPDX identifiers as ids, one SPDX expression as an expression, anything else by
    name (CycloneDX allows either one expression or a list of licenses, not both)."""
    factory = LicenseFactory()
    texts = [t.strip()[:500] for t in declared if t.strip()][:20]
    made = [factory.make_from_string(t) for t in texts]
    if len(made) == 1 or not any(isinstance(m, LicenseExpression) for m in made):
        return made
    return [m if isinstance(m, DisjunctiveLicense) else DisjunctiveLicense(name=m.value)
            for m in made]
