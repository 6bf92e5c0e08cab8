"""Keyless signatures from a certificate authority made here (root → intermediate → leaf, as
Fulcio issues them: SAN URI, OIDC issuer in extension 1.3.6.1.4.1.57264.1.8 as a DER
UTF8String), so the chain rules are exercised beyond the fixtures: path through the
signature's own chain, code-signing usage, validity, and the exact identity match."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from moorage.signing import artifacts, verify
from tests.signing.formats.vectors import candidates

NOW = datetime.now(UTC)
DIGEST = "sha256:" + hashlib.sha256(b"an image").hexdigest()
WORKFLOW = "https://git.example/team/app/.ci/release.yml@refs/heads/main"
ISSUER = "https://ci.example"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key, issuer_name: str, issuer_key, *, ca: bool,
          usage=ExtendedKeyUsageOID.CODE_SIGNING, valid=(NOW - timedelta(minutes=5),
                                                          NOW + timedelta(minutes=5)),
          san: str | None = None, oidc: str | None = None) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(_name(subject))
               .issuer_name(_name(issuer_name)).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(valid[0]).not_valid_after(valid[1])
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(san)]), critical=True)
    if oidc:
        raw = oidc.encode()
        builder = builder.add_extension(x509.UnrecognizedExtension(
            x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8"), bytes([0x0C, len(raw)]) + raw),
            critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


ROOT_KEY = ec.generate_private_key(ec.SECP384R1())
ROOT = _cert("root", ROOT_KEY, "root", ROOT_KEY, ca=True,
             valid=(NOW - timedelta(days=1), NOW + timedelta(days=365)))
MID_KEY = ec.generate_private_key(ec.SECP384R1())
MID = _cert("intermediate", MID_KEY, "root", ROOT_KEY, ca=True,
            valid=(NOW - timedelta(days=1), NOW + timedelta(days=365)))
TRUST = verify.TrustRoot.from_pems(ROOT.public_bytes(serialization.Encoding.PEM), b"")
WHO = verify.TrustedIdentity("id-ci", WORKFLOW, ISSUER, "team")


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _signed(**kw) -> list[verify.Candidate]:
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _cert("signer", key, "intermediate", kw.pop("issuer_key", MID_KEY), ca=False,
                 san=WORKFLOW, oidc=ISSUER, **kw)
    payload = artifacts.simple_signing_payload("team/app", DIGEST)
    sig = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    annotations = artifacts.legacy_layer_annotations(sig, certificate=_pem(leaf),
                                                     chain=_pem(MID, ROOT))
    return candidates([artifacts.legacy_signature_layer(payload, annotations)])


def test_a_leaf_through_its_intermediate_to_the_root_verifies() -> None:
    verdict, = verify.verify(DIGEST, _signed(), [], [WHO], TRUST, now=NOW)
    assert verdict.verified, verdict.reason
    assert verdict.signer == f"{WORKFLOW} ({ISSUER})"
    assert verdict.key_id == "id-ci"


def test_the_identity_must_match_exactly() -> None:
    for other in (verify.TrustedIdentity("a", WORKFLOW[:-1], ISSUER, "team"),
                  verify.TrustedIdentity("b", WORKFLOW, ISSUER + "/", "team")):
        verdict, = verify.verify(DIGEST, _signed(), [], [other], TRUST, now=NOW)
        assert verdict.reason == (f"not verified: signer {WORKFLOW} (issuer {ISSUER}) is not "
                                  "trusted (its certificate chains to the trust root)")


def test_a_leaf_not_for_code_signing_fails() -> None:
    verdict, = verify.verify(DIGEST, _signed(usage=ExtendedKeyUsageOID.SERVER_AUTH), [], [WHO],
                             TRUST, now=NOW)
    assert verdict.reason == "not verified: the signing certificate is not for code signing"


def test_an_expired_leaf_without_rekor_time_fails() -> None:
    old = (NOW - timedelta(days=2), NOW - timedelta(days=2) + timedelta(minutes=10))
    verdict, = verify.verify(DIGEST, _signed(valid=old), [], [WHO], TRUST, now=NOW)
    assert verdict.reason.startswith("not verified: the signing certificate was not valid at")


def test_a_leaf_from_another_ca_fails_even_with_a_chain_that_names_ours() -> None:
    rogue = ec.generate_private_key(ec.SECP384R1())  # signs as "intermediate", but is not it
    verdict, = verify.verify(DIGEST, _signed(issuer_key=rogue), [], [WHO], TRUST, now=NOW)
    assert verdict.reason == ("not verified: the certificate chain does not reach a "
                              "certificate authority of the trust root")
