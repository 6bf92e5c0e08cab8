"""Signing images pushed with skopeo, locally with a key file and on the server with a key it
holds; both of cosign's formats written (the `.sig` tag read back with skopeo, the bundle in
the referrers API); signatures accumulating, also when two signers write at once; the stored
verification shown by `moorage verify`, the API and the tag listing, changed when a key is
revoked (with its event); a signature pushed through /v2 the way cosign pushes one picked up;
and bad signing requests refused with nothing written."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from moorage.signing import artifacts
from moorage.signing import keys as cosign_keys
from moorage.signing.signer import sign_material
from tests.clients.tools import skopeo
from tests.events.receiver import Receiver
from tests.scan.inventory.helpers import compress, file, tar
from tests.scan.service.helpers import layout, push
from tests.signing.formats.test_round_trip import _sigstore_js
from tests.signing.service.helpers import (ADMIN, Cli, api, huge_post, namespace, push_image,
                                           registry_get, signatures, unique, wait_for)
from tests.support.server import MoorageServer
from tests.web.test_repository_browsing import put_blob, put_manifest

PASSWORD = "signing-password-1"


def _local_key(cli: Cli, work: Path, ns: str, name: str) -> Path:
    cli.ok("signing", "key", "generate", name, "--namespace", ns, "--out", str(work),
           env={"COSIGN_PASSWORD": PASSWORD})
    return work / f"{name}.key"


def _sig_layers(server: MoorageServer, repo: str, digest: str) -> list[dict]:
    raw = skopeo("inspect", "--raw", "--tls-verify=false", "--creds", f"{ADMIN[0]}:{ADMIN[1]}",
                 f"docker://{server.host}/{repo}:{artifacts.signature_tag(digest)}").stdout
    return json.loads(raw)["layers"]


def test_sign_locally_and_on_the_server_both_formats_accumulate_and_verify(
        server: MoorageServer, cli: Cli, work: Path) -> None:
    ns = namespace(server)
    repo = f"{ns}/app"
    digest = push_image(server, work, f"{repo}:1.0")
    key_file = _local_key(cli, work, ns, "laptop")
    assert cli("verify", f"{repo}:1.0").code == 1  # unsigned yet

    out = cli.ok("sign", f"{repo}:1.0", "--key", str(key_file),
                 env={"COSIGN_PASSWORD": PASSWORD})
    pair = cosign_keys.decrypt_private_key(key_file.read_bytes(), PASSWORD)
    assert f"Signed {repo}@{digest} (bundle, cosign); verified by laptop" in out
    # the legacy signature, as skopeo reads it: one simple-signing layer, cosign's annotation
    layers = _sig_layers(server, repo, digest)
    assert [x["mediaType"] for x in layers] == [artifacts.SIMPLE_SIGNING]
    assert artifacts.SIGNATURE_ANNOTATION in layers[0]["annotations"]
    payload = registry_get(server, f"{repo}/blobs/{layers[0]['digest']}").content
    assert json.loads(payload)["critical"]["image"]["docker-manifest-digest"] == digest
    assert pair.public.verify(base64.b64decode(
        layers[0]["annotations"][artifacts.SIGNATURE_ANNOTATION]), payload)
    # the Sigstore bundle, as a referrer with its artifactType
    index = registry_get(server, f"{repo}/referrers/{digest}").json()
    bundles = [m for m in index["manifests"]
               if m.get("artifactType") == artifacts.BUNDLE_V03]
    assert len(bundles) == 1
    # … which an independent implementation (npm @sigstore/verify) verifies with the key
    referrer = registry_get(server, f"{repo}/manifests/{bundles[0]['digest']}",
                            "application/vnd.oci.image.manifest.v1+json").json()
    bundle = registry_get(server, f"{repo}/blobs/{referrer['layers'][0]['digest']}").content
    assert _sigstore_js(bundle, pair.public) == {"ok": True}

    # a second signature, by a key the server holds: one more layer, one more bundle
    with api(server) as client:
        assert client.post(f"/namespaces/{ns}/signing/keys",
                           json={"name": "ci", "generate": True}).status_code == 201
    out = cli.ok("sign", f"{repo}@{digest}", "--key", "ci", "--server")
    assert "verified by ci, laptop" in out
    assert len(_sig_layers(server, repo, digest)) == 2
    index = registry_get(server, f"{repo}/referrers/{digest}").json()
    assert len([m for m in index["manifests"]
                if m.get("artifactType") == artifacts.BUNDLE_V03]) == 2

    verified = cli.json("verify", f"{repo}:1.0")
    assert verified["status"] == "verified" and verified["signers"] == ["ci", "laptop"]
    assert sorted((v["format"], v["key"], v["verified"]) for v in verified["verdicts"]) == [
        ("bundle", "ci", True), ("bundle", "laptop", True),
        ("cosign", "ci", True), ("cosign", "laptop", True)]
    table = cli.ok("verify", f"{repo}:1.0")
    assert table.splitlines()[0].split() == ["FORMAT", "RESULT", "SIGNER", "KEY", "SIGNED",
                                             "SOURCE"]
    assert f"{repo}@{digest}: verified by ci, laptop" in table
    # the tag listing's column
    with api(server) as client:
        tags = {t["name"]: t for t in client.get(f"/repositories/{repo}/tags").json()}
    assert tags["1.0"]["signature"] == "verified"
    assert tags[artifacts.signature_tag(digest)]["signature"] == "unsigned"
    listing = cli.ok("repo", "tags", repo)
    assert listing.splitlines()[0].split()[-1] == "SIGNED"
    assert [line.split()[-1] for line in listing.splitlines()
            if line.startswith("1.0 ")] == ["verified"]


def test_revoking_a_key_changes_the_stored_result_and_announces_it(
        server: MoorageServer, cli: Cli, work: Path) -> None:
    ns = namespace(server)
    repo = f"{ns}/revoked"
    digest = push_image(server, work, f"{repo}:v1")
    receiver = Receiver().start()
    try:
        with api(server) as client:
            assert client.post("/webhooks", json={
                "url": receiver.url, "events": ["signature", "signing_key"],
                "namespace": ns}).status_code == 201
        key_file = _local_key(cli, work, ns, "short-lived")
        cli.ok("sign", f"{repo}:v1", "--key", str(key_file), "--format", "cosign",
               env={"COSIGN_PASSWORD": PASSWORD})
        assert signatures(server, repo, "v1")["verified"] is True
        cli.ok("signing", "key", "revoke", "short-lived", "-n", ns)
        after = wait_for(lambda: (r := signatures(server, repo, "v1"))["status"] ==
                         "not verified" and r, "the stored result to change")
        assert after["signers"] == [] and after["signatures"] == 1
        assert after["verdicts"][0]["reason"].startswith("not verified")
        events = wait_for(lambda: [r.json() for r in receiver.requests
                                   if r.json().get("type") == "signature.verified"
                                   and r.json()["detail"]["verified"] is False],
                          "the signature.verified event")
        assert events[0]["repository"] == repo and events[0]["digest"] == digest
        assert any(r.json().get("type") == "signature.written" for r in receiver.requests)
        revoked = wait_for(lambda: [r.json() for r in receiver.requests
                                    if r.json().get("type") == "signing_key.revoke"],
                           "the key's revocation announced")
        assert revoked[0]["namespace"] == ns and revoked[0]["actor"] == "admin"
        assert cli("verify", f"{repo}:v1").code == 1
        # the re-verification was a job of the durable queue, with its progress and log
        with api(server) as client:
            jobs = client.get("/jobs", params={"type": "signing.reverify"}).json()
            mine = [j for j in jobs if j["payload"].get("scope") == ns
                    and "revoked" in j["payload"].get("why", "")]
            assert mine and mine[0]["status"] == "succeeded"
            job = client.get(f"/jobs/{mine[0]['id']}").json()
        assert f"{repo}@{digest}: now not verified" in job["log"]
        assert job["result"]["changed"] == 1
        # and the audit log recorded the revocation and the signature written (it is
        # written in batches: waited for)
        def audited(**params: object) -> list[dict]:
            with api(server) as client:
                return client.get("/audit", params={**params, "limit": 100}).json()["entries"]

        wait_for(lambda: {"signature.written", "image.sign"} <=
                 {e["action"] for e in audited(repository=repo)}, "the audit entries")
        wait_for(lambda: any(e["target"].endswith(f"{ns}/signing/keys/short-lived/revoke")
                             for e in audited(action="signing_key.revoke")),
                 "the revocation's audit entry")
    finally:
        receiver.stop()


def test_a_signature_pushed_through_v2_the_way_cosign_does_is_picked_up(
        server: MoorageServer, work: Path) -> None:
    ns = namespace(server)
    repo = f"{ns}/external"
    digest = push_image(server, work, f"{repo}:v1")
    pair = cosign_keys.KeyPair.generate()
    with api(server) as client:
        assert client.post(f"/namespaces/{ns}/signing/keys", json={
            "name": "upstream", "public_key": pair.public.pem.decode()}).status_code == 201
    material = sign_material(pair, f"{server.host}/{repo}", repo, digest, "cosign")
    layer = artifacts.Blob(artifacts.SIMPLE_SIGNING, material.payload,
                           artifacts.legacy_layer_annotations(material.payload_signature))
    built = artifacts.legacy_signature_manifest([layer])
    for blob in built.blobs:
        put_blob(server, repo, blob.data)
    put_manifest(server, repo, artifacts.signature_tag(digest), json.loads(built.manifest))
    found = wait_for(lambda: (r := signatures(server, repo, digest))["verified"] and r,
                     "the pushed signature to be verified")
    assert found["signers"] == ["upstream"]
    # deleting the signature tag makes the image unsigned again
    import httpx
    resp = httpx.delete(f"{server.url}/v2/{repo}/manifests/{artifacts.signature_tag(digest)}",
                        auth=ADMIN)
    assert resp.status_code == 202
    wait_for(lambda: signatures(server, repo, digest)["status"] == "unsigned",
             "the result to follow the deletion")


def test_two_signers_at_once_both_keep_their_signature(server: MoorageServer, cli: Cli,
                                                       work: Path) -> None:
    ns = namespace(server)
    repo = f"{ns}/busy"
    digest = push_image(server, work, f"{repo}:v1")
    keys = [_local_key(cli, work, ns, name) for name in ("one", "two")]
    runs = [cli.popen("sign", f"{repo}:v1", "--key", str(k), env={"COSIGN_PASSWORD": PASSWORD})
            for k in keys]
    for proc in runs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    layers = _sig_layers(server, repo, digest)
    assert len(layers) == 2
    verified = signatures(server, repo, digest)
    assert verified["signers"] == ["one", "two"]


@pytest.fixture(scope="module")
def target(server: MoorageServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    ns = namespace(server)
    repo = f"{ns}/target"
    return repo, push_image(server, tmp_path_factory.mktemp("target"), f"{repo}:v1")


def _body(digest: str, pair: cosign_keys.KeyPair, other: str | None = None,
          **override: object) -> dict[str, object]:
    material = sign_material(pair, "example/target", "example/target", other or digest)
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    body: dict[str, object] = {
        "reference": digest, "public_key": pair.public.pem.decode(),
        "payload": b64(material.payload), "payload_signature": b64(material.payload_signature),
        "statement": b64(material.statement),
        "statement_signature": b64(material.statement_signature)}
    body.update(override)
    return body


def _cases(digest: str) -> list[tuple[dict[str, object], int, str]]:
    pair, stranger = cosign_keys.KeyPair.generate(), cosign_keys.KeyPair.generate()
    other = "sha256:" + "0" * 64
    good = _body(digest, pair)
    return [
        (_body(digest, pair, other), 400, "names sha256:000"),
        ({**good, "public_key": stranger.public.pem.decode()}, 400, "not made by this public key"),
        ({**good, "payload_signature": good["statement_signature"]}, 400,
         "not made by this public key"),
        ({**good, "public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"},
         400, "public_key"),
        ({**good, "payload": "%%% not base64"}, 400, "not valid base64"),
        ({**good, "payload": base64.b64encode(b"[1, 2]").decode()}, 400, "payload"),
        ({**good, "format": "gpg"}, 422, ""),
        ({**good, "key": "ci"}, 400, "not both"),
        ({"reference": digest, "key": "no-such-key", "key_scope": "instance"}, 404, "no key"),
        ({**good, "reference": "no-such-tag"}, 404, ""),
    ]


def test_bad_signing_requests_are_refused_and_write_nothing(
        server: MoorageServer, target: tuple[str, str]) -> None:
    repo, digest = target
    with api(server) as client:
        for body, status, words in _cases(digest):
            resp = client.post(f"/repositories/{repo}/signatures", json=body)
            assert resp.status_code == status, (body, resp.text)
            assert words in resp.json()["error"]["message"], resp.text
        assert huge_post(server, f"/repositories/{repo}/signatures") == 413
        tags = [t["name"] for t in client.get(f"/repositories/{repo}/tags").json()]
        referrers = registry_get(server, f"{repo}/referrers/{digest}").json()["manifests"]
    assert tags == ["v1"] and referrers == []
    assert signatures(server, repo, digest)["status"] == "unsigned"


def test_signing_needs_the_right_to_push(server: MoorageServer,
                                         target: tuple[str, str]) -> None:
    repo, digest = target
    user, password = unique("reader"), "a-password-for-reader"
    with api(server) as admin:
        assert admin.post("/users", json={"username": user, "password": password}
                          ).status_code == 201
        ns = repo.split("/")[0]
        assert admin.put(f"/namespaces/{ns}/members/{user}",
                         json={"role": "guest"}).status_code in (200, 201, 204)
    with api(server, (user, password)) as guest:
        resp = guest.post(f"/repositories/{repo}/signatures",
                          json=_body(digest, cosign_keys.KeyPair.generate()))
        assert resp.status_code == 403, resp.text
        assert guest.get(f"/repositories/{repo}/manifests/v1/signatures").status_code == 200


def test_a_burst_of_signers_on_two_workers_loses_no_signature(
        server: MoorageServer, work: Path) -> None:
    """Eight signatures sent at once (signed beforehand, so that they reach the two workers
    together): the `.sig` manifest ends with eight layers, none lost to another's write."""
    from concurrent.futures import ThreadPoolExecutor

    ns = namespace(server)
    repo = f"{ns}/burst"
    digest = push_image(server, work, f"{repo}:v1")
    bodies = [_body(digest, cosign_keys.KeyPair.generate(), format="cosign")
              for _ in range(8)]

    def post(body: dict[str, object]) -> int:
        with api(server) as client:
            return client.post(f"/repositories/{repo}/signatures", json=body).status_code

    with ThreadPoolExecutor(len(bodies)) as pool:
        assert list(pool.map(post, bodies)) == [201] * len(bodies)
    layers = _sig_layers(server, repo, digest)
    assert sorted(x["annotations"][artifacts.SIGNATURE_ANNOTATION] for x in layers) == sorted(
        b["payload_signature"] for b in bodies)


