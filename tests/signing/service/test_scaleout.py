"""Signing across replicas (PostgreSQL, SeaweedFS, Redis; a master key from the
environment): a key generated and sealed through one replica signs through the other, a
burst of signers spread over both keeps every signature (the `.sig` tag's lock is Redis's),
and a revocation through one changes the result the other serves."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from moorage.signing import artifacts
from moorage.signing import keys as cosign_keys
from tests.conftest import ROOMY, SECURED
from tests.signing.service.helpers import api, namespace, signatures, wait_for
from tests.signing.service.test_sign import _body
from tests.support.scaleout import ScaleOut
from tests.web.helpers import push_image

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaleOut]:
    master = base64.b64encode(os.urandom(32)).decode()
    deployment = ScaleOut(tmp_path_factory.mktemp("signing-scaleout"),
                          env={**SECURED, **ROOMY, "MOORAGE_ENCRYPTION": "true",
                               "MOORAGE_MASTER_KEY": master})
    try:
        yield deployment.start(replicas=2)
    finally:
        deployment.stop()


def test_signing_across_replicas(cluster: ScaleOut, tmp_path: Path) -> None:
    one, two = cluster.replicas
    ns = namespace(one)
    repo = f"{ns}/app"
    digest = push_image(one, repo, "v1")
    with api(one) as client:
        made = client.post(f"/namespaces/{ns}/signing/keys",
                           json={"name": "ci", "generate": True})
        assert made.status_code == 201 and made.json()["server_held"]
    with api(two) as client:  # unsealed by the other replica, with the shared master key
        signed = client.post(f"/repositories/{repo}/signatures",
                             json={"reference": digest, "key": "ci"})
        assert signed.status_code == 201, signed.text
        assert signed.json()["verification"]["signers"] == ["ci"]

    pairs = [cosign_keys.KeyPair.generate() for _ in range(8)]
    with api(one) as client:
        for n, pair in enumerate(pairs):
            assert client.post(f"/namespaces/{ns}/signing/keys", json={
                "name": f"k{n}", "public_key": pair.public.pem.decode()}).status_code == 201

    def post(n: int) -> int:
        with api((one, two)[n % 2]) as client:
            return client.post(f"/repositories/{repo}/signatures",
                               json=_body(digest, pairs[n], format="cosign")).status_code

    with ThreadPoolExecutor(len(pairs)) as pool:
        assert list(pool.map(post, range(len(pairs)))) == [201] * len(pairs)
    with api(two) as client:
        tag = artifacts.signature_tag(digest)
        manifest = client.get(f"/repositories/{repo}/manifests/{tag}").json()
    assert len(manifest["layers"]) == 1 + len(pairs)
    result = wait_for(lambda: (r := signatures(two, repo, digest))["signers"] ==
                      sorted(["ci", *[f"k{n}" for n in range(8)]]) and r,
                      "every signer in the stored result")
    assert result["verified"]

    with api(one) as client:
        for name in ["ci", *[f"k{n}" for n in range(8)]]:
            assert client.post(f"/namespaces/{ns}/signing/keys/{name}/revoke",
                               json={}).status_code == 200
    wait_for(lambda: signatures(two, repo, digest)["status"] == "not verified",
             "the revocations to reach the stored result")
