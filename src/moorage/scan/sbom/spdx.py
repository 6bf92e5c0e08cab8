"""An inventory as an SPDX 2.3 JSON document, built with spdx-tools.

The document DESCRIBES the image (a CONTAINER package with its purl); the image CONTAINS
the distribution (an OPERATING-SYSTEM package) and every installed package, each with its
purl as a PACKAGE-MANAGER external reference and its declared licenses (SPDX identifiers
as such, anything else as a LicenseRef with the text it was given). SPDX 2.3 packages have
no free-form properties: the file and layer a package came from go in its `sourceInfo`,
in Syft's words ("acquired package info from …"). The tests check documents with
spdx-tools' validator; writing does not validate (`validate=True`): the validator is
quadratic in the number of packages (measured: minutes for an image of 2,000 packages).

The same inventory gives the same document apart from `created` and the namespace's
serial, which callers may fix. Pure and CPU-bound: a job calls it in a worker thread.
"""

from __future__ import annotations

import datetime
import io
import re
import uuid

from boolean import Expression
from spdx_tools.common.spdx_licensing import spdx_licensing
from spdx_tools.spdx.model import (Actor, ActorType, CreationInfo, Document,
                                   ExternalPackageRef, ExternalPackageRefCategory,
                                   ExtractedLicensingInfo, Package as SpdxPackage,
                                   PackagePurpose, Relationship, RelationshipType,
                                   SpdxNoAssertion)
from spdx_tools.spdx.writer.json.json_writer import write_document_to_stream

from moorage.scan.model import Distro, Inventory, Package
from moorage.scan.sbom.image import (ImageRef, generator_version, package_key,
                                     sorted_packages)
from moorage.scan.sbom.purls import purl_of

MEDIA_TYPE = "application/spdx+json"
# Document namespaces must be unique URIs; this domain is reserved (RFC 2606), so a
# namespace of ours can never be mistaken for a resolvable address.
NAMESPACE_BASE = "https://moorage.invalid/spdx"


class SpdxInvalid(ValueError):
    """spdx-tools refused the document (a bug of ours: the message says what)."""


def spdx_document(inventory: Inventory, image: ImageRef, *,
                  generated_at: datetime.datetime | None = None,
                  serial: uuid.UUID | None = None, validate: bool = False) -> bytes:
    """The SPDX 2.3 JSON document of `inventory`, UTF-8 encoded; `validate` runs
    spdx-tools' validator first (SpdxInvalid if it objects)."""
    generated_at = (generated_at or datetime.datetime.now(datetime.timezone.utc)).replace(
        microsecond=0)
    serial = serial or uuid.uuid4()
    licenses = _Licenses()
    root = SpdxPackage(
        spdx_id="SPDXRef-Image", name=image.repository, version=image.digest,
        download_location=SpdxNoAssertion(), files_analyzed=False,
        primary_package_purpose=PackagePurpose.CONTAINER,
        comment=f"platform {image.platform}" if image.platform else None,
        external_references=[_purl_ref(image.purl())])
    packages = [root]
    relationships = [Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES,
                                  root.spdx_id)]
    if inventory.distro is not None:
        os_package = _os_package(inventory.distro)
        packages.append(os_package)
        relationships.append(Relationship(root.spdx_id, RelationshipType.CONTAINS,
                                          os_package.spdx_id))
    for package in sorted_packages(inventory.packages):
        made = _package(package, inventory.distro, licenses)
        packages.append(made)
        relationships.append(Relationship(root.spdx_id, RelationshipType.CONTAINS,
                                          made.spdx_id))
    creation = CreationInfo(
        spdx_version="SPDX-2.3", spdx_id="SPDXRef-DOCUMENT",
        name=f"{image.repository}@{image.digest}",
        document_namespace=f"{NAMESPACE_BASE}/{_safe(image.repository)}/"
                           f"{image.digest.replace(':', '-')}-{serial}",
        creators=[Actor(ActorType.TOOL, f"moorage-{generator_version()}")],
        created=generated_at)
    document = Document(creation, packages=packages, relationships=relationships,
                        extracted_licensing_info=licenses.extracted())
    out = io.StringIO()
    try:
        # packages are unique already (sorted_packages); spdx-tools' de-duplication is
        # quadratic too
        write_document_to_stream(document, out, validate=validate, drop_duplicates=False)
    except ValueError as exc:
        raise SpdxInvalid(f"SPDX document refused by spdx-tools: {exc}") from None
    return out.getvalue().encode()