def test_a_repository_made_again_under_a_deleted_name_starts_unsigned(
        server: MoorageServer, work: Path) -> None:
    ns = namespace(server)
    repo = f"{ns}/again"
    image = layout(work / "layout", [compress(tar([file("etc/hostname", "again\n")]))])
    digest = push(server, image, f"{repo}:v1")
    pair = cosign_keys.KeyPair.generate()
    with api(server) as client:
        assert client.post(f"/namespaces/{ns}/signing/keys", json={
            "name": "k", "public_key": pair.public.pem.decode()}).status_code == 201
        assert client.post(f"/repositories/{repo}/signatures",
                           json=_body(digest, pair)).status_code == 201
        assert signatures(server, repo, digest)["verified"] is True
        assert client.delete(f"/repositories/{repo}").status_code == 204
    assert push(server, image, f"{repo}:v1") == digest  # the same bytes, no signature
    assert signatures(server, repo, digest)["status"] == "unsigned"
    with api(server) as client:
        assert client.post(f"/repositories/{repo}/signatures",
                           json=_body(digest, pair)).status_code == 201
        assert client.delete(f"/namespaces/{ns}").status_code == 204
    assert push(server, image, f"{repo}:v1") == digest
    assert signatures(server, repo, digest)["status"] == "unsigned"


