"""User accounts through /api/v1: administrators manage them, users manage themselves."""

from __future__ import annotations

from tests.support.server import MoorageServer
from tests.web.conftest import People
from tests.web.helpers import (ADMIN, USER_PASSWORD, api, error, grant, make_namespace,
                               make_user, unique)


def test_user_life_cycle(secure_registry: MoorageServer) -> None:
    name = unique("carol")
    created = api(secure_registry, "POST", "/users",
                  json={"username": name, "password": "carol-password"})
    assert created.status_code == 201
    assert set(created.json()) == {"username", "is_admin", "disabled", "source", "created_at"}
    assert created.json()["is_admin"] is False
    assert created.json()["source"] == "local"
    assert name in [u["username"] for u in api(secure_registry, "GET", "/users").json()]
    assert api(secure_registry, "GET", f"/users/{name}").json()["username"] == name
    duplicate = api(secure_registry, "POST", "/users",
                    json={"username": name, "password": "carol-password"})
    assert duplicate.status_code == 409

    promoted = api(secure_registry, "PATCH", f"/users/{name}", json={"is_admin": True})
    assert promoted.status_code == 200 and promoted.json()["is_admin"] is True
    assert api(secure_registry, "GET", "/users", auth=(name, "carol-password")).status_code == 200

    assert api(secure_registry, "DELETE", f"/users/{name}").status_code == 204
    assert api(secure_registry, "GET", f"/users/{name}").status_code == 404
    assert api(secure_registry, "GET", "/user", auth=(name, "carol-password")).status_code == 401


def test_only_administrators_manage_accounts(secure_registry: MoorageServer,
                                             people: People) -> None:
    user = people.bob
    create = api(secure_registry, "POST", "/users", auth=user,
                 json={"username": unique("x"), "password": "some-password"})
    assert create.status_code == 403
    assert error(create) == ("DENIED", "only instance administrators may do this")
    assert api(secure_registry, "GET", "/users", auth=user).status_code == 403
    assert api(secure_registry, "GET", "/users/admin", auth=user).status_code == 403
    assert api(secure_registry, "DELETE", "/users/admin", auth=user).status_code == 403
    promote = api(secure_registry, "PATCH", f"/users/{user[0]}", auth=user,
                  json={"is_admin": True})
    assert promote.status_code == 403
    assert api(secure_registry, "GET", "/user", auth=user).json()["is_admin"] is False


def test_users_change_their_own_password(secure_registry: MoorageServer) -> None:
    user = make_user(secure_registry, "pw")
    assert api(secure_registry, "GET", f"/users/{user[0]}", auth=user).status_code == 200
    short = api(secure_registry, "PATCH", f"/users/{user[0]}", auth=user,
                json={"password": "short"})
    assert short.status_code == 400 and "at least 8" in error(short)[1]
    changed = api(secure_registry, "PATCH", f"/users/{user[0]}", auth=user,
                  json={"password": "a-brand-new-password"})
    assert changed.status_code == 200
    assert api(secure_registry, "GET", "/user", auth=user).status_code == 401
    assert api(secure_registry, "GET", "/user",
               auth=(user[0], "a-brand-new-password")).status_code == 200


def test_whoami_lists_roles(secure_registry: MoorageServer, people: People) -> None:
    user = people.alice
    ns = make_namespace(secure_registry)
    grant(secure_registry, ns, user[0], "guest")
    me = api(secure_registry, "GET", "/user", auth=user).json()
    assert me["username"] == user[0] and me["kind"] == "user" and me["is_admin"] is False
    assert me["robot_namespace"] is None and me["roles"][ns] == "guest"
    assert api(secure_registry, "GET", "/user", auth=ADMIN).json()["is_admin"] is True


def test_validation_errors_never_echo_the_password(secure_registry: MoorageServer) -> None:
    resp = api(secure_registry, "POST", "/users",
               json={"username": ["not", "a", "string"], "password": USER_PASSWORD,
                     "is_admin": "perhaps"})
    assert resp.status_code == 422
    code, message = error(resp)
    assert code == "INVALID" and "username" in message and "is_admin" in message
    assert USER_PASSWORD not in resp.text
    not_json = api(secure_registry, "POST", "/users", content=b"{nope",
                   headers={"Content-Type": "application/json"})
    assert not_json.status_code == 422 and "not valid JSON" in error(not_json)[1]


def test_an_account_is_switched_only_to_a_configured_source(secure_registry: MoorageServer,
                                                             people: People) -> None:
    """No directory or provider is configured on this instance: an account stays local, and
    only an administrator may try to switch it."""
    user = make_user(secure_registry, "src")
    for source in ("ldap", "oidc"):
        refused = api(secure_registry, "PATCH", f"/users/{user[0]}", json={"source": source})
        assert refused.status_code == 400
        assert "is not configured on this instance" in error(refused)[1]
    unknown = api(secure_registry, "PATCH", f"/users/{user[0]}", json={"source": "kerberos"})
    assert unknown.status_code == 422 and "ldap" in error(unknown)[1]
    own = api(secure_registry, "PATCH", f"/users/{user[0]}", auth=user, json={"source": "ldap"})
    assert own.status_code == 403
    same = api(secure_registry, "PATCH", f"/users/{user[0]}", json={"source": "local"})
    assert same.status_code == 200 and same.json()["source"] == "local"
    assert api(secure_registry, "GET", "/user", auth=user).status_code == 200
