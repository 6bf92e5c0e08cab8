"""Trusted keys through the CLI and the API: a key pair generated locally in cosign's format
(only its public key sent), a cosign key imported with its password and held by the server
sealed with the master key (its bytes nowhere in the database or the log), a public key
alone, keyless identities, revocation and deletion, who may do it, and bad input refused
with a clear 4xx."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from moorage.signing import keys as cosign_keys
from tests.conftest import ROOMY, SECURED
from tests.signing.service.helpers import (COSIGN, FIXTURE_KEY, FIXTURE_PUBLIC_B64, Cli, api,
                                           huge_post, namespace, unique)
from tests.support.server import MoorageServer

PASSWORD = "correct horse battery staple"


def test_a_key_generated_locally_is_cosigns_format_and_only_its_public_key_is_sent(
        server: MoorageServer, cli: Cli, work: Path) -> None:
    ns = namespace(server)
    shown = cli.json("signing", "key", "generate", "release", "--namespace", ns, "--out",
                     str(work), env={"COSIGN_PASSWORD": PASSWORD})
    private = (work / "release.key").read_bytes()
    public = (work / "release.pub").read_bytes()
    assert private.startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")
    assert (work / "release.key").stat().st_mode & 0o077 == 0
    pair = cosign_keys.decrypt_private_key(private, PASSWORD)
    assert pair.public.pem == public
    assert shown["fingerprint"] == pair.public.fingerprint and not shown["server_held"]
    assert shown["scope"] == ns and shown["algorithm"] == "ecdsa-p256"
    listed = cli.json("signing", "key", "list", "--namespace", ns)
    assert [(k["name"], k["public_key"].encode()) for k in listed] == [("release", public)]
    # the same name again is a conflict, and no file is overwritten
    again = cli("signing", "key", "generate", "release", "--namespace", ns, "--out",
                str(work / "other"), env={"COSIGN_PASSWORD": PASSWORD})
    assert again.code == 1 and "already exists" in again.stderr
    assert not (work / "other" / "release.key").exists()
    assert PASSWORD not in again.stderr + again.stdout


def test_an_imported_cosign_key_is_held_sealed_never_in_the_clear(
        server: MoorageServer, cli: Cli) -> None:
    ns = namespace(server)
    wrong = cli("signing", "key", "import", str(FIXTURE_KEY), "--name", "ci", "--namespace",
                ns, env={"COSIGN_PASSWORD": "not-the-password"})
    assert wrong.code == 1 and "password does not open" in wrong.stderr
    assert "not-the-password" not in wrong.stderr + wrong.stdout + server.log()
    shown = cli.json("signing", "key", "import", str(FIXTURE_KEY), "--name", "ci",
                     "--namespace", ns, env={"COSIGN_PASSWORD": "hello"})
    assert shown["server_held"] and shown["name"] == "ci"
    expected = base64.b64decode(FIXTURE_PUBLIC_B64)
    assert shown["fingerprint"] == cosign_keys.load_public_key(
        b"-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(expected) +
        b"-----END PUBLIC KEY-----\n").fingerprint
    # the private key, in any form, is in neither the database nor the log
    der = cosign_keys.decrypt_private_key(FIXTURE_KEY.read_bytes(), "hello").pkcs8()
    secret_forms = [der, base64.b64encode(der), der[-32:]]
    stored = b"".join(p.read_bytes() for p in server.data_dir.glob("moorage.db*"))
    for form in secret_forms:
        assert form not in stored
        assert form.decode("latin-1") not in server.log()
    assert "hello" not in server.log()
    # the API says whether the server holds a private key, never what it is
    with api(server) as client:
        answered = client.get(f"/namespaces/{ns}/signing/keys/ci").text
    assert "PRIVATE" not in answered and base64.b64encode(der).decode() not in answered


def test_server_generated_keys_are_sealed_and_public_keys_may_come_alone(
        server: MoorageServer, cli: Cli) -> None:
    shown = cli.json("signing", "key", "generate", unique("auto"), "--instance", "--server")
    assert shown["server_held"] and shown["scope"] == "instance"
    public = cli.json("signing", "key", "import", str(COSIGN / "cosign.pub"), "--public",
                      "--instance", "--name", unique("upstream"))
    assert not public["server_held"]
    assert public["public_key"].encode() == cosign_keys.load_public_key(
        (COSIGN / "cosign.pub").read_bytes()).pem
    names = {k["name"] for k in cli.json("signing", "key", "list", "--instance")}
    assert {shown["name"], public["name"]} <= names
    table = cli.ok("signing", "key", "list", "--instance")
    assert table.splitlines()[0].split() == ["NAME", "ALGORITHM", "FINGERPRINT",
                                             "SERVER-HELD", "STATUS", "ADDED", "BY"]


def test_revoked_keys_stay_listed_and_deleted_keys_go(server: MoorageServer, cli: Cli) -> None:
    ns = namespace(server)
    name = unique("old")
    cli.ok("signing", "key", "import", str(COSIGN / "cosign2.pub"), "--public", "-n", ns,
           "--name", name)
    assert "Revoked key" in cli.ok("signing", "key", "revoke", name, "-n", ns)
    shown = cli.json("signing", "key", "show", name, "-n", ns)
    assert shown["revoked"] and shown["revoked_by"] == "admin"
    cli.ok("signing", "key", "delete", name, "-n", ns, "--yes")
    gone = cli("signing", "key", "show", name, "-n", ns)
    assert gone.code == 1 and "no key named" in gone.stderr


def test_keyless_identities_are_added_listed_and_removed(server: MoorageServer,
                                                         cli: Cli) -> None:
    ns = namespace(server)
    issuer = "https://token.actions.githubusercontent.com"
    subject = "https://github.com/example/app/.github/workflows/release.yml@refs/heads/main"
    added = cli.json("signing", "identity", "add", "--subject", subject, "--issuer", issuer,
                     "-n", ns)
    assert [(i["subject"], i["issuer"]) for i in
            cli.json("signing", "identity", "list", "-n", ns)] == [(subject, issuer)]
    again = cli("signing", "identity", "add", "--subject", subject, "--issuer", issuer,
                "-n", ns)
    assert again.code == 1 and "already trusted" in again.stderr
    cli.ok("signing", "identity", "remove", str(added["id"]), "-n", ns)
    assert cli.json("signing", "identity", "list", "-n", ns) == []


def test_namespace_keys_need_its_owner_and_instance_keys_an_administrator(
        server: MoorageServer) -> None:
    ns = namespace(server)
    user, password = unique("dev"), "a-password-for-dev-1"
    with api(server) as admin:
        assert admin.post("/users", json={"username": user, "password": password}
                          ).status_code == 201
        assert admin.put(f"/namespaces/{ns}/members/{user}",
                         json={"role": "maintainer"}).status_code in (200, 201, 204)
    body = {"name": "k", "public_key": (COSIGN / "cosign.pub").read_text()}
    with api(server, (user, password)) as dev:
        refused = dev.post(f"/namespaces/{ns}/signing/keys", json=body)
        assert refused.status_code == 403, refused.text
        assert dev.post("/signing/keys", json=body).status_code == 403
        assert dev.get(f"/namespaces/{ns}/signing/keys").status_code == 200
    with api(server) as admin:
        assert admin.put(f"/namespaces/{ns}/members/{user}",
                         json={"role": "owner"}).status_code in (200, 201, 204)
    with api(server, (user, password)) as owner:
        assert owner.post(f"/namespaces/{ns}/signing/keys", json=body).status_code == 201


def _secp256k1_public() -> str:
    key = ec.generate_private_key(ec.SECP256K1()).public_key()
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.mark.parametrize("body, status, words", [
    ({"name": "bad", "public_key": "-----BEGIN PUBLIC KEY-----\nnot base64!\n"
      "-----END PUBLIC KEY-----\n"}, 400, "PEM"),
    ({"name": "bad", "public_key": "just text"}, 400, "PEM"),
    ({"name": "k1", "public_key": "SECP256K1"}, 400, "not supported"),
    ({"name": "Bad Name", "generate": True}, 400, "invalid key name"),
    ({"name": "both", "generate": True, "public_key": "x"}, 400, "exactly one"),
    ({"name": "x", "generate": "yes"}, 422, ""),
    ({"name": "x", "public_key": "A" * 20000}, 422, ""),
])
def test_bad_keys_are_refused_clearly(server: MoorageServer, body: dict, status: int,
                                      words: str) -> None:
    if body.get("public_key") == "SECP256K1":
        body = {**body, "public_key": _secp256k1_public()}
    ns = namespace(server)
    with api(server) as client:
        resp = client.post(f"/namespaces/{ns}/signing/keys", json=body)
        assert resp.status_code == status, resp.text
        assert words.lower() in resp.json()["error"]["message"].lower()
        assert client.get(f"/namespaces/{ns}/signing/keys").json() == []


def test_a_huge_body_is_refused_before_it_is_read(server: MoorageServer) -> None:
    assert huge_post(server, "/signing/keys") == 413


def test_without_a_master_key_a_private_key_is_refused_naming_the_setting(
        tmp_path: Path) -> None:
    plain = MoorageServer(tmp_path / "data", env={**SECURED, **ROOMY}).start()
    try:
        cli = Cli(plain, tmp_path / "cli")
        for args, env in ((["generate", "srv", "--instance", "--server"], {}),
                          (["import", str(FIXTURE_KEY), "--instance"],
                           {"COSIGN_PASSWORD": "hello"})):
            refused = cli("signing", "key", *args, env=env)
            assert refused.code == 1, refused
            assert "encryption" in refused.stderr and "master" in refused.stderr
        with api(plain) as client:
            assert client.get("/signing/keys").json() == []
            info = client.get("/info").json()
        assert info["features"]["signing"] is True
        # a public key alone needs no master key
        cli.ok("signing", "key", "import", str(COSIGN / "cosign.pub"), "--public",
               "--instance")
    finally:
        plain.stop()


def test_editions_without_signing_neither_advertise_nor_serve_it(tmp_path: Path) -> None:
    basic = MoorageServer(tmp_path / "data", env={**SECURED, **ROOMY,
                                                  "MOORAGE_EDITION": "basic"}).start()
    try:
        with api(basic) as client:
            assert client.get("/info").json()["features"]["signing"] is False
            resp = client.get("/signing/keys")
            assert resp.status_code == 403 and "advanced" in resp.json()["error"]["message"]
    finally:
        basic.stop()
