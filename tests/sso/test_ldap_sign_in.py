"""Signing in with an LDAP directory's password (a real slapd) on a real `moorage serve`:
real clients (podman, skopeo, the `moorage` CLI) log in with directory passwords, accounts are
made at the first sign-in, roles follow the directory's groups at every sign-in, and the
names a directory would match too broadly are refused."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import Cli
from tests.clients.tools import ContainerStore, skopeo
from tests.conftest import ADMIN_PASSWORD
from tests.console.test_signin import sign_in
from tests.sso.conftest import PASSWORDS, token_answer
from tests.support.images import busybox_image, layout_manifest
from tests.support.ldap_server import SEARCH_PASSWORD, LdapServer, group_dn, user_dn
from tests.support.server import MoorageServer
from tests.web.helpers import (USER_PASSWORD, api, grant, make_namespace, make_user,
                               server_log, unique)

pytestmark = [pytest.mark.clients]
DEVELOPERS = group_dn("developers")


def members(server: MoorageServer, namespace: str) -> dict[str, str]:
    resp = api(server, "GET", f"/namespaces/{namespace}/members")
    assert resp.status_code == 200, resp.text
    return {m["username"]: m["role"] for m in resp.json()}


def map_group(server: MoorageServer, group: str, namespace: str, role: str) -> int:
    resp = api(server, "POST", "/sso/group-roles",
               json={"group": group, "namespace": namespace, "role": role})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def signs_in(server: MoorageServer, username: str, password: str) -> bool:
    resp = token_answer(server, username, password)
    assert resp.status_code in (200, 401), resp.text
    return resp.status_code == 200


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[ContainerStore]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (apt-get install podman)")
    store = ContainerStore("podman", tmp_path / "podman", "vfs")
    yield store
    store.cleanup()


def test_the_instance_says_it_signs_in_with_ldap(ldap_registry: MoorageServer,
                                                  secure_registry: MoorageServer,
                                                  tmp_path: Path) -> None:
    assert httpx.get(f"{ldap_registry.url}/api/v1/info").json()["sign_in"] == ["local", "ldap"]
    assert httpx.get(f"{secure_registry.url}/api/v1/info").json()["sign_in"] == ["local"]
    cli = Cli(ldap_registry, tmp_path / "config")
    assert cli.login().code == 0
    assert "sign-in" in (out := cli.ok("info")) and "local, ldap" in out


def test_a_directory_user_pushes_where_its_group_is_developer_and_nowhere_else(
        ldap_registry: MoorageServer, podman: ContainerStore, tmp_path: Path) -> None:
    team, other = make_namespace(ldap_registry, prefix="team"), make_namespace(ldap_registry)
    map_group(ldap_registry, DEVELOPERS, team, "developer")
    src = tmp_path / "src"
    busybox_image(src, "v1")
    _, manifest = layout_manifest(src, "v1")
    image_id = manifest["config"]["digest"].removeprefix("sha256:")
    authfile = tmp_path / "auth.json"
    podman("pull", "--quiet", f"oci:{src}:v1")

    podman("login", "--tls-verify=false", "--authfile", str(authfile), "-u", "alice",
           "--password-stdin", ldap_registry.host, input=PASSWORDS["alice"])
    podman("push", "--quiet", "--tls-verify=false", "--authfile", str(authfile), image_id,
           f"docker://{ldap_registry.host}/{team}/app:v1")
    refused = podman("push", "--quiet", "--tls-verify=false", "--authfile", str(authfile),
                     image_id, f"docker://{ldap_registry.host}/{other}/app:v1", check=False)
    assert refused.returncode != 0
    assert any(w in refused.stderr.lower() for w in ("denied", "forbidden", "unauthorized"))

    # the account was made at the first sign-in, named as the directory names it
    account = api(ldap_registry, "GET", "/users/alice").json()
    assert account["source"] == "ldap" and account["is_admin"] is False
    assert members(ldap_registry, team)["alice"] == "developer"
    assert "alice" not in members(ldap_registry, other)
    # skopeo with the same directory password reads it back
    listed = skopeo("list-tags", "--tls-verify=false", "--creds",
                    f"alice:{PASSWORDS['alice']}",
                    f"docker://{ldap_registry.host}/{team}/app").json()
    assert listed["Tags"] == ["v1"]


def test_roles_follow_the_groups_at_each_sign_in_and_hand_given_roles_stay(
        ldap_registry: MoorageServer, directory: LdapServer) -> None:
    team, readers_ns, by_hand = (make_namespace(ldap_registry) for _ in range(3))
    map_group(ldap_registry, DEVELOPERS, team, "developer")
    map_group(ldap_registry, group_dn("readers"), readers_ns, "guest")
    assert signs_in(ldap_registry, "dave", PASSWORDS["dave"])
    grant(ldap_registry, by_hand, "dave", "maintainer")  # an owner's decision, not a group's
    assert members(ldap_registry, team)["dave"] == "developer"
    assert members(ldap_registry, readers_ns)["dave"] == "guest"

    directory.remove_member("developers", "dave")
    try:
        # until the next sign-in nothing changes; then the role the group gave is gone
        assert members(ldap_registry, team)["dave"] == "developer"
        assert signs_in(ldap_registry, "dave", PASSWORDS["dave"])
        assert "dave" not in members(ldap_registry, team)
        assert members(ldap_registry, readers_ns)["dave"] == "guest"
        assert members(ldap_registry, by_hand)["dave"] == "maintainer"
        push = httpx.post(f"{ldap_registry.url}/v2/{team}/app/blobs/uploads/",
                          auth=("dave", PASSWORDS["dave"]))
        assert push.status_code in (401, 403)
    finally:
        directory.add_member("developers", "dave")
    assert signs_in(ldap_registry, "dave", PASSWORDS["dave"])
    assert members(ldap_registry, team)["dave"] == "developer"


def test_wrong_passwords_and_filter_injection_are_refused(ldap_registry: MoorageServer) -> None:
    assert not signs_in(ldap_registry, "alice", "not-alices-password")
    assert not signs_in(ldap_registry, "alice", "")
    # names a filter would read as wildcards or as more filter: with alice's password, as an
    # attacker who knows one password and no name would try
    for name in ("*", "a*", "*e", "alice)(uid=*", "admin)(uid=*", "alice)(|(uid=*",
                 "*)(objectClass=*", "alice\\2a", "alice\x00"):
        resp = token_answer(ldap_registry, name, PASSWORDS["alice"])
        assert resp.status_code == 401, (name, resp.text)
        assert "invalid username or password" in resp.text
    # and with the search account's view, a wildcard never names the administrator either
    assert not signs_in(ldap_registry, "*", ADMIN_PASSWORD)
    users = {u["username"] for u in api(ldap_registry, "GET", "/users").json()}
    assert not any("*" in u or "(" in u for u in users)


def test_a_member_of_the_admin_group_is_an_administrator(ldap_registry: MoorageServer,
                                                         directory: LdapServer) -> None:
    assert signs_in(ldap_registry, "carol", PASSWORDS["carol"])
    me = api(ldap_registry, "GET", "/user", auth=("carol", PASSWORDS["carol"])).json()
    assert me["is_admin"] is True
    directory.remove_member("admins", "carol")
    try:
        assert signs_in(ldap_registry, "carol", PASSWORDS["carol"])
        assert api(ldap_registry, "GET", "/users/carol").json()["is_admin"] is False
    finally:
        directory.add_member("admins", "carol")


def test_a_local_account_is_not_taken_over_until_an_administrator_switches_it(
        ldap_registry: MoorageServer, tmp_path: Path) -> None:
    resp = api(ldap_registry, "POST", "/users",
               json={"username": "frank", "password": USER_PASSWORD})
    assert resp.status_code == 201, resp.text
    # the directory's frank has another password: it does not open the local account
    assert not signs_in(ldap_registry, "frank", PASSWORDS["frank"])
    assert signs_in(ldap_registry, "frank", USER_PASSWORD)
    assert api(ldap_registry, "GET", "/users/frank").json()["source"] == "local"
    kept = httpx.post(f"{ldap_registry.url}/auth/token", data={
        "grant_type": "password", "username": "frank", "password": USER_PASSWORD,
        "service": "moorage", "client_id": "tests", "access_type": "offline"})
    assert kept.status_code == 200, kept.text

    admin = Cli(ldap_registry, tmp_path / "admin")
    assert admin.login().code == 0
    assert "frank now signs in with ldap" in admin.ok("user", "source", "frank", "ldap")
    # the refresh token the local password got ends with the switch
    renewed = httpx.post(f"{ldap_registry.url}/auth/token", data={
        "grant_type": "refresh_token", "refresh_token": kept.json()["refresh_token"],
        "service": "moorage", "client_id": "tests"})
    assert renewed.status_code == 401 and "revoked" in renewed.text, renewed.text
    assert signs_in(ldap_registry, "frank", PASSWORDS["frank"])
    assert not signs_in(ldap_registry, "frank", USER_PASSWORD)
    assert "ldap" in admin.ok("user", "list")

    # back to local: only with a new password
    refused = api(ldap_registry, "PATCH", "/users/frank", json={"source": "local"})
    assert refused.status_code == 400 and "password" in refused.json()["error"]["message"]
    new_password = "franks-new-local-password"
    admin.ok("user", "source", "frank", "local", "--password-stdin",
             input=f"{new_password}\n")
    assert signs_in(ldap_registry, "frank", new_password)
    assert not signs_in(ldap_registry, "frank", PASSWORDS["frank"])


def test_switching_needs_an_administrator_and_a_configured_source(
        ldap_registry: MoorageServer, secure_registry: MoorageServer) -> None:
    username, _ = make_user(ldap_registry)
    refused = api(ldap_registry, "PATCH", f"/users/{username}", auth=(username, USER_PASSWORD),
                  json={"source": "ldap"})
    assert refused.status_code == 403
    other, _ = make_user(secure_registry)
    unconfigured = api(secure_registry, "PATCH", f"/users/{other}", json={"source": "ldap"})
    assert unconfigured.status_code == 400
    assert "not configured" in unconfigured.json()["error"]["message"]


def test_the_console_signs_in_with_the_directory_password(ldap_registry: MoorageServer) -> None:
    """The console's sign-in form takes a directory password like any other."""
    with httpx.Client(base_url=ldap_registry.url, timeout=120) as client:
        assert sign_in(client, "grace", PASSWORDS["grace"])
        assert "grace" in client.get("/account/tokens").text


