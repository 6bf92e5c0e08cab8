"""cosign's own DSSE and Sigstore bundle vectors: the key-signed blob attestations
(blob-attestations/) with our DSSE code, and a real public-good keyless bundle
(bundle-keyless/) attached as cosign attaches it and verified against its trusted root."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime

import pytest

from moorage.oci import mediatypes
from moorage.signing import artifacts, dsse, keys, verify
from tests.signing.formats.vectors import COSIGN, registry_read

ATTEST = COSIGN / "blob-attestations"
BLOB_SHA = hashlib.sha256((ATTEST / "blob").read_bytes()).hexdigest()
OTHER_SHA = hashlib.sha256((ATTEST / "other-blob").read_bytes()).hexdigest()
SLSA02 = "https://slsa.dev/provenance/v0.2"
ATTEST_KEY = keys.load_public_key((ATTEST / "cosign.pub").read_bytes())

KEYLESS = COSIGN / "bundle-keyless"
BUNDLE = (KEYLESS / "oci-attestation.sigstore.json").read_bytes()
ROOT_JSON = (KEYLESS / "trusted_root_pgi.json").read_bytes()
SUBJECT = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
OAUTH = "https://github.com/login/oauth"
CODY = verify.TrustedIdentity("id-cody", "cody@soyland.com", OAUTH, "instance")


def _envelope(name: str) -> dsse.Envelope:
    return dsse.parse_envelope((ATTEST / f"{name}.dsse.json").read_bytes())


@pytest.mark.parametrize("name", ["blobSLSAProvenanceSignature", "dssePredicateEmptySubject",
                                  "dssePredicateMissingSha256", "dssePredicateMultipleSubjects",
                                  "dssePredicateMultipleSubjectsInvalid"])
def test_every_envelope_signature_verifies_with_its_key(name: str) -> None:
    envelope = _envelope(name)
    assert any(ATTEST_KEY.verify(sig, envelope.pae()) for _, sig in envelope.signatures)
    # over the raw payload (not the PAE) it does not: the PAE is what is signed
    assert not any(ATTEST_KEY.verify(sig, envelope.payload) for _, sig in envelope.signatures)


def test_claims_that_hold() -> None:
    statement = dsse.parse_statement(_envelope("blobSLSAProvenanceSignature"))
    assert dsse.check_claims(statement, BLOB_SHA, SLSA02) is None
    multiple = dsse.parse_statement(_envelope("dssePredicateMultipleSubjects"))
    assert dsse.check_claims(multiple, BLOB_SHA, SLSA02) is None


def test_claims_that_fail_say_why() -> None:
    statement = dsse.parse_statement(_envelope("blobSLSAProvenanceSignature"))
    assert dsse.check_claims(statement, BLOB_SHA, "https://cosign.sigstore.dev/attestation/v1") \
        == (f"the predicate type is {SLSA02!r}, not "
            "'https://cosign.sigstore.dev/attestation/v1'")
    assert dsse.check_claims(statement, OTHER_SHA, SLSA02) == \
        f"signed digest sha256:{BLOB_SHA} is not this artifact's"
    multiple = dsse.parse_statement(_envelope("dssePredicateMultipleSubjects"))
    assert "not 'notreallyslsaprovenance'" in dsse.check_claims(multiple, BLOB_SHA,
                                                                "notreallyslsaprovenance")
    invalid = dsse.parse_statement(_envelope("dssePredicateMultipleSubjectsInvalid"))
    assert dsse.check_claims(invalid, BLOB_SHA, SLSA02).endswith("is not this artifact's")
    with pytest.raises(dsse.DsseError, match="the in-toto statement has no subject"):
        dsse.parse_statement(_envelope("dssePredicateEmptySubject"))
    with pytest.raises(dsse.DsseError, match="no in-toto subject has a sha256 digest"):
        dsse.parse_statement(_envelope("dssePredicateMissingSha256"))


# -- the keyless bundle ------------------------------------------------------------------------

def _attached(bundle: bytes = BUNDLE) -> list[verify.Candidate]:
    """The bundle pushed as cosign pushes it (a referrer of the image), then read back."""
    subject = artifacts.Descriptor(mediatypes.OCI_MANIFEST, SUBJECT, 1234)
    art = artifacts.bundle_referrer(subject, bundle)
    return verify.candidates_of(art.manifest, art.media_type, registry_read(art))


def test_referrer_manifest_is_the_one_bundle_spec_describes() -> None:
    created = datetime(2024, 3, 8, 18, 18, 20, 406000, tzinfo=UTC)
    art = artifacts.bundle_referrer(artifacts.Descriptor(mediatypes.OCI_MANIFEST, SUBJECT, 1234),
                                    BUNDLE, created=created)
    doc = json.loads(art.manifest)
    layer_digest = "sha256:" + hashlib.sha256(BUNDLE).hexdigest()
    assert doc == {
        "schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
        "artifactType": artifacts.BUNDLE_V03,
        "config": {"mediaType": mediatypes.OCI_EMPTY, "size": 2, "digest": mediatypes.EMPTY_DIGEST},
        "layers": [{"mediaType": artifacts.BUNDLE_V03, "size": len(BUNDLE), "digest": layer_digest,
                    "annotations": {"org.opencontainers.image.title":
                                    layer_digest.replace(":", "-") + ".sigstore.json"}}],
        "subject": {"mediaType": mediatypes.OCI_MANIFEST, "size": 1234, "digest": SUBJECT},
        "annotations": {"dev.sigstore.bundle.content": "dsse-envelope",
                        "dev.sigstore.bundle.predicateType":
                            "https://cosign.sigstore.dev/attestation/v1",
                        "org.opencontainers.image.created": "2024-03-08T18:18:20.406Z"}}
    assert [b.data for b in art.blobs] == [b"{}", BUNDLE]


def test_keyless_bundle_verifies_for_its_identity() -> None:
    root = verify.TrustRoot.from_trusted_root_json(ROOT_JSON)
    verdict, = verify.verify(SUBJECT, _attached(), [], [CODY], root)
    assert verdict.verified, verdict.reason
    assert verdict.format == "bundle"
    assert verdict.key_id == "id-cody"
    assert verdict.signer == f"cody@soyland.com ({OAUTH})"
    assert verdict.signed_at == datetime.fromtimestamp(1740770291, UTC)


def test_keyless_bundle_another_identity_is_not_trusted() -> None:
    root = verify.TrustRoot.from_trusted_root_json(ROOT_JSON)
    for other in (verify.TrustedIdentity("x", "someone@soyland.com", OAUTH, "instance"),
                  verify.TrustedIdentity("y", "cody@soyland.com", "https://accounts.google.com",
                                         "instance")):
        verdict, = verify.verify(SUBJECT, _attached(), [], [other], root)
        assert not verdict.verified
        assert verdict.reason == (f"not verified: signer cody@soyland.com (issuer {OAUTH}) is "
                                  "not trusted (its certificate chains to the trust root)")


def test_keyless_bundle_another_digest_fails() -> None:
    root = verify.TrustRoot.from_trusted_root_json(ROOT_JSON)
    verdict, = verify.verify("sha256:" + "0" * 64, _attached(), [], [CODY], root)
    assert verdict.reason == f"not verified: signed digest {SUBJECT} is not this image's"


def test_keyless_bundle_tampered_set_fails() -> None:
    root = verify.TrustRoot.from_trusted_root_json(ROOT_JSON)
    doc = json.loads(BUNDLE)
    promise = doc["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"]
    sig = bytearray(base64.b64decode(promise["signedEntryTimestamp"]))
    sig[-1] ^= 0x01
    promise["signedEntryTimestamp"] = base64.b64encode(bytes(sig)).decode()
    verdict, = verify.verify(SUBJECT, _attached(json.dumps(doc).encode()), [], [CODY], root)
    assert verdict.reason == "not verified: the Rekor signed entry timestamp (SET) is not valid"
    # and an entry that claims another integration time is refused the same way
    doc = json.loads(BUNDLE)
    doc["verificationMaterial"]["tlogEntries"][0]["integratedTime"] = "1740770300"
    verdict, = verify.verify(SUBJECT, _attached(json.dumps(doc).encode()), [], [CODY], root)
    assert verdict.reason == "not verified: the Rekor signed entry timestamp (SET) is not valid"


def test_keyless_bundle_trust_root_without_that_ca_fails() -> None:
    doc = json.loads(ROOT_JSON)
    # keep only the 2021 CA, which did not issue this 2025 certificate's intermediate
    doc["certificateAuthorities"] = [ca for ca in doc["certificateAuthorities"]
                                     if "end" in ca["validFor"]]
    assert len(doc["certificateAuthorities"]) == 1
    root = verify.TrustRoot.from_trusted_root_json(json.dumps(doc).encode())
    verdict, = verify.verify(SUBJECT, _attached(), [], [CODY], root)
    assert verdict.reason == ("not verified: the certificate chain does not reach a "
                              "certificate authority of the trust root")


def test_keyless_bundle_trust_root_without_that_rekor_log_fails() -> None:
    doc = json.loads(ROOT_JSON)
    doc["tlogs"] = []
    root = verify.TrustRoot.from_trusted_root_json(json.dumps(doc).encode())
    verdict, = verify.verify(SUBJECT, _attached(), [], [CODY], root)
    assert verdict.reason.startswith("not verified: the Rekor log c0d23d6ad406973f")
    assert verdict.reason.endswith("is not in the trust root")


def test_keyless_bundle_without_a_trust_root_is_not_verified() -> None:
    verdict, = verify.verify(SUBJECT, _attached(), [], [CODY], None)
    assert verdict.reason == (f"not verified: signer cody@soyland.com ({OAUTH}) is keyless "
                              "and no trust root is configured")


def test_keyless_bundle_ca_or_log_retired_before_signing_fails() -> None:
    """A trusted root says when each CA and log key was in service; one retired before the
    signing time (Rekor's, 2025-02-28) vouches for nothing signed after."""
    doc = json.loads(ROOT_JSON)
    for ca in doc["certificateAuthorities"]:
        ca["validFor"]["end"] = "2024-12-31T23:59:59.999Z"
    root = verify.TrustRoot.from_trusted_root_json(json.dumps(doc).encode())
    verdict, = verify.verify(SUBJECT, _attached(), [], [CODY], root)
    assert verdict.reason == ("not verified: the trust root's certificate authority was not in "
                              "service at signing time")
    doc = json.loads(ROOT_JSON)
    doc["tlogs"][0]["publicKey"]["validFor"]["start"] = "2025-03-01T00:00:00Z"
    root = verify.TrustRoot.from_trusted_root_json(json.dumps(doc).encode())
    verdict, = verify.verify(SUBJECT, _attached(), [], [CODY], root)
    assert verdict.reason == ("not verified: the Rekor log key was not in service when the "
                              "entry was integrated")
