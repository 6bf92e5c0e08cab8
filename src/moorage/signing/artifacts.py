"""What cosign stores in a registry, built byte for byte as cosign builds it, so that a
signature made here is read by cosign and a signature cosign made is read here.

Two formats exist side by side (cosign's specs/SIGNATURE_SPEC.md and specs/BUNDLE_SPEC.md):

- The legacy `.sig` tag: an OCI image manifest at tag `sha256-<hex>.sig` whose layers are
  simple-signing payloads (`application/vnd.dev.cosign.simplesigning.v1+json`), one layer per
  signature, the signature itself (and, for keyless signing, the certificate, its chain and
  the Rekor bundle) in the layer's annotations. Signing again appends a layer.
- cosign v3's bundles: an in-toto Statement v1 about the image digest (predicate type
  `https://sigstore.dev/cosign/sign/v1`, empty predicate), wrapped in a DSSE envelope, in a
  Sigstore bundle v0.3, stored as an OCI 1.1 artifact whose `subject` is the image (found
  through the referrers API).

Everything here is pure: bytes in, bytes out, no I/O. JSON is written in the field order and
compact form of Go's encoding/json, because cosign hashes and signs exact bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from moorage.oci import mediatypes
from moorage.signing import dsse
from moorage.signing.keys import PublicKey

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"  # the Rekor SET bundle of a legacy signature
COSIGN_SIGNATURE_TYPE = "cosign container image signature"

BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_CONTENT_ANNOTATION = "dev.sigstore.bundle.content"
BUNDLE_PREDICATE_ANNOTATION = "dev.sigstore.bundle.predicateType"
CREATED_ANNOTATION = "org.opencontainers.image.created"
TITLE_ANNOTATION = "org.opencontainers.image.title"

INTOTO_STATEMENT_V1 = "https://in-toto.io/Statement/v1"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"  # what cosign v3 `sign` states

# go-containerregistry's zero time, which cosign leaves in a signature image's config
_ZERO_TIME = "0001-01-01T00:00:00Z"


def _json(value: object) -> bytes:
    """Compact JSON as Go writes it for these documents (keys in the order given)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    """A blob to push (a config or a layer) with the annotations of its descriptor."""

    media_type: str
    data: bytes
    annotations: dict[str, str] | None = None

    @property
    def digest(self) -> str:
        return _sha256(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self) -> dict[str, object]:
        """The OCI descriptor, fields in go-containerregistry's order."""
        out: dict[str, object] = {"mediaType": self.media_type, "size": self.size,
                                  "digest": self.digest}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class Artifact:
    """A manifest ready to push, and the blobs (config first, then layers) to push before it."""

    manifest: bytes
    media_type: str
    blobs: list[Blob]

    @property
    def digest(self) -> str:
        return _sha256(self.manifest)


@dataclass(frozen=True)
class Descriptor:
    """What a referrer's `subject` names: the signed manifest."""

    media_type: str
    digest: str
    size: int


def signature_tag(digest: str) -> str:
    """The tag cosign stores an image's legacy signatures at: `sha256:ab…` → `sha256-ab….sig`."""
    algorithm, sep, hexpart = digest.partition(":")
    if not sep or not algorithm or not hexpart:
        raise ValueError(f"not a digest: {digest[:80]!r}")
    return f"{algorithm}-{hexpart}.sig"


def simple_signing_payload(docker_reference: str, digest: str) -> bytes:
    """The payload `cosign sign` signs for an image: the simple-signing JSON of
    containers/image with cosign's type and no optional claims (`"optional":null`), exactly as
    cosign serialises it (Go's encoding/json: compact, keys in this order)."""
    return _json({"critical": {"identity": {"docker-reference": docker_reference},
                               "image": {"docker-manifest-digest": digest},
                               "type": COSIGN_SIGNATURE_TYPE},
                  "optional": None})


def legacy_layer_annotations(signature: bytes, *, certificate: bytes | None = None,
                             chain: bytes | None = None,
                             rekor_bundle: bytes | None = None) -> dict[str, str]:
    """The annotations of a `.sig` layer: the base64 signature and, for certificate-based
    signatures, the PEM certificate and chain (and the Rekor bundle JSON when there is one)."""
    out = {SIGNATURE_ANNOTATION: base64.b64encode(signature).decode()}
    if certificate is not None:
        out[CERTIFICATE_ANNOTATION] = certificate.decode()
    if chain is not None:
        out[CHAIN_ANNOTATION] = chain.decode()
    if rekor_bundle is not None:
        out[BUNDLE_ANNOTATION] = rekor_bundle.decode()
    return out