def test_group_roles_api_is_for_administrators_and_checks_its_input(
        ldap_registry: MoorageServer) -> None:
    ns = make_namespace(ldap_registry)
    username, _ = make_user(ldap_registry)
    for method, path, body in (("GET", "/sso/group-roles", None),
                               ("POST", "/sso/group-roles",
                                {"group": "cn=x", "namespace": ns, "role": "owner"}),
                               ("DELETE", "/sso/group-roles/1", None)):
        assert api(ldap_registry, method, path, auth=(username, USER_PASSWORD),
                   json=body).status_code == 403
        assert api(ldap_registry, method, path, auth=None, json=body).status_code == 401

    def post(**fields: object) -> httpx.Response:
        return api(ldap_registry, "POST", "/sso/group-roles",
                   json={"group": "cn=qa,ou=groups,dc=moorage,dc=test", "namespace": ns,
                         "role": "guest", **fields})

    assert post(role="emperor").status_code == 422
    assert post(group="").status_code == 422
    assert post(group="g" * 1025).status_code == 422
    assert post(group="line\nbreak").status_code == 400
    assert post(namespace=unique("missing")).status_code == 404
    assert post(extra=1).status_code == 422
    created = post()
    assert created.status_code == 201, created.text
    again = post(role="owner")
    assert again.status_code == 409 and "already" in again.json()["error"]["message"]
    listed = api(ldap_registry, "GET", "/sso/group-roles").json()
    assert {"id": created.json()["id"], "group": "cn=qa,ou=groups,dc=moorage,dc=test",
            "namespace": ns, "role": "guest"}.items() <= next(
        m for m in listed if m["id"] == created.json()["id"]).items()
    assert api(ldap_registry, "DELETE", f"/sso/group-roles/{created.json()['id']}"
               ).status_code == 204
    gone = api(ldap_registry, "DELETE", f"/sso/group-roles/{created.json()['id']}")
    assert gone.status_code == 404
    assert api(ldap_registry, "DELETE", "/sso/group-roles/0").status_code == 422
    openapi = httpx.get(f"{ldap_registry.url}/api/v1/openapi.json", timeout=60).json()
    assert "/api/v1/sso/group-roles" in openapi["paths"]


