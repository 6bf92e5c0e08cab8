"""Whatever is pushed as a signature, the verifier answers with a verdict and a reason, never
an exception, and reads no more than its bounds."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from moorage.oci import mediatypes
from moorage.signing import artifacts, dsse, keys, verify
from tests.signing.formats.vectors import candidates, registry_read

PAIR = keys.KeyPair.generate()
KEY = verify.TrustedKey("k1", "release key", "instance", PAIR.public)
DIGEST = "sha256:" + hashlib.sha256(b"image").hexdigest()
PAYLOAD = artifacts.simple_signing_payload("example/app", DIGEST)


def _layer(payload: bytes = PAYLOAD, annotations: dict[str, str] | None = None,
           media_type: str = artifacts.SIMPLE_SIGNING) -> artifacts.Blob:
    if annotations is None:
        annotations = artifacts.legacy_layer_annotations(PAIR.sign(payload))
    return artifacts.Blob(media_type, payload, annotations)


def _reason(layer: artifacts.Blob, keys_: list[verify.TrustedKey] | None = None) -> str:
    verdict, = verify.verify(DIGEST, candidates([layer]), [KEY] if keys_ is None else keys_)
    assert not verdict.verified
    return verdict.reason


def test_the_good_one_verifies() -> None:
    verdict, = verify.verify(DIGEST, candidates([_layer()]), [KEY])
    assert verdict.verified and verdict.key_id == "k1" and verdict.signer == "release key"


def test_malformed_payload_json() -> None:
    bad = b'{"critical": '
    assert _reason(_layer(bad)) == "not verified: the signed payload is not JSON"
    assert _reason(_layer(b'["x"]')) == ("not verified: the signed payload is not a "
                                         "simple-signing payload")
    other_type = PAYLOAD.replace(b"cosign container image signature", b"atomic container")
    assert "the signed payload's type is 'atomic container'" in _reason(_layer(other_type))
    no_digest = json.dumps({"critical": {"type": artifacts.COSIGN_SIGNATURE_TYPE,
                                         "image": {}}}).encode()
    assert _reason(_layer(no_digest)) == ("not verified: the signed payload names no "
                                          "docker-manifest-digest")


def test_payload_naming_another_digest() -> None:
    other = "sha256:" + "b" * 64
    assert _reason(_layer(artifacts.simple_signing_payload("example/app", other))) == \
        f"not verified: signed digest {other} is not this image's"


def test_missing_or_invalid_signature_annotation() -> None:
    assert _reason(_layer(annotations={})) == ("not verified: the layer has no "
                                               "dev.cosignproject.cosign/signature annotation")
    assert _reason(_layer(annotations={artifacts.SIGNATURE_ANNOTATION: "%%not base64%%"})) == (
        "not verified: the dev.cosignproject.cosign/signature annotation is not valid base64")
    assert _reason(_layer(annotations={artifacts.SIGNATURE_ANNOTATION: ""})) == (
        "not verified: the dev.cosignproject.cosign/signature annotation is empty")
    forged = base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode()
    assert _reason(_layer(annotations={artifacts.SIGNATURE_ANNOTATION: forged})) == (
        "not verified: no trusted key verifies this signature (1 tried)")


def test_huge_annotation_and_payload_are_refused_unread() -> None:
    huge = "A" * (verify.MAX_ANNOTATION_BYTES + 4)
    assert _reason(_layer(annotations={artifacts.SIGNATURE_ANNOTATION: huge})) == (
        f"not verified: the dev.cosignproject.cosign/signature annotation is too large "
        f"({len(huge)} bytes)")
    big = PAYLOAD + b" " * verify.MAX_PAYLOAD_BYTES
    art = artifacts.legacy_signature_manifest([_layer(big)])
    asked: list[int] = []

    def read(digest: str, limit: int) -> bytes | None:
        asked.append(limit)
        return registry_read(art)(digest, limit)
    found = verify.candidates_of(art.manifest, art.media_type, read)
    verdict, = verify.verify(DIGEST, found, [KEY])
    assert verdict.reason == (f"not verified: the layer is too large ({len(big)} bytes; at "
                              f"most {verify.MAX_PAYLOAD_BYTES})")
    assert asked == []  # refused on the descriptor's size, before any read


def test_a_blob_larger_than_its_descriptor_says_is_not_read() -> None:
    art = artifacts.legacy_signature_manifest([_layer()])
    doc = json.loads(art.manifest)
    doc["layers"][0]["size"] = 10  # lies: the reader is asked for at most the bound
    found = verify.candidates_of(json.dumps(doc).encode(), art.media_type,
                                 lambda d, n: b"x" * (n + 1))
    verdict, = verify.verify(DIGEST, found, [KEY])
    assert "does not match its digest" in verdict.reason


def test_missing_blob_and_wrong_blob() -> None:
    art = artifacts.legacy_signature_manifest([_layer()])
    found = verify.candidates_of(art.manifest, art.media_type, lambda d, n: None)
    verdict, = verify.verify(DIGEST, found, [KEY])
    layer_digest = art.blobs[1].digest
    assert verdict.reason == (f"not verified: the layer blob {layer_digest} cannot be read "
                              f"(missing, or larger than {verify.MAX_PAYLOAD_BYTES} bytes)")
    found = verify.candidates_of(art.manifest, art.media_type, lambda d, n: b"{}")
    assert verify.verify(DIGEST, found, [KEY])[0].reason == (
        f"not verified: the layer blob does not match its digest {layer_digest}")


@pytest.mark.parametrize("manifest, reason", [
    (b"not json", "the signature manifest is not JSON"),
    (b"[]", "the signature manifest has no layers"),
    (b'{"layers": []}', "the signature manifest has no layers"),
    (b'{"layers": ["x"]}', "a layer descriptor is not a JSON object"),
    (b'{"layers": [{"mediaType": "a"}]}', "a layer descriptor lacks mediaType, digest or size"),
    (b'{"layers": [{"mediaType": "a", "digest": "sha256:0", "size": 1, "annotations": {"a": 1}}]}',
     "the layer annotations are not strings"),
])
def test_malformed_manifests(manifest: bytes, reason: str) -> None:
    found = verify.candidates_of(manifest, mediatypes.OCI_MANIFEST, lambda d, n: None)
    verdicts = verify.verify(DIGEST, found, [KEY])
    assert [v.reason for v in verdicts] == [f"not verified: {reason}"]


def test_too_many_layers_and_too_large_a_manifest() -> None:
    layer = {"mediaType": artifacts.SIMPLE_SIGNING, "digest": "sha256:" + "0" * 64, "size": 1}
    doc = json.dumps({"layers": [layer] * (verify.MAX_LAYERS + 1)}).encode()
    verdict, = verify.verify(DIGEST, verify.candidates_of(doc, "", lambda d, n: None), [KEY])
    assert verdict.reason == (f"not verified: the signature manifest has "
                              f"{verify.MAX_LAYERS + 1} layers (at most {verify.MAX_LAYERS})")
    big = b" " * (verify.MAX_MANIFEST_BYTES + 1)
    verdict, = verify.verify(DIGEST, verify.candidates_of(big, "", lambda d, n: None), [KEY])
    assert verdict.reason.startswith("not verified: the signature manifest is too large")


def test_key_of_an_unsupported_algorithm() -> None:
    p224 = keys.PublicKey(ec.generate_private_key(ec.SECP224R1()).public_key(), "ecdsa-p224")
    odd = verify.TrustedKey("k2", "old key", "instance", p224)
    assert _reason(_layer(), [odd]) == ("not verified: the trusted key 'old key' (ecdsa-p224) "
                                        "has an unsupported algorithm")
    # next to a supported key that signed, it does no harm
    verdict, = verify.verify(DIGEST, candidates([_layer()]), [odd, KEY])
    assert verdict.verified


def test_no_trusted_key_at_all() -> None:
    assert _reason(_layer(), []) == "not verified: no trusted key applies to this repository"


def _bundle_candidates(bundle: bytes) -> list[verify.Candidate]:
    art = artifacts.bundle_referrer(
        artifacts.Descriptor(mediatypes.OCI_MANIFEST, DIGEST, 5), bundle)
    return verify.candidates_of(art.manifest, art.media_type, registry_read(art))


def _good_bundle() -> dict:
    statement = artifacts.intoto_statement("example/app", DIGEST)
    sig = PAIR.sign(dsse.pae(dsse.INTOTO_PAYLOAD_TYPE, statement))
    return json.loads(artifacts.sigstore_bundle(statement, sig, PAIR.public))


@pytest.mark.parametrize("change, reason", [
    (lambda d: d.update(mediaType="application/vnd.dev.sigstore.bundle.v0.9+json"),
     "unsupported bundle media type 'application/vnd.dev.sigstore.bundle.v0.9+json' "
     "(expected application/vnd.dev.sigstore.bundle.v0.3+json)"),
    (lambda d: d.pop("mediaType"), "unsupported bundle media type 'None' (expected "
                                   "application/vnd.dev.sigstore.bundle.v0.3+json)"),
    (lambda d: d.pop("dsseEnvelope"), "the bundle holds no DSSE envelope (a message signature "
                                      "does not name an image)"),
    (lambda d: d["dsseEnvelope"].update(payload="@@"), "the DSSE payload is not valid base64"),
    (lambda d: d["dsseEnvelope"].update(payloadType="text/plain"),
     "the DSSE payload type is 'text/plain', not 'application/vnd.in-toto+json'"),
    (lambda d: d["dsseEnvelope"].update(signatures=[]), "the DSSE envelope has no signatures"),
    (lambda d: d["dsseEnvelope"]["signatures"][0].update(sig="!"),
     "a DSSE signature is not valid base64"),
    (lambda d: d.pop("verificationMaterial"), "the bundle has no verificationMaterial"),
    (lambda d: d["verificationMaterial"].pop("publicKey"),
     "the bundle names neither a certificate nor a public key"),
    (lambda d: d["verificationMaterial"].update(certificate={"rawBytes": "AAAA"}),
     "the bundle's certificate cannot be read"),
    (lambda d: d["dsseEnvelope"].update(
        payload=base64.b64encode(artifacts.intoto_statement("x", "sha256:" + "c" * 64)).decode()),
     f"signed digest sha256:{'c' * 64} is not this image's"),
    (lambda d: d["dsseEnvelope"].update(
        payload=base64.b64encode(artifacts.intoto_statement("y", DIGEST)).decode()),
     "no trusted key verifies this signature (1 tried)"),
])
def test_bad_bundles(change, reason: str) -> None:
    doc = _good_bundle()
    change(doc)
    verdict, = verify.verify(DIGEST, _bundle_candidates(json.dumps(doc).encode()), [KEY])
    assert verdict.reason == f"not verified: {reason}"


def test_bundle_not_json_and_too_large() -> None:
    verdict, = verify.verify(DIGEST, _bundle_candidates(b"{nope"), [KEY])
    assert verdict.reason == "not verified: the bundle is not JSON"
    huge = json.dumps({**_good_bundle(), "pad": "x" * verify.MAX_BUNDLE_BYTES}).encode()
    verdict, = verify.verify(DIGEST, _bundle_candidates(huge), [KEY])
    assert verdict.reason == (f"not verified: the layer is too large ({len(huge)} bytes; at "
                              f"most {verify.MAX_BUNDLE_BYTES})")


def test_good_bundle_verifies() -> None:
    verdict, = verify.verify(DIGEST, _bundle_candidates(json.dumps(_good_bundle()).encode()),
                             [KEY])
    assert verdict.verified, verdict.reason


def test_unreadable_trust_roots_raise_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not a Sigstore trusted root"):
        verify.TrustRoot.from_trusted_root_json(b'{"certificateAuthorities": [{}]}')
    with pytest.raises(ValueError, match="the trust root PEM cannot be read"):
        verify.TrustRoot.from_pems(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                                   b"")


def test_an_index_is_not_a_signature_manifest() -> None:
    found = verify.candidates_of(b'{"manifests": []}', mediatypes.OCI_INDEX, lambda d, n: None)
    verdict, = verify.verify(DIGEST, found, [KEY])
    assert verdict.reason == ("not verified: the signature manifest's media type "
                              f"'{mediatypes.OCI_INDEX}' is not an image manifest")
