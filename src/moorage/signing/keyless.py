"""Keyless (certificate-based) signatures checked offline: the signing certificate's chain up
to a Fulcio CA of a trust root, the Rekor signed entry timestamp (SET) with the trust root's
Rekor key, that the Rekor entry is about this very signature, and who signed.

Why each step:
- Fulcio certificates live ten minutes. They are checked at the time Rekor integrated the
  entry (the SET makes that time trustworthy), not now, as cosign does; without a Rekor entry
  (a private PKI) they are checked now.
- A SET is Rekor's ECDSA signature over the canonical JSON (sorted keys, no spaces)
  `{"body", "integratedTime", "logID" (hex), "logIndex"}`; the key is chosen by the log id
  (the SHA-256 of the key's DER), so an entry of an unknown log fails.
- The entry body (`hashedrekord` or `dsse`) must name the payload hash, the signature and the
  certificate of what is verified; otherwise a genuine SET of another entry would vouch for it.
- The signer is the certificate's SAN (email or URI) and the OIDC issuer extension
  (1.3.6.1.4.1.57264.1.8, a DER UTF8String; older certificates: .1.1, raw bytes).

Every check returns a reason (a str) or None; nothing here raises on bad input. Bounds: at
most MAX_CHAIN certificates in a chain, MAX_CERT_PEM bytes of PEM.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

MAX_CHAIN = 8
MAX_CERT_PEM = 64 * 1024
MAX_TRUST_ROOT = 1024 * 1024
MAX_REKOR_BODY = 256 * 1024

OID_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OID_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")


class TrustRootError(ValueError):
    """A trust root that cannot be read."""


@dataclass(frozen=True)
class TrustRoot:
    """The certificate authorities keyless signatures chain up to (every certificate of a CA's
    chain is a trust anchor, as in a Sigstore trusted root) and the Rekor logs' keys by log id
    (hex SHA-256 of the key's DER). A trusted root also says when each CA and each log key
    was in service (`validFor`): a CA or key retired before the signing time does not vouch
    for it. Windows are keyed by the CA certificate's SHA-256 fingerprint and by the log id."""

    cas: tuple[x509.Certificate, ...]
    rekor_keys: dict[str, object]
    ca_windows: dict[bytes, Window] = field(default_factory=dict)
    rekor_windows: dict[str, Window] = field(default_factory=dict)

    @classmethod
    def from_trusted_root_json(cls, data: bytes) -> TrustRoot:
        """A Sigstore trusted root (`application/vnd.dev.sigstore.trustedroot+json`)."""
        if len(data) > MAX_TRUST_ROOT:
            raise TrustRootError(f"the trusted root is too large (at most {MAX_TRUST_ROOT} "
                                 f"bytes)")
        cas: list[x509.Certificate] = []
        ca_windows: dict[bytes, Window] = {}
        keys: dict[str, object] = {}
        rekor_windows: dict[str, Window] = {}
        try:
            doc = json.loads(data)
            for ca in doc.get("certificateAuthorities", []):
                window = _window(ca.get("validFor"))
                for raw in ca["certChain"]["certificates"]:
                    cert = x509.load_der_x509_certificate(base64.b64decode(raw["rawBytes"]))
                    cas.append(cert)
                    ca_windows[cert.fingerprint(hashes.SHA256())] = window
            for tlog in doc.get("tlogs", []):
                key = serialization.load_der_public_key(
                    base64.b64decode(tlog["publicKey"]["rawBytes"]))
                keys[_log_id(key)] = key
                rekor_windows[_log_id(key)] = _window(tlog["publicKey"].get("validFor"))
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error,
                UnsupportedAlgorithm):
            raise TrustRootError("not a Sigstore trusted root") from None
        return cls(tuple(cas), keys, ca_windows, rekor_windows)

    @classmethod
    def from_pems(cls, fulcio: bytes, rekor: bytes) -> TrustRoot:
        """CA certificates (PEM, one or more) and Rekor public keys (PEM, one or more)."""
        if len(fulcio) > MAX_TRUST_ROOT or len(rekor) > MAX_TRUST_ROOT:
            raise TrustRootError("the trust root PEM is too large")
        try:
            cas = x509.load_pem_x509_certificates(fulcio) if fulcio.strip() else []
            keys = [serialization.load_pem_public_key(block)
                    for block in _pem_blocks(rekor, b"PUBLIC KEY")]
        except (ValueError, UnsupportedAlgorithm):
            raise TrustRootError("the trust root PEM cannot be read") from None
        return cls(tuple(cas), {_log_id(k): k for k in keys})


Window = tuple[datetime | None, datetime | None]


