"""Genuine cosign signatures (containers/image's fixtures, signed by the real cosign) stored as
cosign stores them, read back with `candidates_of` and judged by `verify` against the sha256
of the signed `manifest.json`, with the key or the Fulcio/Rekor material each case needs."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from moorage.signing import artifacts, verify
from tests.signing.formats.vectors import (COSIGN, candidates, manifest_digest, sig_layer,
                                           trusted_key)

COSIGN1 = trusted_key("cosign")
COSIGN2 = trusted_key("cosign2")
OAUTH = "https://github.com/login/oauth"
FULCIO_REKOR = verify.TrustRoot.from_pems((COSIGN / "fulcio_v1.crt.pem").read_bytes(),
                                          (COSIGN / "rekor.pub").read_bytes())
MITR = verify.TrustedIdentity("id-mitr", "mitr@redhat.com", OAUTH, "instance")


def layers(case: str) -> list[artifacts.Blob]:
    return [sig_layer(p) for p in sorted((COSIGN / case).glob("signature-*"))]


def test_our_payload_is_the_one_cosign_signed() -> None:
    """simple_signing_payload writes the very bytes cosign signed (so a signature we make over
    it is one cosign accepts, and the reverse)."""
    signed = layers("dir-img-cosign-valid")[0].data
    ours = artifacts.simple_signing_payload("192.168.64.2:5000/cosign-signed-single-sample",
                                            manifest_digest("dir-img-cosign-valid"))
    assert ours == signed


@pytest.mark.parametrize("case", ["dir-img-cosign-valid", "dir-img-cosign-valid-2",
                                  "dir-img-cosign-valid-with-tag"])
def test_valid_cases_verify_with_cosign_pub(case: str) -> None:
    found = candidates(layers(case))
    assert len(found) == len(layers(case))
    verdicts = verify.verify(manifest_digest(case), found, [COSIGN2, COSIGN1])
    for verdict in verdicts:
        assert verdict.verified, verdict.reason
        assert (verdict.reason, verdict.key_id, verdict.signer) == ("verified", "id-cosign",
                                                                    "cosign")
        assert verdict.format == "cosign"
    assert [v.source for v in verdicts] == [f"repo:sha256-x.sig layer {n}"
                                            for n in range(len(verdicts))]


def test_a_key_that_did_not_sign_is_not_enough() -> None:
    verdict, = verify.verify(manifest_digest("dir-img-cosign-valid"),
                             candidates(layers("dir-img-cosign-valid")), [COSIGN2])
    assert not verdict.verified
    assert verdict.reason == "not verified: no trusted key verifies this signature (1 tried)"


def test_mixed_one_signature_by_an_unknown_key_one_by_cosign_pub() -> None:
    first, second = verify.verify(manifest_digest("dir-img-cosign-mixed"),
                                  candidates(layers("dir-img-cosign-mixed")), [COSIGN1, COSIGN2])
    assert not first.verified and "no trusted key verifies" in first.reason
    assert second.verified and second.key_id == "id-cosign"


def test_unknown_cosign_key_signature_fails() -> None:
    layer = sig_layer(COSIGN / "unknown-cosign-key.signature")
    verdict, = verify.verify(manifest_digest("dir-img-cosign-valid"), candidates([layer]),
                             [COSIGN1, COSIGN2])
    assert verdict.reason == "not verified: no trusted key verifies this signature (2 tried)"


@pytest.mark.parametrize("case", ["dir-img-cosign-manifest-digest-error",
                                  "dir-img-cosign-modified-manifest"])
def test_signature_of_another_manifest_fails_on_the_digest(case: str) -> None:
    digest = manifest_digest(case)
    verdict, = verify.verify(digest, candidates(layers(case)), [COSIGN1, COSIGN2])
    assert not verdict.verified
    signed = json.loads(layers(case)[0].data)["critical"]["image"]["docker-manifest-digest"]
    assert signed != digest
    assert verdict.reason == f"not verified: signed digest {signed} is not this image's"


def test_no_manifest_a_signature_vouches_for_nothing_else() -> None:
    """There is no manifest in this case: the signature, valid for the digest it names, is
    refused for any other image (here the manifest of the modified-manifest case)."""
    found = candidates(layers("dir-img-cosign-no-manifest"))
    other = manifest_digest("dir-img-cosign-modified-manifest")
    verdict, = verify.verify(other, found, [COSIGN1])
    assert "is not this image's" in verdict.reason


def test_other_attachment_is_not_a_signature() -> None:
    verdict, = verify.verify(manifest_digest("dir-img-cosign-other-attachment"),
                             candidates(layers("dir-img-cosign-other-attachment")), [COSIGN1])
    assert verdict.reason == ("not verified: the layer's media type 'text/plain' is not a "
                              f"cosign signature ({artifacts.SIMPLE_SIGNING})")


def test_key_signature_with_rekor_entry_verifies_with_its_set() -> None:
    case = "dir-img-cosign-key-rekor-valid"
    verdict, = verify.verify(manifest_digest(case), candidates(layers(case)), [COSIGN2],
                             root=FULCIO_REKOR)
    assert verdict.verified, verdict.reason
    assert verdict.key_id == "id-cosign2"
    assert verdict.signed_at == datetime(2023, 1, 20, 21, 57, 39, tzinfo=UTC)
    # without a trust root the Rekor entry is not checked: verified by the key, no time
    verdict, = verify.verify(manifest_digest(case), candidates(layers(case)), [COSIGN2])
    assert verdict.verified and verdict.signed_at is None


def _with_annotation(layer: artifacts.Blob, name: str, value: str) -> artifacts.Blob:
    return artifacts.Blob(layer.media_type, layer.data, {**(layer.annotations or {}), name: value})


def _tampered_set(layer: artifacts.Blob) -> artifacts.Blob:
    bundle = json.loads(layer.annotations[artifacts.BUNDLE_ANNOTATION])
    sig = bytearray(base64.b64decode(bundle["SignedEntryTimestamp"]))
    sig[-3] ^= 0x01
    bundle["SignedEntryTimestamp"] = base64.b64encode(bytes(sig)).decode()
    return _with_annotation(layer, artifacts.BUNDLE_ANNOTATION, json.dumps(bundle))


def test_key_signature_with_a_bad_set_fails() -> None:
    case = "dir-img-cosign-key-rekor-valid"
    verdict, = verify.verify(manifest_digest(case), candidates([_tampered_set(layers(case)[0])]),
                             [COSIGN2], root=FULCIO_REKOR)
    assert verdict.reason == "not verified: the Rekor signed entry timestamp (SET) is not valid"


def test_fulcio_rekor_keyless_verifies_at_rekor_time() -> None:
    """The certificate expired in 2023; it was valid when Rekor integrated the entry, which
    the SET proves, so the signature verifies (as with cosign)."""
    case = "dir-img-cosign-fulcio-rekor-valid"
    verdict, = verify.verify(manifest_digest(case), candidates(layers(case)), [], [MITR],
                             FULCIO_REKOR)
    assert verdict.verified, verdict.reason
    assert verdict.key_id == "id-mitr"
    assert verdict.signer == f"mitr@redhat.com ({OAUTH})"
    assert verdict.signed_at == datetime(2023, 1, 20, 20, 51, 33, tzinfo=UTC)


def test_fulcio_rekor_keyless_other_identity_is_not_trusted() -> None:
    case = "dir-img-cosign-fulcio-rekor-valid"
    other = verify.TrustedIdentity("x", "mitr@redhat.com", "https://accounts.google.com", "i")
    verdict, = verify.verify(manifest_digest(case), candidates(layers(case)), [COSIGN1],
                             [other], FULCIO_REKOR)
    assert not verdict.verified
    assert verdict.reason == (f"not verified: signer mitr@redhat.com (issuer {OAUTH}) is not "
                              "trusted (its certificate chains to the trust root)")


def test_fulcio_rekor_keyless_without_its_rekor_entry_fails_on_expiry() -> None:
    case = "dir-img-cosign-fulcio-rekor-valid"
    layer = layers(case)[0]
    bare = artifacts.Blob(layer.media_type, layer.data,
                          {k: v for k, v in layer.annotations.items()
                           if k != artifacts.BUNDLE_ANNOTATION})
    verdict, = verify.verify(manifest_digest(case), candidates([bare]), [], [MITR], FULCIO_REKOR)
    assert not verdict.verified
    assert verdict.reason.startswith("not verified: the signing certificate was not valid at ")


def test_fulcio_rekor_keyless_bad_set_and_foreign_entry_fail() -> None:
    case = "dir-img-cosign-fulcio-rekor-valid"
    layer = layers(case)[0]
    verdict, = verify.verify(manifest_digest(case), candidates([_tampered_set(layer)]), [],
                             [MITR], FULCIO_REKOR)
    assert verdict.reason == "not verified: the Rekor signed entry timestamp (SET) is not valid"
    # a genuine SET, but of another signature's entry (the key-rekor case's)
    foreign = layers("dir-img-cosign-key-rekor-valid")[0].annotations[artifacts.BUNDLE_ANNOTATION]
    swapped = _with_annotation(layer, artifacts.BUNDLE_ANNOTATION, foreign)
    verdict, = verify.verify(manifest_digest(case), candidates([swapped]), [], [MITR],
                             FULCIO_REKOR)
    assert verdict.reason == "not verified: the Rekor entry is about another payload"


def test_fulcio_rekor_keyless_chain_must_reach_the_root() -> None:
    case = "dir-img-cosign-fulcio-rekor-valid"
    pki_root = _pki_root()
    only_rekor = verify.TrustRoot(cas=pki_root.cas, rekor_keys=FULCIO_REKOR.rekor_keys)
    verdict, = verify.verify(manifest_digest(case), candidates(layers(case)), [], [MITR],
                             only_rekor)
    assert verdict.reason == ("not verified: the certificate chain does not reach a "
                              "certificate authority of the trust root")


def _pki_root() -> verify.TrustRoot:
    """The pki case's root CA. containers/image verifies it with a root file that is not among
    the fixtures; the root certificate is also the last one of the signature's own chain
    annotation, so the test takes it from there (as an operator would configure it)."""
    layer = layers("dir-img-cosign-pki-valid")[0]
    chain = x509.load_pem_x509_certificates(
        layer.annotations[artifacts.CHAIN_ANNOTATION].encode())
    root = chain[-1]
    assert root.subject == root.issuer  # self-signed
    return verify.TrustRoot.from_pems(root.public_bytes(serialization.Encoding.PEM), b"")


def test_pki_case_verifies_against_its_root_ca() -> None:
    case = "dir-img-cosign-pki-valid"
    qiwan = verify.TrustedIdentity("id-qiwan", "qiwan@redhat.com", "", "instance")
    verdict, = verify.verify(manifest_digest(case), candidates(layers(case)), [], [qiwan],
                             _pki_root())
    assert verdict.verified, verdict.reason
    assert (verdict.key_id, verdict.signer, verdict.signed_at) == ("id-qiwan",
                                                                   "qiwan@redhat.com", None)
    # the public-good Fulcio root does not vouch for this private CA
    verdict, = verify.verify(manifest_digest(case), candidates(layers(case)), [], [qiwan],
                             FULCIO_REKOR)
    assert "does not reach a certificate authority" in verdict.reason
