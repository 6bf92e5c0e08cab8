"""What a signer signs, and the check the server makes of what a client signed.

One signing of an image by digest makes two signatures with the same key: one over cosign's
simple-signing payload (the legacy `.sig` layer) and one over the DSSE pre-authentication
encoding of the in-toto statement (the Sigstore bundle). The CLI makes them locally, so the
private key never leaves the machine, and sends only the signed bytes, the signatures and the
public key; the server (`check_material`) verifies both against that key and checks that both
name the image's digest before it writes anything. A server-held key makes them on the server
with the same function.

Pure: no I/O. Signing with RSA or scrypt-free keys is quick, but still CPU: server code calls
`sign_material` off the event loop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from moorage.signing import artifacts, dsse
from moorage.signing.keys import KeyPair, PublicKey

FORMATS = ("cosign", "bundle", "both")
MAX_PAYLOAD = 64 * 1024  # a payload or statement; cosign's are a few hundred bytes
MAX_SIGNATURE = 4096  # RSA 4096 signatures are 512 bytes


class MaterialError(ValueError):
    """Signed material that cannot be written: the message says what is wrong."""


@dataclass(frozen=True)
class Material:
    """The signed bytes of one signing; empty for a format not asked for."""

    payload: bytes = b""
    payload_signature: bytes = b""
    statement: bytes = b""
    statement_signature: bytes = b""


def wants(fmt: str) -> tuple[bool, bool]:
    """(legacy .sig, bundle) for a --format value."""
    if fmt not in FORMATS:
        raise MaterialError(f"format must be one of {', '.join(FORMATS)}, not {fmt[:40]!r}")
    return fmt in ("cosign", "both"), fmt in ("bundle", "both")


def sign_material(pair: KeyPair, docker_reference: str, repository: str, digest: str,
                  fmt: str = "both") -> Material:
    """Sign `repository@digest` in the formats asked for."""
    legacy, bundle = wants(fmt)
    payload = artifacts.simple_signing_payload(docker_reference, digest) if legacy else b""
    statement = artifacts.intoto_statement(docker_reference or repository, digest) \
        if bundle else b""
    return Material(payload, pair.sign(payload) if legacy else b"", statement,
                    pair.sign(dsse.pae(dsse.INTOTO_PAYLOAD_TYPE, statement)) if bundle else b"")


def _json(data: bytes, what: str) -> dict:  # type: ignore[type-arg]
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise MaterialError(f"the {what} is not JSON") from None
    if not isinstance(doc, dict):
        raise MaterialError(f"the {what} is not a JSON object")
    return doc


def payload_digest(payload: bytes) -> str:
    """The digest a simple-signing payload names (MaterialError if it is not one)."""
    doc = _json(payload, "payload")
    critical = doc.get("critical")
    try:
        kind = critical["type"]  # type: ignore[index]
        named = critical["image"]["docker-manifest-digest"]  # type: ignore[index]
    except (KeyError, TypeError):
        raise MaterialError("the payload is not a cosign simple-signing payload "
                            "(critical.image.docker-manifest-digest)") from None
    if kind != artifacts.COSIGN_SIGNATURE_TYPE or not isinstance(named, str):
        raise MaterialError("the payload is not a cosign simple-signing payload")
    return named


def statement_names(statement: bytes, digest: str) -> bool:
    """Whether an in-toto statement's subjects include `digest`."""
    doc = _json(statement, "statement")
    subjects = doc.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise MaterialError("the statement has no subject")
    algorithm, _, hexpart = digest.partition(":")
    return any(isinstance(s, dict) and isinstance(s.get("digest"), dict) and
               s["digest"].get(algorithm) == hexpart for s in subjects[:64])


def check_material(material: Material, key: PublicKey, digest: str, fmt: str) -> None:
    """Refuse (MaterialError) what the server must not write: a format asked for without
    its bytes, bytes over their bounds, a payload or statement naming another digest, a
    signature the key did not make."""
    legacy, bundle = wants(fmt)
    parts = []
    if legacy:
        parts.append(("payload", material.payload, material.payload_signature))
    if bundle:
        parts.append(("statement", material.statement, material.statement_signature))
    for what, body, signature in parts:
        if not body or not signature:
            raise MaterialError(f"format {fmt} needs the {what} and its signature")
        if len(body) > MAX_PAYLOAD:
            raise MaterialError(f"the {what} is over {MAX_PAYLOAD} bytes")
        if len(signature) > MAX_SIGNATURE:
            raise MaterialError(f"the {what} signature is over {MAX_SIGNATURE} bytes")
    if legacy:
        named = payload_digest(material.payload)
        if named != digest:
            raise MaterialError(f"the payload names {named[:80]}, not {digest}")
        if not key.verify(material.payload_signature, material.payload):
            raise MaterialError("the payload signature was not made by this public key")
    if bundle:
        if not statement_names(material.statement, digest):
            raise MaterialError(f"the statement's subject is not {digest}")
        if not key.verify(material.statement_signature,
                          dsse.pae(dsse.INTOTO_PAYLOAD_TYPE, material.statement)):
            raise MaterialError("the statement signature was not made by this public key")