def _window(value: object) -> Window:
    """A trusted root's `validFor` {"start", "end"} (RFC 3339; either may be absent)."""
    if value is None:
        return (None, None)
    if not isinstance(value, dict):
        raise TypeError("validFor")
    start, end = value.get("start"), value.get("end")
    return (_time(start) if start else None, _time(end) if end else None)


def _time(value: object) -> datetime:
    if not isinstance(value, str):
        raise TypeError("time")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _in(window: Window | None, when: datetime) -> bool:
    if window is None:
        return True
    start, end = window
    return (start is None or start <= when) and (end is None or when <= end)


def _pem_blocks(data: bytes, label: bytes) -> list[bytes]:
    begin, end = b"-----BEGIN " + label + b"-----", b"-----END " + label + b"-----"
    out, pos = [], 0
    while (start := data.find(begin, pos)) >= 0:
        stop = data.find(end, start)
        if stop < 0:
            break
        out.append(data[start:stop + len(end)] + b"\n")
        pos = stop + len(end)
    return out


def _log_id(key: object) -> str:
    der = key.public_bytes(serialization.Encoding.DER,  # type: ignore[attr-defined]
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def load_certificates(pem: bytes | str, what: str) -> list[x509.Certificate] | str:
    """PEM certificates, or why they cannot be read."""
    raw = pem.encode() if isinstance(pem, str) else pem
    if len(raw) > MAX_CERT_PEM:
        return f"the {what} is too large (at most {MAX_CERT_PEM} bytes)"
    try:
        certs = x509.load_pem_x509_certificates(raw)
    except ValueError:
        return f"the {what} is not a PEM certificate"
    if len(certs) > MAX_CHAIN:
        return f"the {what} has {len(certs)} certificates (at most {MAX_CHAIN})"
    return certs


# -- chain -----------------------------------------------------------------------------------

def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _valid_at(cert: x509.Certificate, when: datetime) -> bool:
    return cert.not_valid_before_utc <= when <= cert.not_valid_after_utc


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_oid(
            ExtensionOID.BASIC_CONSTRAINTS).value.ca)
    except x509.ExtensionNotFound:
        return False


def verify_chain(leaf: x509.Certificate, intermediates: Sequence[x509.Certificate],
                 root: TrustRoot, when: datetime) -> str | None:
    """None when `leaf` chains, through `intermediates` (from the signature) if needed, to a
    CA of `root`, every certificate on the path valid at `when`; else why not."""
    if not root.cas:
        return "the trust root has no certificate authority"
    if _is_ca(leaf):
        return "the signing certificate is a CA certificate"
    try:  # absent means any use (as Go's x509 reads it); present, it must allow code signing
        usages = leaf.extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE).value
        if ExtendedKeyUsageOID.CODE_SIGNING not in usages:
            return "the signing certificate is not for code signing"
    except x509.ExtensionNotFound:
        pass
    if not _valid_at(leaf, when):
        return (f"the signing certificate was not valid at {when:%Y-%m-%d %H:%M:%S} UTC "
                f"(valid {leaf.not_valid_before_utc:%Y-%m-%d %H:%M:%S} to "
                f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M:%S})")
    anchors = {c.fingerprint(hashes.SHA256()) for c in root.cas}
    current = leaf
    for _ in range(MAX_CHAIN + 1):
        for ca in root.cas:
            if _issued_by(current, ca):
                if not _valid_at(ca, when) or not _in(
                        root.ca_windows.get(ca.fingerprint(hashes.SHA256())), when):
                    return ("the trust root's certificate authority was not in service at "
                            "signing time")
                return None
        step = next((c for c in intermediates if c is not current and _is_ca(c)
                     and c.fingerprint(hashes.SHA256()) not in anchors
                     and _issued_by(current, c)), None)
        if step is None:
            break
        if not _valid_at(step, when):
            return "an intermediate certificate was not valid at signing time"
        current = step
    return "the certificate chain does not reach a certificate authority of the trust root"


# -- identity ----------------------------------------------------------------------------------

def _der_utf8(raw: bytes) -> str | None:
    if len(raw) >= 2 and raw[0] == 0x0C:
        length, pos = raw[1], 2
        if length & 0x80:
            count = length & 0x7F
            length, pos = int.from_bytes(raw[2:2 + count], "big"), 2 + count
        try:
            return raw[pos:pos + length].decode()
        except UnicodeDecodeError:
            return None
    return None


