"""Verifying cosign signatures of an image, offline, with the keys and keyless identities a
registry trusts. Pure: no I/O but the blob-reading callback given to `candidates_of`.

Two steps, so the caller decides where blobs come from and where the CPU work runs:
`candidates_of` turns a signature manifest (the legacy `.sig` tag, or a Sigstore bundle
referrer) into candidates; `verify` turns candidates into verdicts. Both are bounded and
never raise on bad input: whatever is wrong becomes a verdict "not verified: <reason>".
`verify` does public-key and certificate work (RSA, chains): call it off the event loop.

Bounds (all inputs are attacker-controlled: anyone who can push to a repository can push a
`.sig` tag or a referrer):
- a signature manifest: MAX_MANIFEST_BYTES (1 MiB) and at most MAX_LAYERS (64) layers;
- a simple-signing payload: MAX_PAYLOAD_BYTES (64 KiB; cosign's are under 1 KiB);
- a bundle: MAX_BUNDLE_BYTES (1 MiB; a keyless bundle with its inclusion proof is ~10 KiB);
- one annotation value: MAX_ANNOTATION_BYTES (64 KiB; a certificate chain is ~3 KiB, a Rekor
  bundle ~5 KiB); a Rekor entry body: keyless.MAX_REKOR_BODY; a certificate chain:
  keyless.MAX_CHAIN certificates; tlog entries in a bundle: MAX_TLOG_ENTRIES.

Scope is the caller's: `keys` and `identities` are the ones that apply to the image's
repository (instance-wide plus its namespace's). A keyless signature counts only when its
certificate chains to `root` and its signer (SAN and OIDC issuer, exactly) is a trusted
identity. A Rekor entry that comes with a signature is checked whenever `root` has Rekor keys
(a bad SET fails the signature); with no trust root it is ignored and `signed_at` is None.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from moorage.oci import mediatypes
from moorage.signing import artifacts, dsse, keyless
from moorage.signing.keyless import RekorEntry, TrustRoot
from moorage.signing.keys import EC_CURVES, RSA_SIZES, PublicKey

__all__ = ["Candidate", "TrustRoot", "TrustedIdentity", "TrustedKey", "Verdict",
           "candidates_of", "verify"]

MAX_MANIFEST_BYTES = 1024 * 1024
MAX_LAYERS = 64
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_BUNDLE_BYTES = 1024 * 1024
MAX_ANNOTATION_BYTES = 64 * 1024
MAX_TLOG_ENTRIES = 8

BUNDLE_MEDIA_TYPES = {
    "application/vnd.dev.sigstore.bundle.v0.3+json": "0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.3": "0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2": "0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1": "0.1",
}


@dataclass(frozen=True)
class TrustedKey:
    id: str
    name: str
    scope: str  # "instance" | "<namespace>"
    key: PublicKey


@dataclass(frozen=True)
class TrustedIdentity:
    """A keyless signer: the certificate's SAN (email or URI) and OIDC issuer, both exact."""

    id: str
    subject: str
    issuer: str
    scope: str


