"""What a certificate and key pair for a custom domain must be, checked without touching the
disk: PEM, a key that belongs to the certificate, inside its validity period, and naming the
host it is for. Pure functions; the refusal says which rule failed."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

MAX_PEM_BYTES = 64 * 1024  # a chain of a few certificates; anything larger is not one
# RFC 1123 labels, lower case (hosts are stored and compared lower-cased); a wildcard only
# as the whole first label, as certificates use it.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_RE = re.compile(rf"(?:{_LABEL}\.)+{_LABEL}|{_LABEL}")


class PairError(ValueError):
    """A pair that cannot be served for the host; the message says why."""


@dataclass(frozen=True)
class PairInfo:
    subject: str
    names: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime


def normal_host(host: str) -> str:
    """The host as stored: lower case, no trailing dot; refused unless a DNS name."""
    name = host.strip().lower().rstrip(".")
    if len(name) > 253 or not _HOST_RE.fullmatch(name):
        raise PairError(f"{host[:80]!r} is not a host name (letters, digits, '-' and '.')")
    return name


def names_host(pattern: str, host: str) -> bool:
    """Whether a certificate's DNS name covers the host (RFC 6125: `*` stands for exactly
    one whole left-most label)."""
    pattern = pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host


def check_pem(host: str, cert_pem: bytes, key_pem: bytes,
              now: dt.datetime | None = None) -> PairInfo:
    """Refuse a pair that could not be served for `host`, with the reason."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    if len(cert_pem) > MAX_PEM_BYTES or len(key_pem) > MAX_PEM_BYTES:
        raise PairError(f"the certificate and the key must each be at most "
                        f"{MAX_PEM_BYTES // 1024} KiB of PEM")
    if b"-----BEGIN CERTIFICATE-----" not in cert_pem:
        raise PairError("the certificate is not PEM (-----BEGIN CERTIFICATE-----)")
    if b"PRIVATE KEY-----" not in key_pem:
        raise PairError("the key is not a PEM private key (-----BEGIN PRIVATE KEY-----)")
    if b"ENCRYPTED" in key_pem.split(b"\n", 1)[0] or b"Proc-Type: 4,ENCRYPTED" in key_pem:
        raise PairError("the key is encrypted; give it unencrypted "
                        "(openssl pkcs8 -topk8 -nocrypt -in OLD -out NEW)")
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as exc:
        raise PairError(f"the certificate cannot be read: {exc}") from None
    leaf = chain[0]
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise PairError(f"the key cannot be read: {str(exc).splitlines()[0][:200]}") from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, spki) != \
            leaf.public_key().public_bytes(serialization.Encoding.DER, spki):
        raise PairError("the key does not belong to the certificate")
    now = now or dt.datetime.now(dt.timezone.utc)
    not_before, not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if now >= not_after:
        raise PairError(f"the certificate expired on {not_after:%Y-%m-%d %H:%M} UTC")
    if now < not_before:
        raise PairError(f"the certificate is not valid before {not_before:%Y-%m-%d %H:%M} UTC")
    try:
        names = tuple(leaf.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    common = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    subject = str(common[0].value) if common else leaf.subject.rfc4514_string()
    # Clients check the SANs only (RFC 6125); the subject CN is not looked at.
    if not any(names_host(name, host) for name in names):
        listed = ", ".join(names) or "no DNS name"
        raise PairError(f"the certificate does not name {host} (it names {listed})")
    return PairInfo(subject, names, not_before, not_after)


def server_pem(cert_pem: bytes, key_pem: bytes) -> bytes:
    """One file with the chain and the key, the form HAProxy loads from a crt-list."""
    cert = cert_pem.strip() + b"\n"
    return cert + key_pem.strip() + b"\n"