def test_group_roles_cli(ldap_registry: MoorageServer, tmp_path: Path) -> None:
    ns = make_namespace(ldap_registry)
    cli = Cli(ldap_registry, tmp_path / "config")
    assert cli.login().code == 0
    said = cli.ok("sso", "group-roles", "add", DEVELOPERS, ns, "maintainer")
    assert f"members of {DEVELOPERS} are maintainer in {ns}" in said
    mapping = next(m for m in json.loads(cli.ok("sso", "group-roles", "list", "--json"))
                   if m["namespace"] == ns)
    assert mapping["role"] == "maintainer" and mapping["group"] == DEVELOPERS
    table = cli.ok("sso", "group-roles", "list")
    assert "GROUP" in table and ns in table
    refused = cli("sso", "group-roles", "add", DEVELOPERS, unique("nowhere"), "guest")
    assert refused.code != 0 and "does not exist" in refused.stderr
    bad_role = cli("sso", "group-roles", "add", DEVELOPERS, ns, "king")
    assert bad_role.code != 0 and "role" in bad_role.stderr
    assert signs_in(ldap_registry, "grace", PASSWORDS["grace"])
    assert members(ldap_registry, ns)["grace"] == "maintainer"
    assert f"Removed group role {mapping['id']}" in cli.ok("sso", "group-roles", "remove",
                                                          str(mapping["id"]))
    assert signs_in(ldap_registry, "grace", PASSWORDS["grace"])
    assert "grace" not in members(ldap_registry, ns)
    user_cli = Cli(ldap_registry, tmp_path / "grace")
    assert user_cli.login("grace", PASSWORDS["grace"]).code == 0  # `moorage login` via LDAP
    denied = user_cli("sso", "group-roles", "list")
    assert denied.code != 0 and "administrators" in denied.stderr


def test_no_password_reaches_the_log(ldap_registry: MoorageServer) -> None:
    assert signs_in(ldap_registry, "bob", PASSWORDS["bob"])
    assert not signs_in(ldap_registry, "bob", "bobs-wrong-password-xyz")
    text = server_log(ldap_registry)
    for secret in (SEARCH_PASSWORD, *PASSWORDS.values(), "bobs-wrong-password-xyz"):
        assert secret not in text
    assert user_dn("bob")  # the directory's names may appear; its secrets may not
