"""DSSE (Dead Simple Signing Envelope) and the in-toto Statements it carries.

A DSSE signature is not over the payload but over its pre-authentication encoding (PAE):
`"DSSEv1" SP len(type) SP type SP len(payload) SP payload`, lengths in ASCII decimal, so that
a signature cannot be replayed under another payload type. cosign writes envelopes as
`{"payloadType", "payload" (base64), "signatures": [{"keyid", "sig" (base64)}]}`, both on their
own (`cosign attest-blob`) and inside Sigstore bundles (`dsseEnvelope`, same field names).

Parsing never raises on bad input: it raises `DsseError` (a ValueError) with a message fit to
show a user, and bounds what it reads (MAX_ENVELOPE_BYTES, MAX_SIGNATURES).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPES = ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1")

MAX_ENVELOPE_BYTES = 4 * 1024 * 1024
MAX_SIGNATURES = 16
MAX_SUBJECTS = 1024

_HEX = re.compile(r"^[0-9a-f]+$")


class DsseError(ValueError):
    """An envelope or statement that cannot be used; the message says why."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """The bytes a DSSE signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[tuple[str, bytes], ...]  # (keyid, signature)

    def pae(self) -> bytes:
        return pae(self.payload_type, self.payload)


def b64(value: object, what: str) -> bytes:
    """Standard base64 (padding required, as Go's StdEncoding), else DsseError."""
    if not isinstance(value, str):
        raise DsseError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise DsseError(f"{what} is not valid base64") from None


def envelope_from_obj(doc: object) -> Envelope:
    """An envelope from its parsed JSON object."""
    if not isinstance(doc, dict):
        raise DsseError("the DSSE envelope is not a JSON object")
    payload_type = doc.get("payloadType")
    if not isinstance(payload_type, str) or not payload_type:
        raise DsseError("the DSSE envelope has no payloadType")
    payload = b64(doc.get("payload"), "the DSSE payload")
    sigs = doc.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        raise DsseError("the DSSE envelope has no signatures")
    if len(sigs) > MAX_SIGNATURES:
        raise DsseError(f"the DSSE envelope has {len(sigs)} signatures (at most "
                        f"{MAX_SIGNATURES})")
    out = []
    for sig in sigs:
        if not isinstance(sig, dict):
            raise DsseError("a DSSE signature is not a JSON object")
        keyid = sig.get("keyid", "")
        out.append((keyid if isinstance(keyid, str) else "", b64(sig.get("sig"),
                                                                  "a DSSE signature")))
    return Envelope(payload_type, payload, tuple(out))


def parse_envelope(data: bytes) -> Envelope:
    """An envelope from its JSON bytes (at most MAX_ENVELOPE_BYTES)."""
    if len(data) > MAX_ENVELOPE_BYTES:
        raise DsseError(f"the DSSE envelope is too large ({len(data)} bytes; at most "
                        f"{MAX_ENVELOPE_BYTES})")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise DsseError("the DSSE envelope is not JSON") from None
    return envelope_from_obj(doc)


@dataclass(frozen=True)
class Statement:
    predicate_type: str
    subjects: tuple[tuple[str, str], ...]  # (name, sha256 hex) of subjects with a sha256


def parse_statement(envelope: Envelope) -> Statement:
    """The in-toto Statement (v1 or v0.1) an envelope carries."""
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE:
        raise DsseError(f"the DSSE payload type is {envelope.payload_type[:80]!r}, not "
                        f"{INTOTO_PAYLOAD_TYPE!r}")
    try:
        doc = json.loads(envelope.payload)
    except (ValueError, UnicodeDecodeError):
        raise DsseError("the in-toto statement is not JSON") from None
    if not isinstance(doc, dict) or doc.get("_type") not in STATEMENT_TYPES:
        raise DsseError("the payload is not an in-toto Statement")
    predicate_type = doc.get("predicateType")
    if not isinstance(predicate_type, str):
        raise DsseError("the in-toto statement has no predicateType")
    subjects = doc.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise DsseError("the in-toto statement has no subject")
    if len(subjects) > MAX_SUBJECTS:
        raise DsseError(f"the in-toto statement has {len(subjects)} subjects (at most "
                        f"{MAX_SUBJECTS})")
    found = []
    for subject in subjects:
        if not isinstance(subject, dict) or not isinstance(subject.get("digest"), dict):
            raise DsseError("an in-toto subject has no digest")
        value = subject["digest"].get("sha256")
        name = subject.get("name")
        if isinstance(value, str) and len(value) == 64 and _HEX.match(value):
            found.append((name if isinstance(name, str) else "", value))
    if not found:
        raise DsseError("no in-toto subject has a sha256 digest")
    return Statement(predicate_type, tuple(found))


def check_claims(statement: Statement, sha256_hex: str,
                 predicate_type: str | None = None) -> str | None:
    """None when a subject has this sha256 (and the predicate type is the one asked for);
    otherwise why not."""
    if predicate_type is not None and statement.predicate_type != predicate_type:
        return (f"the predicate type is {statement.predicate_type[:120]!r}, not "
                f"{predicate_type!r}")
    if not any(value == sha256_hex for _, value in statement.subjects):
        shown = ", ".join("sha256:" + value for _, value in statement.subjects[:3])
        return f"signed digest {shown} is not this artifact's"
    return None