def _purl_ref(purl: str) -> ExternalPackageRef:
    return ExternalPackageRef(ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", purl)


def _os_package(distro: Distro) -> SpdxPackage:
    return SpdxPackage(spdx_id="SPDXRef-OperatingSystem", name=distro.id or "unknown",
                       version=distro.version_id or None,
                       download_location=SpdxNoAssertion(), files_analyzed=False,
                       primary_package_purpose=PackagePurpose.OPERATING_SYSTEM,
                       description=distro.pretty_name or None)


def _package(package: Package, distro: Distro | None, licenses: "_Licenses") -> SpdxPackage:
    purl = purl_of(package, distro)
    where = []
    if package.path:
        where.append("/" + package.path.lstrip("/"))
    if package.layer:
        where.append(f"layer {package.layer}")
    declared = licenses.expression(package.licenses)
    source = package.source_name or package.source_version
    return SpdxPackage(
        spdx_id=f"SPDXRef-Package-{_safe(package.kind)}-{package_key(package)}",
        name=package.name or "unknown", version=package.version or None,
        download_location=SpdxNoAssertion(), files_analyzed=False,
        source_info=("acquired package info from " + ", ".join(where)) if where else None,
        license_declared=declared, license_concluded=SpdxNoAssertion(),
        copyright_text=SpdxNoAssertion(),
        primary_package_purpose=PackagePurpose.LIBRARY,
        comment=(f"type {package.kind}; ecosystem {package.ecosystem}"
                 + (f"; source package {package.source_name or package.name} "
                    f"{package.source_version or package.version}" if source else "")),
        external_references=[_purl_ref(purl)] if purl else [])


class _Licenses:
    """Turns declared license texts into SPDX expressions; texts that are not SPDX become
    LicenseRef-… entries of the document, each declared once with its text."""

    def __init__(self) -> None:
        self._refs: dict[str, str] = {}  # text -> LicenseRef id
        # parsing an expression takes milliseconds; an image's packages share a few dozen
        self._parsed: dict[tuple[str, ...], Expression] = {}

    def expression(self, declared: tuple[str, ...]) -> Expression | SpdxNoAssertion:
        texts = tuple(t.strip()[:500] for t in declared if t.strip())[:20]
        if not texts:
            return SpdxNoAssertion()
        parsed = self._parsed.get(texts)
        if parsed is None:
            parts = [self._one(t) for t in texts]
            parsed = spdx_licensing.parse(" AND ".join(f"({p})" if len(parts) > 1 else p
                                                       for p in parts))
            self._parsed[texts] = parsed
        return parsed

    def _one(self, text: str) -> str:
        try:
            info = spdx_licensing.validate(text)
        except Exception:  # noqa: BLE001 - license-expression raises on some bad keys
            info = None
        if info is not None and not info.errors and not info.invalid_symbols:
            return info.normalized_expression
        ref = self._refs.get(text)
        if ref is None:
            ref = f"LicenseRef-{_safe(text)[:60] or 'unknown'}-{len(self._refs) + 1}"
            self._refs[text] = ref
        return ref

    def extracted(self) -> list[ExtractedLicensingInfo]:
        return [ExtractedLicensingInfo(license_id=ref, extracted_text=text, license_name=text)
                for text, ref in self._refs.items()]


def _safe(text: str) -> str:
    """Letters, digits, dots and dashes only: what SPDX ids allow."""
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-")