def test_a_hostile_signature_manifest_is_not_verified_and_not_built_upon(
        server: MoorageServer, work: Path) -> None:
    """Someone who may push wrote a `.sig` tag whose layer is 2 MiB of junk: the image is
    "not verified" with the reason, and signing it is refused with a clear 400 (the junk is
    not copied into a new signature manifest), never a 500."""
    ns = namespace(server)
    repo = f"{ns}/hostile"
    digest = push_image(server, work, f"{repo}:v1")
    junk = b"\0" * (2 << 20)
    put_blob(server, repo, junk)
    empty = artifacts.legacy_signature_manifest(
        [artifacts.Blob(artifacts.SIMPLE_SIGNING, junk, {"x": "y"})])
    for blob in empty.blobs[:1]:
        put_blob(server, repo, blob.data)
    put_manifest(server, repo, artifacts.signature_tag(digest), json.loads(empty.manifest))
    found = wait_for(lambda: (r := signatures(server, repo, digest))["signatures"] and r,
                     "the hostile signature to be looked at")
    assert found["status"] == "not verified"
    assert "too large" in found["verdicts"][0]["reason"]
    with api(server) as client:
        resp = client.post(f"/repositories/{repo}/signatures",
                           json=_body(digest, cosign_keys.KeyPair.generate(), format="cosign"))
    assert resp.status_code == 400 and "cannot be read" in resp.json()["error"]["message"]
