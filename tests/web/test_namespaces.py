"""Namespaces and members through /api/v1: the life cycle, visibility, and who may do what."""

from __future__ import annotations

import httpx
import jwt

from tests.support.secured import Secured
from tests.support.server import MoorageServer
from tests.web.conftest import People
from tests.web.helpers import (ADMIN, api, error, grant, make_namespace, make_user, push_image,
                               unique)


def test_namespace_life_cycle(secure_registry: MoorageServer) -> None:
    name = unique("life")
    created = api(secure_registry, "POST", "/namespaces",
                  json={"name": name, "description": "team images"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == name and body["visibility"] == "private"
    assert body["description"] == "team images" and body["credential_free_pull"] is False
    assert body["role"] == "owner"  # the creator owns it
    assert body["created_at"].endswith("Z")

    again = api(secure_registry, "POST", "/namespaces", json={"name": name})
    assert again.status_code == 409 and error(again)[0] == "CONFLICT"

    listed = api(secure_registry, "GET", "/namespaces")
    assert name in [n["name"] for n in listed.json()]

    changed = api(secure_registry, "PATCH", f"/namespaces/{name}",
                  json={"visibility": "public", "credential_free_pull": True})
    assert changed.status_code == 200
    assert changed.json()["visibility"] == "public"
    assert changed.json()["credential_free_pull"] is True
    assert changed.json()["description"] == "team images"  # absent fields stay
    assert api(secure_registry, "GET", f"/namespaces/{name}").json()["visibility"] == "public"

    deleted = api(secure_registry, "DELETE", f"/namespaces/{name}")
    assert deleted.status_code == 204 and deleted.content == b""
    gone = api(secure_registry, "GET", f"/namespaces/{name}")
    assert gone.status_code == 404 and error(gone)[0] == "NOT_FOUND"
    assert api(secure_registry, "DELETE", f"/namespaces/{name}").status_code == 404


def test_invalid_namespaces_are_refused(secure_registry: MoorageServer) -> None:
    bad_name = api(secure_registry, "POST", "/namespaces", json={"name": "Bad Name"})
    assert bad_name.status_code == 400
    code, message = error(bad_name)
    assert code == "INVALID" and "invalid namespace name" in message
    bad_visibility = api(secure_registry, "POST", "/namespaces",
                         json={"name": unique("v"), "visibility": "secret"})
    assert bad_visibility.status_code == 422
    code, message = error(bad_visibility)
    assert code == "INVALID" and "visibility" in message
    typo = api(secure_registry, "POST", "/namespaces", json={"name": unique("t"), "public": True})
    assert typo.status_code == 422 and "public" in error(typo)[1]


def test_private_namespaces_are_invisible_to_outsiders(secure_registry: MoorageServer,
                                                       people: People) -> None:
    private = make_namespace(secure_registry)
    public = make_namespace(secure_registry, visibility="public")
    outsider = people.carol
    seen = [n["name"] for n in api(secure_registry, "GET", "/namespaces", auth=outsider).json()]
    assert public in seen and private not in seen
    hidden = api(secure_registry, "GET", f"/namespaces/{private}", auth=outsider)
    assert hidden.status_code == 404  # not 403: its existence is not disclosed
    assert api(secure_registry, "GET", f"/namespaces/{public}", auth=outsider).json()["role"] is None


def test_users_create_namespaces_and_own_them(secure_registry: MoorageServer,
                                              people: People) -> None:
    alice = people.alice
    name = make_namespace(secure_registry, auth=alice)
    members = api(secure_registry, "GET", f"/namespaces/{name}/members", auth=alice).json()
    assert members == [{"username": alice[0], "kind": "user", "role": "owner"}]
    assert api(secure_registry, "DELETE", f"/namespaces/{name}", auth=alice).status_code == 204


def test_members_life_cycle(secure_registry: MoorageServer, people: People) -> None:
    name = make_namespace(secure_registry)
    bob = people.bob
    put = api(secure_registry, "PUT", f"/namespaces/{name}/members/{bob[0]}",
              json={"role": "developer"})
    assert put.status_code == 200
    assert put.json() == {"username": bob[0], "kind": "user", "role": "developer"}
    # Members see the namespace and its members; the role is idempotently changeable.
    assert api(secure_registry, "GET", f"/namespaces/{name}", auth=bob).json()["role"] == "developer"
    grant(secure_registry, name, bob[0], "maintainer")
    members = {m["username"]: m["role"] for m in
               api(secure_registry, "GET", f"/namespaces/{name}/members", auth=bob).json()}
    assert members[bob[0]] == "maintainer"

    removed = api(secure_registry, "DELETE", f"/namespaces/{name}/members/{bob[0]}")
    assert removed.status_code == 204
    again = api(secure_registry, "DELETE", f"/namespaces/{name}/members/{bob[0]}")
    assert again.status_code == 404
    assert api(secure_registry, "GET", f"/namespaces/{name}", auth=bob).status_code == 404

    bad_role = api(secure_registry, "PUT", f"/namespaces/{name}/members/{bob[0]}",
                   json={"role": "king"})
    assert bad_role.status_code == 422 and error(bad_role)[0] == "INVALID"
    nobody = api(secure_registry, "PUT", f"/namespaces/{name}/members/{unique('ghost')}",
                 json={"role": "guest"})
    assert nobody.status_code == 404


def test_role_refusals_name_the_role_needed(secure_registry: MoorageServer,
                                            people: People) -> None:
    name = make_namespace(secure_registry)
    developer, guest = people.alice, people.bob
    grant(secure_registry, name, developer[0], "developer")
    grant(secure_registry, name, guest[0], "guest")

    delete = api(secure_registry, "DELETE", f"/namespaces/{name}", auth=developer)
    assert delete.status_code == 403
    code, message = error(delete)
    assert code == "DENIED"
    assert f"user {developer[0]} has role developer in namespace {name}" in message
    assert "owner" in message

    add = api(secure_registry, "PUT", f"/namespaces/{name}/members/{developer[0]}",
              auth=guest, json={"role": "owner"})
    assert add.status_code == 403 and "role guest" in error(add)[1]
    patch = api(secure_registry, "PATCH", f"/namespaces/{name}", auth=developer,
                json={"visibility": "public"})
    assert patch.status_code == 403
    # Nothing changed.
    assert api(secure_registry, "GET", f"/namespaces/{name}").json()["visibility"] == "private"
    roles = {m["username"]: m["role"] for m in
             api(secure_registry, "GET", f"/namespaces/{name}/members").json()}
    assert roles[developer[0]] == "developer"


def test_anonymous_callers_must_authenticate(secure_registry: MoorageServer) -> None:
    resp = api(secure_registry, "GET", "/namespaces", auth=None)
    assert resp.status_code == 401
    assert error(resp) == ("UNAUTHORIZED", "authentication required")
    assert resp.headers["WWW-Authenticate"].startswith("Basic")
    wrong = api(secure_registry, "GET", "/namespaces", auth=("admin", "not-the-password"))
    assert wrong.status_code == 401 and error(wrong)[0] == "UNAUTHORIZED"
    assert ADMIN[1] not in wrong.text


# -- visibility: repositories inherit their namespace's, at once, in every process ---------


def _anonymous_pull(server: MoorageServer, repo: str) -> int:
    """A new connection each time, so that consecutive pulls land on different workers."""
    return httpx.get(f"{server.url}/v2/{repo}/manifests/v1",
                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}).status_code


def _anonymous_token_actions(server: MoorageServer, repo: str) -> list[str]:
    resp = httpx.get(f"{server.url}/auth/token",
                     params={"service": "moorage", "scope": f"repository:{repo}:pull"})
    assert resp.status_code == 200, resp.text
    claims = jwt.decode(resp.json()["token"], options={"verify_signature": False})
    return [a for entry in claims["access"] for a in entry["actions"]]


def test_making_a_namespace_private_hides_its_repositories_at_once(secured: Secured) -> None:
    server = secured.server
    ns = make_namespace(server, visibility="public")
    repos = [f"{ns}/app", f"{ns}/group/tool"]
    for repo in repos:
        push_image(server, repo, "v1")
    outsider = make_user(server, "outsider")
    for n in range(6):  # every process answers (and may cache) "public" first
        for repo in repos:
            assert _anonymous_pull(secured.servers[n % 2], repo) == 200
    assert set(repos) <= set(_catalog(server, outsider))

    changed = api(server, "PATCH", f"/namespaces/{ns}", json={"visibility": "private"})
    assert changed.status_code == 200, changed.text
    for n in range(6):
        for repo in repos:
            assert _anonymous_pull(secured.servers[n % 2], repo) == 401
            assert _anonymous_token_actions(secured.servers[n % 2], repo) == []
    assert not set(repos) & set(_catalog(secured.servers[-1], outsider))
    hidden = api(secured.servers[-1], "GET", f"/repositories/{repos[0]}", auth=outsider)
    assert hidden.status_code == 404
    shown = api(server, "GET", f"/repositories/{repos[0]}").json()
    assert (shown["visibility"], shown["visibility_inherited"]) == ("private", True)

    assert api(server, "PATCH", f"/namespaces/{ns}",
               json={"visibility": "public"}).status_code == 200
    for n in range(4):
        assert _anonymous_pull(secured.servers[n % 2], repos[1]) == 200


def _catalog(server: MoorageServer, auth: tuple[str, str]) -> list[str]:
    resp = httpx.get(f"{server.url}/v2/_catalog", auth=auth)
    assert resp.status_code == 200, resp.text
    return resp.json()["repositories"]  # type: ignore[no-any-return]
