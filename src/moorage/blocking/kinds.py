"""Which manifests a pull policy applies to (pure): container images and indexes of them.

Never blocked, whatever the policy: what describes an image rather than being one — a
manifest with a `subject` (a referrer: a Sigstore bundle, an SBOM, an attestation), cosign's
signature, attestation and SBOM manifests (recognised by their layers' media types, since
cosign gives them an ordinary image config), and any other artifact (an `artifactType`, a
config that is not an image's: a Helm chart, a WASM module). Blocking those would hide the
very evidence a user needs to fix a blocked image, or refuse what a scanner cannot scan.
"""

from __future__ import annotations

import json

from moorage.oci import mediatypes as mt

IMAGE_CONFIGS = frozenset({mt.OCI_CONFIG, "application/vnd.docker.container.image.v1+json"})
# Layer media types of signatures, attestations and SBOMs (cosign, in-toto, Sigstore, SPDX,
# CycloneDX), matched by prefix.
EVIDENCE_LAYERS = (
    "application/vnd.dev.cosign.",  # simplesigning (.sig), attestations, artifacts
    "application/vnd.dsse.envelope",  # .att layers
    "application/vnd.in-toto",
    "application/vnd.dev.sigstore.",  # bundles
    "application/spdx", "text/spdx",
    "application/vnd.cyclonedx", "application/cyclonedx",
    "application/vnd.syft+json",
)


def subject_to_policy(content: bytes, media_type: str) -> bool:
    """True for an image or an index with at least one image among its children; False for
    everything that stays pullable whatever the policy (see the module docstring)."""
    if media_type not in mt.MANIFEST_TYPES:
        return False
    try:
        doc = json.loads(content)
    except ValueError:
        return False
    if not isinstance(doc, dict) or doc.get("subject") is not None or doc.get("artifactType"):
        return False
    if media_type in mt.INDEXES:
        children = doc.get("manifests")
        return isinstance(children, list) and any(
            isinstance(c, dict) and c.get("mediaType") in mt.IMAGE_MANIFESTS
            and not _attestation_child(c) for c in children)
    config = doc.get("config")
    if not isinstance(config, dict) or config.get("mediaType") not in IMAGE_CONFIGS:
        return False
    layers = doc.get("layers")
    if isinstance(layers, list) and layers and all(
            isinstance(x, dict) and str(x.get("mediaType", "")).startswith(EVIDENCE_LAYERS)
            for x in layers):
        return False
    return True


def _attestation_child(child: dict) -> bool:  # type: ignore[type-arg]
    notes = child.get("annotations")
    plat = child.get("platform")
    return ((isinstance(notes, dict)
             and notes.get("vnd.docker.reference.type") == "attestation-manifest")
            or (isinstance(plat, dict) and plat.get("os") == "unknown"))


__all__ = ["subject_to_policy"]