def legacy_signature_layer(payload: bytes, annotations: dict[str, str]) -> Blob:
    """One signature as a `.sig` layer: the payload bytes, annotated."""
    return Blob(SIMPLE_SIGNING, payload, dict(annotations))


def legacy_signature_manifest(layers: Sequence[Blob]) -> Artifact:
    """The `.sig` manifest holding `layers` (the existing signatures plus the new one: cosign
    reads the manifest at the tag, appends a layer and pushes it again). The config is the one
    go-containerregistry writes for an image built from scratch by appending uncompressed
    layers: zero times, one history entry and one diff_id (the layer's own digest) per layer."""
    if not layers:
        raise ValueError("a signature manifest needs at least one signature layer")
    config = _json({"architecture": "", "created": _ZERO_TIME,
                    "history": [{"created": _ZERO_TIME} for _ in layers],
                    "os": "", "rootfs": {"type": "layers",
                                         "diff_ids": [layer.digest for layer in layers]},
                    "config": {}})
    config_blob = Blob(mediatypes.OCI_CONFIG, config)
    manifest = _json({"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
                      "config": config_blob.descriptor(),
                      "layers": [layer.descriptor() for layer in layers]})
    return Artifact(manifest, mediatypes.OCI_MANIFEST, [config_blob, *layers])


def intoto_statement(subject_name: str, digest: str) -> bytes:
    """The in-toto Statement v1 cosign v3 `sign` makes for an image (with the new bundle
    format): one subject, the image's name and sha256, predicate type
    `https://sigstore.dev/cosign/sign/v1` and an empty predicate."""
    algorithm, _, hexpart = digest.partition(":")
    if algorithm != "sha256" or len(hexpart) != 64:
        raise ValueError(f"not a sha256 digest: {digest[:80]!r}")
    return _json({"_type": INTOTO_STATEMENT_V1,
                  "subject": [{"name": subject_name, "digest": {"sha256": hexpart}}],
                  "predicateType": COSIGN_SIGN_PREDICATE, "predicate": {}})


def sigstore_bundle(statement: bytes, signature: bytes, key: PublicKey) -> bytes:
    """A key-signed Sigstore bundle v0.3: the statement in a DSSE envelope with `signature`
    (over the envelope's pre-authentication encoding, see dsse.pae), the key named by its hint
    (base64 SHA-256 of its DER), no transparency-log entry (cosign with --tlog-upload=false)."""
    return _json({"mediaType": BUNDLE_V03,
                  "verificationMaterial": {"publicKey": {"hint": key.key_id},
                                           "tlogEntries": []},
                  "dsseEnvelope": {"payload": base64.b64encode(statement).decode(),
                                   "payloadType": dsse.INTOTO_PAYLOAD_TYPE,
                                   "signatures": [{"sig": base64.b64encode(signature).decode(),
                                                   "keyid": ""}]}})


def _predicate_type(bundle: bytes) -> str | None:
    try:
        doc = json.loads(bundle)
        statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
        value = statement.get("predicateType")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def bundle_referrer(subject: Descriptor, bundle: bytes, *,
                    created: datetime | None = None) -> Artifact:
    """The OCI 1.1 manifest cosign pushes for a bundle (BUNDLE_SPEC.md): artifactType the
    bundle media type, the empty config, one layer (the bundle JSON), the annotations telling
    what the bundle holds and when it was made, and `subject` the signed manifest."""
    when = (created or datetime.now(UTC)).astimezone(UTC)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    layer = Blob(BUNDLE_V03, bundle)
    layer = Blob(BUNDLE_V03, bundle,
                 {TITLE_ANNOTATION: layer.digest.replace(":", "-") + ".sigstore.json"})
    config = Blob(mediatypes.OCI_EMPTY, mediatypes.EMPTY_JSON)
    annotations = {BUNDLE_CONTENT_ANNOTATION: "dsse-envelope"}
    predicate = _predicate_type(bundle)
    if predicate is not None:
        annotations[BUNDLE_PREDICATE_ANNOTATION] = predicate
    annotations[CREATED_ANNOTATION] = stamp
    manifest = _json({"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
                      "artifactType": BUNDLE_V03, "config": config.descriptor(),
                      "layers": [layer.descriptor()],
                      "subject": {"mediaType": subject.media_type, "size": subject.size,
                                  "digest": subject.digest},
                      "annotations": annotations})
    return Artifact(manifest, mediatypes.OCI_MANIFEST, [config, layer])
