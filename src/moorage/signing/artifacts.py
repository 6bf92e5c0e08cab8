"""STAND-IN, replaced on merge by the "formats" part's module of the same path (issue 17's
agreed interface). Only what the signing service needs to run and be tested before that
merge: cosign's legacy `.sig` signature manifest and the Sigstore bundle referrer, built the
way cosign builds them (key-signed only). The real module is the reference; do not extend
this one.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from moorage.signing.keys import PublicKey

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes
    annotations: dict[str, str] | None = None

    @property
    def digest(self) -> str:
        return _digest(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self) -> dict[str, object]:
        out: dict[str, object] = {"mediaType": self.media_type, "size": self.size,
                                  "digest": self.digest}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class Artifact:
    manifest: bytes
    media_type: str
    blobs: list[Blob]


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int


def signature_tag(digest: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}-{hexpart}.sig"


def simple_signing_payload(docker_reference: str, digest: str) -> bytes:
    return json.dumps({"critical": {"identity": {"docker-reference": docker_reference},
                                    "image": {"docker-manifest-digest": digest},
                                    "type": "cosign container image signature"},
                       "optional": None}, separators=(",", ":")).encode()


def legacy_layer_annotations(signature: bytes, *, certificate: bytes | None = None,
                             chain: bytes | None = None) -> dict[str, str]:
    out = {SIGNATURE_ANNOTATION: base64.b64encode(signature).decode()}
    if certificate:
        out[CERTIFICATE_ANNOTATION] = certificate.decode()
    if chain:
        out[CHAIN_ANNOTATION] = chain.decode()
    return out


def legacy_signature_manifest(layers: Sequence[Blob]) -> Artifact:
    config = json.dumps({"architecture": "", "created": "0001-01-01T00:00:00Z",
                         "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
                         "rootfs": {"type": "layers",
                                    "diff_ids": [b.digest for b in layers]},
                         "config": {}}, separators=(",", ":")).encode()
    config_blob = Blob(OCI_CONFIG, config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": config_blob.descriptor(),
                           "layers": [b.descriptor() for b in layers]},
                          separators=(",", ":")).encode()
    return Artifact(manifest, OCI_MANIFEST, [config_blob, *layers])


def intoto_statement(subject_name: str, digest: str) -> bytes:
    algorithm, _, hexpart = digest.partition(":")
    return json.dumps({"_type": "https://in-toto.io/Statement/v1",
                       "subject": [{"name": subject_name, "digest": {algorithm: hexpart}}],
                       "predicateType": COSIGN_SIGN_PREDICATE, "predicate": {}},
                      separators=(",", ":")).encode()


def sigstore_bundle(statement: bytes, signature: bytes, key: PublicKey) -> bytes:
    return json.dumps({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key.key_id}, "tlogEntries": []},
        "dsseEnvelope": {"payload": base64.b64encode(statement).decode(),
                         "payloadType": INTOTO_PAYLOAD_TYPE,
                         "signatures": [{"sig": base64.b64encode(signature).decode(),
                                         "keyid": ""}]}}, separators=(",", ":")).encode()


def bundle_referrer(subject: Descriptor, bundle: bytes) -> Artifact:
    config = Blob(OCI_EMPTY, b"{}")
    layer = Blob(BUNDLE_MEDIA_TYPE, bundle)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE_MEDIA_TYPE,
        "config": config.descriptor(), "layers": [layer.descriptor()],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest,
                    "size": subject.size},
        "annotations": {"dev.sigstore.bundle.content": "dsse-envelope",
                        "dev.sigstore.bundle.predicateType": COSIGN_SIGN_PREDICATE}},
        separators=(",", ":")).encode()
    return Artifact(manifest, OCI_MANIFEST, [config, layer])