@dataclass(frozen=True)
class Candidate:
    """One signature found for an image. `error` is set when the signature could not even be
    read (a missing or oversized blob, a malformed manifest): it then verifies as
    "not verified: <error>"."""

    format: str  # "cosign" (legacy .sig layer) | "bundle" (Sigstore bundle referrer)
    source: str  # "<where> layer <n>" for a .sig layer, the referrer's digest for a bundle
    media_type: str
    data: bytes
    annotations: dict[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Verdict:
    """`key_id` is the id of the TrustedKey or TrustedIdentity that verified the signature;
    `signer` the key's name or "SAN (issuer)"; `signed_at` Rekor's integrated time when a
    Rekor entry was checked."""

    verified: bool
    reason: str
    format: str
    source: str
    key_id: str | None = None
    signer: str | None = None
    signed_at: datetime | None = None


# -- candidates --------------------------------------------------------------------------------

def _bad(fmt: str, source: str, reason: str, media_type: str = "") -> Candidate:
    return Candidate(fmt, source, media_type, b"", {}, reason)


def candidates_of(manifest: bytes, media_type: str,
                  read_blob: Callable[[str, int], bytes | None], *,
                  source: str | None = None) -> list[Candidate]:
    """The signatures a `.sig` manifest or a bundle referrer holds (`media_type`: the
    manifest's, an image manifest type, or "" when unknown). `read_blob(digest,
    max_bytes)` returns the blob, or None when it is missing or larger than max_bytes. Blobs
    are checked against their descriptor's digest. `source` names where the manifest was
    found (e.g. "repo:sha256-….sig"); by default its digest."""
    where = source or "sha256:" + hashlib.sha256(manifest).hexdigest()
    if media_type and media_type not in mediatypes.IMAGE_MANIFESTS:
        return [_bad("cosign", where, f"the signature manifest's media type "
                                      f"{media_type[:80]!r} is not an image manifest")]
    if len(manifest) > MAX_MANIFEST_BYTES:
        return [_bad("cosign", where, f"the signature manifest is too large ({len(manifest)} "
                                      f"bytes; at most {MAX_MANIFEST_BYTES})")]
    try:
        doc = json.loads(manifest)
    except (ValueError, UnicodeDecodeError):
        return [_bad("cosign", where, "the signature manifest is not JSON")]
    if not isinstance(doc, dict) or not isinstance(doc.get("layers"), list):
        return [_bad("cosign", where, "the signature manifest has no layers")]
    layers = doc["layers"]
    is_bundle = doc.get("artifactType") in BUNDLE_MEDIA_TYPES or any(
        isinstance(layer, dict) and str(layer.get("mediaType", "")).startswith(
            "application/vnd.dev.sigstore.bundle") for layer in layers[:MAX_LAYERS])
    fmt = "bundle" if is_bundle else "cosign"
    if not layers:
        return [_bad(fmt, where, "the signature manifest has no layers")]
    if len(layers) > MAX_LAYERS:
        return [_bad(fmt, where, f"the signature manifest has {len(layers)} layers (at most "
                                 f"{MAX_LAYERS})")]
    out = []
    for n, layer in enumerate(layers):
        at = where if is_bundle and len(layers) == 1 else f"{where} layer {n}"
        out.append(_candidate(fmt, at, layer, read_blob))
    return out


def _candidate(fmt: str, at: str, layer: object,
               read_blob: Callable[[str, int], bytes | None]) -> Candidate:
    if not isinstance(layer, dict):
        return _bad(fmt, at, "a layer descriptor is not a JSON object")
    mt, digest, size = layer.get("mediaType"), layer.get("digest"), layer.get("size")
    if not isinstance(mt, str) or not isinstance(digest, str) or type(size) is not int:
        return _bad(fmt, at, "a layer descriptor lacks mediaType, digest or size")
    annotations = layer.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()):
        return _bad(fmt, at, "the layer annotations are not strings", mt)
    total = sum(len(k) + len(v) for k, v in annotations.items())
    if total > 4 * MAX_ANNOTATION_BYTES:
        return _bad(fmt, at, f"the layer annotations are too large ({total} bytes)", mt)
    limit = MAX_BUNDLE_BYTES if fmt == "bundle" else MAX_PAYLOAD_BYTES
    if size < 0 or size > limit:
        return _bad(fmt, at, f"the layer is too large ({size} bytes; at most {limit})", mt)
    data = read_blob(digest, limit)
    if data is None:
        return _bad(fmt, at, f"the layer blob {digest[:80]} cannot be read (missing, or "
                             f"larger than {limit} bytes)", mt)
    if len(data) > limit or "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        return _bad(fmt, at, f"the layer blob does not match its digest {digest[:80]}", mt)
    return Candidate(fmt, at, mt, data, dict(annotations))


# -- verification ------------------------------------------------------------------------------

