"""Robots and access tokens: their secrets are shown once, work, and can be taken back.

Secrets must never come back: not in listings, not in error bodies, not in the server log.
"""

from __future__ import annotations

import hashlib

import httpx

from tests.conftest import ADMIN_PASSWORD
from tests.support.server import MoorageServer
from tests.web.conftest import People
from tests.web.helpers import (api, error, make_namespace, make_user, push_image, server_log,
                               unique)


def test_robot_secret_is_shown_once_and_works(secure_registry: MoorageServer) -> None:
    ns = make_namespace(secure_registry)
    name = unique("ci")
    created = api(secure_registry, "POST", f"/namespaces/{ns}/robots",
                  json={"name": name, "role": "developer", "description": "builds",
                        "expires_in_days": 7})
    assert created.status_code == 201, created.text
    robot = created.json()
    secret = robot["secret"]
    assert len(secret) >= 32
    assert robot["username"] == f"robot${ns}+{name}" and robot["role"] == "developer"
    assert robot["expires_at"] is not None

    listed = api(secure_registry, "GET", f"/namespaces/{ns}/robots")
    assert listed.status_code == 200
    assert [r["name"] for r in listed.json()] == [name]
    assert "secret" not in listed.json()[0]
    assert secret not in listed.text
    assert hashlib.sha256(secret.encode()).hexdigest() not in listed.text
    assert secret not in api(secure_registry, "GET", f"/namespaces/{ns}/members").text

    # The robot logs in with its secret, holds its role, and may push into its namespace.
    credentials = (robot["username"], secret)
    me = api(secure_registry, "GET", "/user", auth=credentials).json()
    assert me == {"username": robot["username"], "kind": "robot", "is_admin": False,
                  "robot_namespace": ns, "roles": {ns: "developer"}, "source": "local"}
    push_image(secure_registry, f"{ns}/app", "v1", auth=credentials)
    # A developer robot may not manage its namespace.
    assert api(secure_registry, "DELETE", f"/namespaces/{ns}", auth=credentials).status_code == 403

    assert api(secure_registry, "DELETE", f"/namespaces/{ns}/robots/{name}").status_code == 204
    refused = api(secure_registry, "GET", "/user", auth=credentials)
    assert refused.status_code == 401
    assert api(secure_registry, "DELETE", f"/namespaces/{ns}/robots/{name}").status_code == 404
    assert secret not in server_log(secure_registry)


def test_robot_requests_are_validated(secure_registry: MoorageServer, people: People) -> None:
    ns = make_namespace(secure_registry)
    owner_role = api(secure_registry, "POST", f"/namespaces/{ns}/robots",
                     json={"name": "boss", "role": "owner"})
    assert owner_role.status_code == 422 and error(owner_role)[0] == "INVALID"
    bad_name = api(secure_registry, "POST", f"/namespaces/{ns}/robots", json={"name": "Bad!"})
    assert bad_name.status_code == 400
    missing = api(secure_registry, "POST", f"/namespaces/{unique('none')}/robots",
                  json={"name": "ci"})
    assert missing.status_code == 404
    outsider = people.carol
    denied = api(secure_registry, "POST", f"/namespaces/{ns}/robots", auth=outsider,
                 json={"name": "ci"})
    assert denied.status_code == 403


def test_access_token_is_shown_once_works_and_revokes(secure_registry: MoorageServer,
                                                     people: People) -> None:
    user = make_user(secure_registry, "tok")
    created = api(secure_registry, "POST", "/tokens", auth=user,
                  json={"name": "laptop", "expires_in_days": 30})
    assert created.status_code == 201, created.text
    token = created.json()["secret"]
    token_id = created.json()["id"]
    assert token.startswith("mrg_p_") and token_id in token

    listed = api(secure_registry, "GET", "/tokens", auth=user)
    assert [t["id"] for t in listed.json()] == [token_id]
    assert listed.json()[0]["active"] is True and listed.json()[0]["name"] == "laptop"
    assert "secret" not in listed.json()[0]
    assert token.split("_", 3)[3] not in listed.text
    # Other users see only their own tokens.
    other = people.carol
    assert token_id not in [t["id"] for t in
                            api(secure_registry, "GET", "/tokens", auth=other).json()]
    assert api(secure_registry, "DELETE", f"/tokens/{token_id}", auth=other).status_code == 404

    # As a Bearer credential and as a Basic password.
    bearer = {"Authorization": f"Bearer {token}"}
    me = httpx.get(f"{secure_registry.url}/api/v1/user", headers=bearer)
    assert me.status_code == 200 and me.json()["username"] == user[0]
    assert api(secure_registry, "GET", "/user", auth=(user[0], token)).status_code == 200
    used = api(secure_registry, "GET", "/tokens", auth=user).json()[0]
    assert used["last_used_at"] is not None

    assert api(secure_registry, "DELETE", f"/tokens/{token_id}", auth=user).status_code == 204
    refused = httpx.get(f"{secure_registry.url}/api/v1/user", headers=bearer)
    assert refused.status_code == 401
    assert "revoked" in error(refused)[1]
    after = api(secure_registry, "GET", "/tokens", auth=user).json()[0]
    assert after["active"] is False and after["revoked_at"] is not None

    invalid = api(secure_registry, "POST", "/tokens", auth=user,
                  json={"name": "x", "expires_in_days": -1})
    assert invalid.status_code == 422
    log = server_log(secure_registry)
    assert token not in log and ADMIN_PASSWORD not in log


def test_no_response_carries_a_hash(secure_registry: MoorageServer, people: People) -> None:
    user = people.alice
    bodies = [api(secure_registry, "GET", path).text
              for path in ("/users", f"/users/{user[0]}", "/user", "/tokens")]
    bodies.append(api(secure_registry, "GET", "/user", auth=user).text)
    for body in bodies:
        assert "argon2" not in body and "password" not in body and "hash" not in body
