"""STAND-IN, replaced on merge by the "formats" part's verifier of the same path (issue 17's
agreed interface). Key-signed signatures only (legacy `.sig` layers and DSSE bundles); a
keyless one is "not verified". Pure and bounded; never raises on bad input.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from moorage.signing import artifacts as a
from moorage.signing.keys import PublicKey

MAX_LAYERS = 64
MAX_BLOB = 1 << 20


@dataclass(frozen=True)
class TrustedKey:
    id: str
    name: str
    scope: str
    key: PublicKey


@dataclass(frozen=True)
class TrustedIdentity:
    id: str
    subject: str
    issuer: str
    scope: str


class TrustRoot:
    def __init__(self, raw: bytes = b"") -> None:
        self.raw = raw

    @classmethod
    def from_trusted_root_json(cls, data: bytes) -> TrustRoot:
        try:
            json.loads(data)
        except ValueError:
            raise ValueError("the trusted root is not JSON") from None
        return cls(data)

    @classmethod
    def from_pems(cls, fulcio: bytes, rekor: bytes) -> TrustRoot:
        return cls(fulcio + rekor)


@dataclass(frozen=True)
class Candidate:
    format: str
    source: str
    media_type: str
    data: bytes
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    verified: bool
    reason: str
    format: str
    source: str
    key_id: str | None
    signer: str | None
    signed_at: datetime | None = None


def candidates_of(manifest: bytes, media_type: str,
                  read_blob: Callable[[str, int], bytes | None]) -> list[Candidate]:
    try:
        doc = json.loads(manifest)
    except ValueError:
        return [Candidate("cosign", "manifest", media_type, b"", {"error": "not JSON"})]
    if not isinstance(doc, dict):
        return []
    layers = doc.get("layers") if isinstance(doc.get("layers"), list) else []
    bundle = doc.get("artifactType") == a.BUNDLE_MEDIA_TYPE
    out = []
    for n, layer in enumerate(layers[:MAX_LAYERS]):
        if not isinstance(layer, dict):
            continue
        digest, size = layer.get("digest"), layer.get("size")
        if not isinstance(digest, str) or not isinstance(size, int) or size > MAX_BLOB:
            continue
        data = read_blob(digest, size) or b""
        notes = layer.get("annotations") if isinstance(layer.get("annotations"), dict) else {}
        out.append(Candidate("bundle" if bundle else "cosign", f"layer {n}",
                             str(layer.get("mediaType", "")), data,
                             {str(k): str(v) for k, v in notes.items()}))
    return out


def _pae(payload_type: str, body: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def _by_key(keys: Sequence[TrustedKey], signature: bytes, data: bytes) -> TrustedKey | None:
    return next((k for k in keys if k.key.verify(signature, data)), None)


def _one(digest: str, c: Candidate, keys: Sequence[TrustedKey]) -> Verdict:
    def no(reason: str) -> Verdict:
        return Verdict(False, f"not verified: {reason}", c.format, c.source, None, None)

    try:
        if c.format == "cosign":
            if c.media_type != a.SIMPLE_SIGNING:
                return no(f"unknown layer media type {c.media_type[:80]!r}")
            sig = base64.b64decode(c.annotations.get(a.SIGNATURE_ANNOTATION, ""),
                                   validate=True)
            body = c.data
            signed = json.loads(body)["critical"]["image"]["docker-manifest-digest"]
        else:
            bundle = json.loads(c.data)
            envelope = bundle["dsseEnvelope"]
            body = base64.b64decode(envelope["payload"], validate=True)
            sig = base64.b64decode(envelope["signatures"][0]["sig"], validate=True)
            stmt = json.loads(body)
            algo, _, hexpart = digest.partition(":")
            subjects = stmt["subject"]
            signed = digest if any(s["digest"].get(algo) == hexpart for s in subjects) \
                else "another digest"
            body = _pae(envelope["payloadType"], body)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, binascii.Error):
        return no("malformed signature")
    key = _by_key(keys, sig, body)
    if key is None:
        return no("no trusted key made this signature")
    if signed != digest:
        return no(f"the signature is of {str(signed)[:80]}, not of {digest}")
    return Verdict(True, "verified", c.format, c.source, key.key.key_id, key.name)


def verify(image_digest: str, candidates: Sequence[Candidate], keys: Sequence[TrustedKey],
           identities: Sequence[TrustedIdentity] = (),
           root: TrustRoot | None = None) -> list[Verdict]:
    return [_one(image_digest, c, keys) for c in candidates]