def verify(image_digest: str, candidates: Sequence[Candidate], keys: Sequence[TrustedKey],
           identities: Sequence[TrustedIdentity] = (),
           root: TrustRoot | None = None, *, now: datetime | None = None) -> list[Verdict]:
    """One verdict per candidate. Blocking (signature and chain checks). `now`: the time a
    certificate without a Rekor entry must be valid at (default: the clock's; tests set it)."""
    out = []
    token = _checked_at.set(now)
    try:
        for candidate in candidates:
            try:
                out.append(_verify_one(image_digest, candidate, keys, identities, root))
            except Exception as exc:  # a last guard: a verdict, never an exception
                out.append(_no(candidate, f"the signature could not be checked "
                                          f"({type(exc).__name__})"))
    finally:
        _checked_at.reset(token)
    return out


# The `now` of the verify() call in progress, read where a certificate's validity is checked
# (deep in the keyless path), so the time need not be threaded through every step.
_checked_at: contextvars.ContextVar[datetime | None] = contextvars.ContextVar(
    "moorage_signing_checked_at", default=None)


def _no(candidate: Candidate, reason: str, **kw: object) -> Verdict:
    return Verdict(False, f"not verified: {reason}", candidate.format, candidate.source,
                   **kw)  # type: ignore[arg-type]


def _yes(candidate: Candidate, **kw: object) -> Verdict:
    return Verdict(True, "verified", candidate.format, candidate.source,
                   **kw)  # type: ignore[arg-type]


def _verify_one(image_digest: str, c: Candidate, keys: Sequence[TrustedKey],
                identities: Sequence[TrustedIdentity], root: TrustRoot | None) -> Verdict:
    if c.error:
        return _no(c, c.error)
    if c.format == "bundle":
        return _verify_bundle(image_digest, c, keys, identities, root)
    if c.format == "cosign":
        return _verify_legacy(image_digest, c, keys, identities, root)
    return _no(c, f"unknown signature format {c.format[:40]!r}")


def _supported(key: PublicKey) -> bool:
    k = key.key
    if isinstance(k, ec.EllipticCurvePublicKey):
        return k.curve.name in EC_CURVES
    if isinstance(k, rsa.RSAPublicKey):
        return k.key_size in RSA_SIZES
    return isinstance(k, ed25519.Ed25519PublicKey)


def _key_verifies(key: PublicKey, signature: bytes, data: bytes) -> bool:
    """cosign's schemes (keys.PublicKey.verify), and RSA-PSS, which cosign also accepts."""
    if key.verify(signature, data):
        return True
    if isinstance(key.key, rsa.RSAPublicKey):
        try:
            key.key.verify(signature, data, padding.PSS(padding.MGF1(hashes.SHA256()),
                                                        padding.PSS.AUTO), hashes.SHA256())
            return True
        except (InvalidSignature, ValueError):
            return False
    return False


def _match_key(keys: Sequence[TrustedKey], signatures: Sequence[bytes], data: bytes,
               hint: str | None = None) -> tuple[TrustedKey | None, bytes | None, str]:
    """The trusted key that verifies one of `signatures` over `data`, or why none does."""
    ordered = sorted(keys, key=lambda k: k.key.key_id != hint) if hint else list(keys)
    unsupported = []
    for trusted in ordered:
        if not _supported(trusted.key):
            unsupported.append(trusted)
            continue
        for sig in signatures:
            if _key_verifies(trusted.key, sig, data):
                return trusted, sig, ""
    if not keys:
        return None, None, "no trusted key applies to this repository"
    if unsupported and len(unsupported) == len(keys):
        names = ", ".join(f"{k.name!r} ({k.key.algorithm})" for k in unsupported[:3])
        return None, None, f"the trusted key {names} has an unsupported algorithm"
    return None, None, f"no trusted key verifies this signature ({len(keys)} tried)"


