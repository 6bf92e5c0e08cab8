"""A keyless signature (a certificate from a CA made here, as Fulcio issues them) pushed
through /v2: not verified while its signer is not a trusted identity, verified once the
namespace trusts that subject and issuer, against the instance's `signing_trusted_root`."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from moorage.signing import artifacts
from tests.signing.service.helpers import Cli, namespace, push_image, signatures, wait_for
from tests.support.server import MoorageServer
from tests.web.test_repository_browsing import put_blob, put_manifest

WORKFLOW = "https://git.example/team/app/.ci/release.yml@refs/heads/main"
ISSUER = "https://ci.example"


def _cert(cn: str, key, issuer: str, issuer_key, *, ca: bool) -> x509.Certificate:
    now = datetime.now(UTC)
    name = lambda v: x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, v)])  # noqa: E731
    builder = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5))
               .not_valid_after(now + timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        oidc = ISSUER.encode()
        builder = (builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(WORKFLOW)]), critical=True)
            .add_extension(x509.UnrecognizedExtension(
                x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8"),
                bytes([0x0C, len(oidc)]) + oidc), critical=False))
    return builder.sign(issuer_key, hashes.SHA256())


def test_a_keyless_signature_verifies_once_its_identity_is_trusted(
        server: MoorageServer, cli: Cli, work: Path) -> None:
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = _cert("test root", root_key, "test root", root_key, ca=True)
    trusted_root = {"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                    "certificateAuthorities": [{"certChain": {"certificates": [{
                        "rawBytes": base64.b64encode(
                            root.public_bytes(serialization.Encoding.DER)).decode()}]}}],
                    "tlogs": []}
    (server.data_dir.parent / "root.json").write_text(json.dumps(trusted_root))

    ns = namespace(server)
    repo = f"{ns}/keyless"
    digest = push_image(server, work, f"{repo}:v1")
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _cert("signer", key, "test root", root_key, ca=False)
    payload = artifacts.simple_signing_payload(f"{server.host}/{repo}", digest)
    signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    layer = artifacts.legacy_signature_layer(payload, artifacts.legacy_layer_annotations(
        signature, certificate=pem(leaf), chain=pem(root)))
    built = artifacts.legacy_signature_manifest([layer])
    for blob in built.blobs:
        put_blob(server, repo, blob.data)
    put_manifest(server, repo, artifacts.signature_tag(digest), json.loads(built.manifest))

    untrusted = wait_for(lambda: (r := signatures(server, repo, digest))["signatures"] and r,
                         "the keyless signature to be found")
    assert untrusted["status"] == "not verified"
    cli.ok("signing", "identity", "add", "--subject", WORKFLOW, "--issuer", ISSUER, "-n", ns)
    verified = wait_for(lambda: (r := signatures(server, repo, digest))["verified"] and r,
                        "the identity's re-verification")
    assert verified["signers"] == [f"{WORKFLOW} ({ISSUER})"]
    assert verified["verdicts"][0]["scope"] == ns