def identity(cert: x509.Certificate) -> tuple[str, str]:
    """(subject, issuer) of a signing certificate: the first email or URI SAN, and the OIDC
    issuer extension ("" when absent, as in a private PKI)."""
    subject = ""
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        names = (san.get_values_for_type(x509.RFC822Name)
                 + san.get_values_for_type(x509.UniformResourceIdentifier))
        subject = names[0] if names else ""
    except x509.ExtensionNotFound:
        pass
    issuer = ""
    for oid, decode in ((OID_ISSUER_V2, _der_utf8),
                        (OID_ISSUER_V1, lambda raw: raw.decode(errors="replace"))):
        try:
            ext = cert.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        value = decode(ext.value)  # type: ignore[attr-defined]
        if value:
            issuer = value
            break
    return subject, issuer


# -- signatures with a certificate's key -----------------------------------------------------

def verify_with_certificate(cert: x509.Certificate, signature: bytes, data: bytes) -> bool:
    """Whether the certificate's key signed `data` (ECDSA with the curve's hash, RSA PKCS#1
    v1.5 or PSS with SHA-256, Ed25519)."""
    key = cert.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            algo = {"secp384r1": hashes.SHA384, "secp521r1": hashes.SHA512}.get(
                key.curve.name, hashes.SHA256)
            key.verify(signature, data, ec.ECDSA(algo()))
        elif isinstance(key, rsa.RSAPublicKey):
            try:
                key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                key.verify(signature, data, padding.PSS(padding.MGF1(hashes.SHA256()),
                                                        padding.PSS.AUTO), hashes.SHA256())
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


# -- Rekor -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RekorEntry:
    body: bytes  # the canonicalized entry (decoded)
    body_b64: str
    integrated_time: int
    log_index: int
    log_id_hex: str
    set_signature: bytes


def verify_set(entry: RekorEntry, root: TrustRoot) -> str | None:
    """None when the SET is the trust root's Rekor signature over this entry."""
    key = root.rekor_keys.get(entry.log_id_hex)
    if key is None:
        return f"the Rekor log {entry.log_id_hex[:16]}… is not in the trust root"
    if not _in(root.rekor_windows.get(entry.log_id_hex), integrated_at(entry)):
        return "the Rekor log key was not in service when the entry was integrated"
    payload = json.dumps({"body": entry.body_b64, "integratedTime": entry.integrated_time,
                          "logID": entry.log_id_hex, "logIndex": entry.log_index},
                         sort_keys=True, separators=(",", ":")).encode()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(entry.set_signature, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(entry.set_signature, payload)
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(entry.set_signature, payload, padding.PKCS1v15(), hashes.SHA256())
        else:
            return "the Rekor key is of an unsupported type"
    except (InvalidSignature, ValueError):
        return "the Rekor signed entry timestamp (SET) is not valid"
    return None


def _pem_der(value: object) -> bytes | None:
    """The DER of the certificate or key a Rekor body names (base64 of PEM)."""
    if not isinstance(value, str):
        return None
    try:
        pem = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    for label in (b"CERTIFICATE", b"PUBLIC KEY"):
        blocks = _pem_blocks(pem, label)
        if blocks:
            body = blocks[0].split(b"-----")[2]
            try:
                return base64.b64decode(b"".join(body.split()))
            except (binascii.Error, ValueError):
                return None
    return None


def check_entry_body(entry: RekorEntry, *, payload: bytes, signature: bytes,
                     signer_der: bytes) -> str | None:
    """None when the Rekor entry records this payload, this signature and this signer
    (certificate or public key DER)."""
    try:
        body = json.loads(entry.body)
        kind, spec = body["kind"], body["spec"]
        if kind == "hashedrekord":
            hashed = spec["data"]["hash"]
            ok_hash = (hashed["algorithm"] == "sha256"
                       and hashed["value"] == hashlib.sha256(payload).hexdigest())
            ok_sig = base64.b64decode(spec["signature"]["content"]) == signature
            ok_key = _pem_der(spec["signature"]["publicKey"]["content"]) == signer_der
        elif kind == "dsse":
            hashed = spec["payloadHash"]
            ok_hash = (hashed["algorithm"] == "sha256"
                       and hashed["value"] == hashlib.sha256(payload).hexdigest())
            pairs = [(base64.b64decode(s["signature"]), _pem_der(s["verifier"]))
                     for s in spec["signatures"]]
            ok_sig = any(sig == signature for sig, _ in pairs)
            ok_key = any(sig == signature and der == signer_der for sig, der in pairs)
        else:
            return f"the Rekor entry kind {str(kind)[:40]!r} is not supported"
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        return "the Rekor entry body cannot be read"
    if not ok_hash:
        return "the Rekor entry is about another payload"
    if not ok_sig:
        return "the Rekor entry records another signature"
    if not ok_key:
        return "the Rekor entry records another signer"
    return None


def integrated_at(entry: RekorEntry) -> datetime:
    return datetime.fromtimestamp(entry.integrated_time, UTC)
