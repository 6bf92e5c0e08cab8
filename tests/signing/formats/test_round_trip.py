"""Sign with keys of every type cosign accepts, store as cosign stores, read back and verify;
and the bundles we write checked independently by npm @sigstore/verify (sigstore-js)."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from moorage.oci import mediatypes
from moorage.signing import artifacts, dsse, keys, verify
from tests.signing.formats.vectors import registry_read

REPO = Path(__file__).resolve().parents[3]
NODE_MODULES = REPO / ".npm-packages" / "node_modules"
SCRIPT = Path(__file__).with_name("verify_bundle.mjs")

IMAGE = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'
DIGEST = "sha256:" + hashlib.sha256(IMAGE).hexdigest()
REFERENCE = "127.0.0.1:5000/team/app"


def _import(private: object) -> keys.KeyPair:
    pem = private.private_bytes(serialization.Encoding.PEM,  # type: ignore[attr-defined]
                                serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return keys.import_private_key(pem)


def _pair(kind: str) -> keys.KeyPair:
    if kind == "ecdsa-p256":
        return keys.KeyPair.generate()  # cosign's default, made by keys.py itself
    return _import({"ecdsa-p384": lambda: ec.generate_private_key(ec.SECP384R1()),
                    "ecdsa-p521": lambda: ec.generate_private_key(ec.SECP521R1()),
                    "ed25519": ed25519.Ed25519PrivateKey.generate,
                    "rsa-2048": lambda: rsa.generate_private_key(65537, 2048)}[kind]())


KINDS = ["ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "ed25519", "rsa-2048"]


def _trusted(pair: keys.KeyPair, name: str = "team key") -> verify.TrustedKey:
    return verify.TrustedKey(id="k-" + pair.public.fingerprint[7:19], name=name,
                             scope="team", key=pair.public)


def _signed_bundle(pair: keys.KeyPair) -> bytes:
    statement = artifacts.intoto_statement(REFERENCE, DIGEST)
    signature = pair.sign(dsse.pae(dsse.INTOTO_PAYLOAD_TYPE, statement))
    return artifacts.sigstore_bundle(statement, signature, pair.public)


@pytest.mark.parametrize("kind", KINDS)
def test_legacy_signature_round_trip(kind: str) -> None:
    pair, other = _pair(kind), keys.KeyPair.generate()
    assert pair.public.algorithm == kind
    layers = []
    for signer in (pair, other):  # signing twice appends a layer to the same .sig manifest
        payload = artifacts.simple_signing_payload(REFERENCE, DIGEST)
        layers.append(artifacts.legacy_signature_layer(
            payload, artifacts.legacy_layer_annotations(signer.sign(payload))))
        art = artifacts.legacy_signature_manifest(layers)
    found = verify.candidates_of(art.manifest, art.media_type, registry_read(art),
                                 source=f"team/app:{artifacts.signature_tag(DIGEST)}")
    first, second = verify.verify(DIGEST, found, [_trusted(pair)])
    assert first.verified, first.reason
    assert (first.key_id, first.signer) == (_trusted(pair).id, "team key")
    assert first.source == f"team/app:{artifacts.signature_tag(DIGEST)} layer 0"
    assert second.reason == "not verified: no trusted key verifies this signature (1 tried)"
    assert verify.verify(DIGEST, found, [_trusted(other, "other")])[1].verified


@pytest.mark.parametrize("kind", KINDS)
def test_bundle_round_trip(kind: str) -> None:
    pair = _pair(kind)
    bundle = _signed_bundle(pair)
    art = artifacts.bundle_referrer(
        artifacts.Descriptor(mediatypes.OCI_MANIFEST, DIGEST, len(IMAGE)), bundle)
    found = verify.candidates_of(art.manifest, art.media_type, registry_read(art))
    assert [c.format for c in found] == ["bundle"]
    assert found[0].source == art.digest
    verdict, = verify.verify(DIGEST, found, [_trusted(keys.KeyPair.generate(), "x"),
                                             _trusted(pair)])
    assert verdict.verified, verdict.reason
    assert verdict.key_id == _trusted(pair).id
    verdict, = verify.verify("sha256:" + "1" * 64, found, [_trusted(pair)])
    assert verdict.reason == f"not verified: signed digest {DIGEST} is not this image's"


def test_rsa_pss_signatures_verify_as_cosign_accepts_them() -> None:
    private = rsa.generate_private_key(65537, 2048)
    pair = _import(private)
    payload = artifacts.simple_signing_payload(REFERENCE, DIGEST)
    signature = private.sign(payload, padding.PSS(padding.MGF1(hashes.SHA256()),
                                                  padding.PSS.DIGEST_LENGTH), hashes.SHA256())
    layer = artifacts.legacy_signature_layer(payload,
                                             artifacts.legacy_layer_annotations(signature))
    art = artifacts.legacy_signature_manifest([layer])
    verdict, = verify.verify(DIGEST, verify.candidates_of(art.manifest, art.media_type,
                                                          registry_read(art)), [_trusted(pair)])
    assert verdict.verified, verdict.reason


def test_bundle_content_is_cosign_v3s() -> None:
    pair = keys.KeyPair.generate()
    doc = json.loads(_signed_bundle(pair))
    assert doc["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert doc["verificationMaterial"] == {"publicKey": {"hint": pair.public.key_id},
                                           "tlogEntries": []}
    envelope = doc["dsseEnvelope"]
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert json.loads(base64.b64decode(envelope["payload"])) == {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": REFERENCE, "digest": {"sha256": DIGEST[7:]}}],
        "predicateType": "https://sigstore.dev/cosign/sign/v1", "predicate": {}}


def _sigstore_js(bundle: bytes, key: keys.PublicKey) -> dict:
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "@sigstore" / "verify").exists():
        pytest.fail(f"node and npm @sigstore/verify are needed ({NODE_MODULES}): run "
                    "`make install-npm`")
    arg = json.dumps({"modules": str(NODE_MODULES), "bundle": bundle.decode(),
                      "key": base64.b64encode(key.der).decode()})
    done = subprocess.run([node, str(SCRIPT), arg], capture_output=True, text=True,
                          timeout=300)
    assert done.stdout.strip(), done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (done.returncode == 0) == result["ok"]
    return result


# sigstore-js 4 verifies a key-signed DSSE signature with Node's default digest (SHA-256) and
# pure Ed25519, whatever the key: cosign's P-384/SHA-384, P-521/SHA-512 and Ed25519ph
# signatures are outside what it can check, so those key types are covered by our own
# verifier only (test_bundle_round_trip).
@pytest.mark.parametrize("kind", ["ecdsa-p256", "rsa-2048"])
def test_sigstore_js_verifies_our_bundle(kind: str) -> None:
    pair = _pair(kind)
    bundle = _signed_bundle(pair)
    assert _sigstore_js(bundle, pair.public) == {"ok": True}
    # one flipped bit of the signature and it is refused
    doc = json.loads(bundle)
    sig = bytearray(base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"]))
    sig[len(sig) // 2] ^= 0x01
    doc["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    result = _sigstore_js(json.dumps(doc).encode(), pair.public)
    assert result["ok"] is False
    assert result["error"].startswith("SIGNATURE_ERROR")
    # and with another key it is refused too
    result = _sigstore_js(bundle, keys.KeyPair.generate().public)
    assert result["ok"] is False


def test_legacy_manifest_is_the_one_cosign_pushes() -> None:
    """go-containerregistry's manifest and config for cosign's signature image, field by
    field: an OCI manifest whose config has zero times and one history entry and diff_id
    (the layer's digest: layers are stored uncompressed) per signature."""
    payload = artifacts.simple_signing_payload(REFERENCE, DIGEST)
    one = artifacts.legacy_signature_layer(payload, {"dev.cosignproject.cosign/signature": "c2ln"})
    two = artifacts.legacy_signature_layer(payload, {"dev.cosignproject.cosign/signature": "b3Ro"})
    art = artifacts.legacy_signature_manifest([one, two])
    config, *layers = art.blobs
    assert layers == [one, two]
    assert json.loads(config.data) == {
        "architecture": "", "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}] * 2, "os": "",
        "rootfs": {"type": "layers", "diff_ids": [one.digest, two.digest]}, "config": {}}
    assert len(artifacts.legacy_signature_manifest([one]).blobs[0].data) == 233
    assert art.manifest == json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "size": config.size, "digest": config.digest},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                    "size": len(payload), "digest": layer.digest,
                    "annotations": layer.annotations} for layer in (one, two)],
    }, separators=(",", ":")).encode()
    assert artifacts.signature_tag(DIGEST) == f"sha256-{DIGEST[7:]}.sig"
    assert art.digest == "sha256:" + hashlib.sha256(art.manifest).hexdigest()