def _b64_annotation(c: Candidate, name: str) -> bytes | str:
    value = c.annotations.get(name)
    if value is None:
        return f"the layer has no {name} annotation"
    if len(value) > MAX_ANNOTATION_BYTES:
        return f"the {name} annotation is too large ({len(value)} bytes)"
    try:  # line breaks are skipped, as Go's base64 decoder (and so cosign) skips them
        raw = base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        return f"the {name} annotation is not valid base64"
    return raw if raw else f"the {name} annotation is empty"


def _signed_digest(payload: bytes) -> str:
    """The docker-manifest-digest of a simple-signing payload, or raise ValueError(reason)."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("the signed payload is not JSON") from None
    critical = doc.get("critical") if isinstance(doc, dict) else None
    if not isinstance(critical, dict):
        raise ValueError("the signed payload is not a simple-signing payload")
    if critical.get("type") != artifacts.COSIGN_SIGNATURE_TYPE:
        raise ValueError(f"the signed payload's type is {str(critical.get('type'))[:80]!r}, "
                         f"not {artifacts.COSIGN_SIGNATURE_TYPE!r}")
    image = critical.get("image")
    digest = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    if not isinstance(digest, str):
        raise ValueError("the signed payload names no docker-manifest-digest")
    return digest


def _rekor_from_legacy(value: str) -> RekorEntry | str:
    if len(value) > MAX_ANNOTATION_BYTES:
        return "the Rekor bundle annotation is too large"
    try:
        doc = json.loads(value)
        p = doc["Payload"]
        body_b64, t, idx, log_id = p["body"], p["integratedTime"], p["logIndex"], p["logID"]
        if not (isinstance(body_b64, str) and type(t) is int and type(idx) is int
                and isinstance(log_id, str)):
            raise TypeError
        body = base64.b64decode(body_b64, validate=True)
        sig = base64.b64decode(doc["SignedEntryTimestamp"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        return "the Rekor bundle annotation cannot be read"
    if len(body) > keyless.MAX_REKOR_BODY:
        return "the Rekor entry is too large"
    return RekorEntry(body, body_b64, t, idx, log_id.lower(), sig)


def _rekor_from_bundle(entry: object) -> RekorEntry | str:
    try:
        body_b64 = entry["canonicalizedBody"]  # type: ignore[index]
        body = base64.b64decode(body_b64, validate=True)
        log_id = base64.b64decode(entry["logId"]["keyId"], validate=True).hex()  # type: ignore[index]
        t = int(entry["integratedTime"])  # type: ignore[index]
        idx = int(entry["logIndex"])  # type: ignore[index]
        sig = base64.b64decode(entry["inclusionPromise"]["signedEntryTimestamp"],  # type: ignore[index]
                               validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        return "the bundle's Rekor entry has no readable signed entry timestamp"
    if len(body) > keyless.MAX_REKOR_BODY:
        return "the Rekor entry is too large"
    return RekorEntry(body, body_b64, t, idx, log_id, sig)


def _check_rekor(entries: Sequence[RekorEntry], root: TrustRoot, *, payload: bytes,
                 signature: bytes, signer_der: bytes) -> datetime | str:
    """The integrated time of the first entry whose SET and body check out, or why none."""
    reason = "there is no Rekor entry"
    for entry in entries:
        reason = (keyless.verify_set(entry, root)
                  or keyless.check_entry_body(entry, payload=payload, signature=signature,
                                              signer_der=signer_der))
        if reason is None:
            return keyless.integrated_at(entry)
    return reason


def _key_der(key: PublicKey) -> bytes:
    return key.der


def _keyless(c: Candidate, *, cert: x509.Certificate, chain: Sequence[x509.Certificate],
             signatures: Sequence[bytes], data: bytes, rekor_payload: bytes,
             entries: Sequence[RekorEntry], identities: Sequence[TrustedIdentity],
             root: TrustRoot | None) -> Verdict:
    subject, issuer = keyless.identity(cert)
    signer = f"{subject} ({issuer})" if issuer else subject
    sig = next((s for s in signatures if keyless.verify_with_certificate(cert, s, data)), None)
    if sig is None:
        return _no(c, "the signature does not match its certificate", signer=signer)
    if root is None:
        return _no(c, f"signer {signer} is keyless and no trust root is configured",
                   signer=signer)
    signed_at: datetime | None = None
    if entries:
        when = _check_rekor(entries, root, payload=rekor_payload, signature=sig,
                            signer_der=cert.public_bytes(serialization.Encoding.DER))
        if isinstance(when, str):
            return _no(c, when, signer=signer)
        signed_at = when
    reason = keyless.verify_chain(cert, chain, root,
                                  signed_at or _checked_at.get() or datetime.now(UTC))
    if reason is not None:
        return _no(c, reason, signer=signer, signed_at=signed_at)
    match = next((i for i in identities if i.subject == subject and i.issuer == issuer), None)
    if match is None:
        return _no(c, f"signer {subject} (issuer {issuer or 'none'}) is not trusted "
                      f"(its certificate chains to the trust root)",
                   signer=signer, signed_at=signed_at)
    return _yes(c, key_id=match.id, signer=signer, signed_at=signed_at)


def _with_key(c: Candidate, trusted: TrustedKey, sig: bytes, *, rekor_payload: bytes,
              entries: Sequence[RekorEntry], root: TrustRoot | None) -> Verdict:
    signed_at = None
    if entries and root is not None and root.rekor_keys:
        when = _check_rekor(entries, root, payload=rekor_payload, signature=sig,
                            signer_der=_key_der(trusted.key))
        if isinstance(when, str):
            return _no(c, when, key_id=trusted.id, signer=trusted.name)
        signed_at = when
    return _yes(c, key_id=trusted.id, signer=trusted.name, signed_at=signed_at)


def _verify_legacy(image_digest: str, c: Candidate, keys: Sequence[TrustedKey],
                   identities: Sequence[TrustedIdentity], root: TrustRoot | None) -> Verdict:
    if c.media_type != artifacts.SIMPLE_SIGNING:
        return _no(c, f"the layer's media type {c.media_type[:80]!r} is not a cosign "
                      f"signature ({artifacts.SIMPLE_SIGNING})")
    if len(c.data) > MAX_PAYLOAD_BYTES:
        return _no(c, f"the signed payload is too large ({len(c.data)} bytes; at most "
                      f"{MAX_PAYLOAD_BYTES})")
    try:
        digest = _signed_digest(c.data)
    except ValueError as exc:
        return _no(c, str(exc))
    if digest != image_digest:
        return _no(c, f"signed digest {digest[:80]} is not this image's")
    sig = _b64_annotation(c, artifacts.SIGNATURE_ANNOTATION)
    if isinstance(sig, str):
        return _no(c, sig)
    entries: list[RekorEntry] = []
    if artifacts.BUNDLE_ANNOTATION in c.annotations:
        entry = _rekor_from_legacy(c.annotations[artifacts.BUNDLE_ANNOTATION])
        if isinstance(entry, str):
            return _no(c, entry)
        entries.append(entry)
    trusted, _, why = _match_key(keys, [sig], c.data)
    if trusted is not None:
        return _with_key(c, trusted, sig, rekor_payload=c.data, entries=entries, root=root)
    cert_pem = c.annotations.get(artifacts.CERTIFICATE_ANNOTATION)
    if cert_pem is None:
        return _no(c, why)
    certs = keyless.load_certificates(cert_pem, "certificate annotation")
    if isinstance(certs, str):
        return _no(c, certs)
    chain: list[x509.Certificate] = []
    if artifacts.CHAIN_ANNOTATION in c.annotations:
        loaded = keyless.load_certificates(c.annotations[artifacts.CHAIN_ANNOTATION],
                                           "chain annotation")
        if isinstance(loaded, str):
            return _no(c, loaded)
        chain = loaded
    return _keyless(c, cert=certs[0], chain=chain + certs[1:], signatures=[sig], data=c.data,
                    rekor_payload=c.data, entries=entries, identities=identities, root=root)


def _verify_bundle(image_digest: str, c: Candidate, keys: Sequence[TrustedKey],
                   identities: Sequence[TrustedIdentity], root: TrustRoot | None) -> Verdict:
    if len(c.data) > MAX_BUNDLE_BYTES:
        return _no(c, f"the bundle is too large ({len(c.data)} bytes; at most "
                      f"{MAX_BUNDLE_BYTES})")
    try:
        doc = json.loads(c.data)
    except (ValueError, UnicodeDecodeError):
        return _no(c, "the bundle is not JSON")
    if not isinstance(doc, dict):
        return _no(c, "the bundle is not a JSON object")
    mt = doc.get("mediaType")
    if mt not in BUNDLE_MEDIA_TYPES:
        return _no(c, f"unsupported bundle media type {str(mt)[:80]!r} (expected "
                      f"{artifacts.BUNDLE_V03})")
    if "dsseEnvelope" not in doc:
        return _no(c, "the bundle holds no DSSE envelope (a message signature does not name "
                      "an image)")
    try:
        envelope = dsse.envelope_from_obj(doc["dsseEnvelope"])
        statement = dsse.parse_statement(envelope)
    except dsse.DsseError as exc:
        return _no(c, str(exc))
    algorithm, _, hexpart = image_digest.partition(":")
    why = dsse.check_claims(statement, hexpart if algorithm == "sha256" else "")
    if why is not None:
        return _no(c, why.replace("artifact's", "image's"))
    material = doc.get("verificationMaterial")
    if not isinstance(material, dict):
        return _no(c, "the bundle has no verificationMaterial")
    raw_entries = material.get("tlogEntries") or []
    if not isinstance(raw_entries, list) or len(raw_entries) > MAX_TLOG_ENTRIES:
        return _no(c, f"the bundle's tlogEntries are not a list of at most "
                      f"{MAX_TLOG_ENTRIES}")
    entries = []
    for raw in raw_entries:
        entry = _rekor_from_bundle(raw)
        if isinstance(entry, str):
            return _no(c, entry)
        entries.append(entry)
    signatures = [sig for _, sig in envelope.signatures]
    data = envelope.pae()
    cert_der = _bundle_certificate(material)
    if isinstance(cert_der, str):
        return _no(c, cert_der)
    if cert_der is None:
        public = material.get("publicKey")
        hint = public.get("hint") if isinstance(public, dict) else None
        if not isinstance(hint, str):
            return _no(c, "the bundle names neither a certificate nor a public key")
        trusted, sig, reason = _match_key(keys, signatures, data, hint)
        if trusted is None or sig is None:
            return _no(c, reason)
        return _with_key(c, trusted, sig, rekor_payload=envelope.payload, entries=entries,
                         root=root)
    try:
        cert = x509.load_der_x509_certificate(cert_der)
    except ValueError:
        return _no(c, "the bundle's certificate cannot be read")
    return _keyless(c, cert=cert, chain=[], signatures=signatures, data=data,
                    rekor_payload=envelope.payload, entries=entries, identities=identities,
                    root=root)


def _bundle_certificate(material: dict) -> bytes | str | None:
    """The leaf certificate's DER (v0.3 `certificate`, older `x509CertificateChain`)."""
    try:
        if "certificate" in material:
            raw = material["certificate"]["rawBytes"]
        elif "x509CertificateChain" in material:
            raw = material["x509CertificateChain"]["certificates"][0]["rawBytes"]
        else:
            return None
        if len(raw) > MAX_ANNOTATION_BYTES:
            return "the bundle's certificate is too large"
        return base64.b64decode(raw, validate=True)
    except (KeyError, IndexError, TypeError, ValueError, binascii.Error):
        return "the bundle's certificate cannot be read"
