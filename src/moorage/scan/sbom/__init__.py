"""SBOMs of image inventories: CycloneDX 1.6 and SPDX 2.3 JSON documents, and their storage
as OCI 1.1 referrers of the image (issue 16, item 2).

    document = cyclonedx_document(inventory, ImageRef("team/app", digest, "linux/amd64"))
    await attach_sbom(registry, "team/app", digest, document, "cyclonedx")

Building a document is CPU-bound: run it in a worker thread (`asyncio.to_thread`) from the
scan job, never on the event loop.
"""

from moorage.scan.model import Inventory
from moorage.scan.sbom.cyclonedx import cyclonedx_document
from moorage.scan.sbom.image import ImageRef
from moorage.scan.sbom.referrer import MEDIA_TYPES, attach_sbom, stored_sbom
from moorage.scan.sbom.spdx import spdx_document

__all__ = ["ImageRef", "MEDIA_TYPES", "attach_sbom", "cyclonedx_document", "sbom_document",
           "spdx_document", "stored_sbom"]


def sbom_document(format: str, inventory: Inventory, image: ImageRef) -> bytes:
    """The document of `format` ("cyclonedx" | "spdx"): what `moorage sbom --format` and
    the API's `?format=` will ask for."""
    if format == "cyclonedx":
        return cyclonedx_document(inventory, image)
    if format == "spdx":
        return spdx_document(inventory, image)
    raise ValueError(f"unknown SBOM format {format!r}: expected cyclonedx or spdx")
