"""Refresh tokens end with the account they belong to, and their owner can see and revoke them.

Every token here comes from the OAuth2 password grant with `access_type=offline`, as Docker
and podman ask for it, and is then refreshed over HTTP, on any process of the instance.
"""

from __future__ import annotations

import time

import httpx

from tests.access.conftest import Secured
from tests.access.helpers import ADMIN, api, unique
from tests.web.helpers import make_user as _make_user


def make_user(secured: Secured) -> tuple[str, str]:
    return _make_user(secured.servers[0], "refresh")


def offline(secured: Secured, username: str, password: str, client_id: str = "tests") -> str:
    resp = httpx.post(f"{secured.next().url}/auth/token", data={
        "grant_type": "password", "username": username, "password": password,
        "service": "moorage", "client_id": client_id, "access_type": "offline"})
    assert resp.status_code == 200, resp.text
    return resp.json()["refresh_token"]


def refresh(secured: Secured, refresh_token: str) -> httpx.Response:
    return httpx.post(f"{secured.next().url}/auth/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh_token, "service": "moorage",
        "client_id": "tests"})


def refused(resp: httpx.Response, words: str) -> None:
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"] == "invalid_grant"
    assert words in resp.json()["error_description"]


def test_refresh_works_until_the_password_changes(secured: Secured) -> None:
    user = make_user(secured)
    token = offline(secured, *user)
    assert refresh(secured, token).status_code == 200
    changed = api(secured.next(), "PATCH", f"/users/{user[0]}",
                  json={"password": "a-brand-new-password"})
    assert changed.status_code == 200, changed.text
    refused(refresh(secured, token), "revoked")
    # The new password gets a new one, which works.
    assert refresh(secured, offline(secured, user[0], "a-brand-new-password")).status_code == 200


def test_refresh_ends_with_a_deleted_user(secured: Secured) -> None:
    user = make_user(secured)
    token = offline(secured, *user)
    assert api(secured.next(), "DELETE", f"/users/{user[0]}").status_code == 204
    refused(refresh(secured, token), "invalid refresh token")


def test_expired_robot_cannot_refresh(secured: Secured) -> None:
    namespace = unique("robots")
    assert api(secured.next(), "POST", "/namespaces", json={"name": namespace}).status_code == 201
    created = api(secured.next(), "POST", f"/namespaces/{namespace}/robots",
                  json={"name": "ci", "expires_in_days": 30})
    assert created.status_code == 201, created.text
    robot = (created.json()["username"], created.json()["secret"])
    token = offline(secured, *robot)
    assert refresh(secured, token).status_code == 200
    # Thirty days later (the expiry moved into the past, rather than waited for):
    secured.sql("UPDATE users SET expires_at = :t WHERE username = :u",
                t=time.time() - 1, u=robot[0])
    refused(refresh(secured, token), "expired")


def test_expired_user_cannot_use_a_personal_access_token_as_bearer(secured: Secured) -> None:
    user = make_user(secured)
    created = api(secured.next(), "POST", "/tokens", auth=user, json={"name": "laptop"})
    assert created.status_code == 201, created.text
    bearer = {"Authorization": f"Bearer {created.json()['secret']}"}
    assert api(secured.next(), "GET", "/user", auth=None, headers=bearer).status_code == 200
    secured.sql("UPDATE users SET expires_at = :t WHERE username = :u",
                t=time.time() - 1, u=user[0])
    resp = api(secured.next(), "GET", "/user", auth=None, headers=bearer)
    assert resp.status_code == 401, resp.text
    assert "expired" in resp.json()["error"]["message"]


def test_expired_or_revoked_access_token_is_refused_as_bearer(secured: Secured) -> None:
    user = make_user(secured)
    tokens = [api(secured.next(), "POST", "/tokens", auth=user, json={"name": name}).json()
              for name in ("to-expire", "to-revoke")]
    bearers = [{"Authorization": f"Bearer {t['secret']}"} for t in tokens]
    for bearer in bearers:
        assert api(secured.next(), "GET", "/user", auth=None, headers=bearer).status_code == 200
    secured.sql("UPDATE access_tokens SET expires_at = :t WHERE id = :i",
                t=time.time() - 1, i=tokens[0]["id"])
    assert api(secured.next(), "DELETE", f"/tokens/{tokens[1]['id']}", auth=user
               ).status_code == 204
    for bearer, words in zip(bearers, ("has expired", "was revoked")):
        resp = api(secured.next(), "GET", "/user", auth=None, headers=bearer)
        assert resp.status_code == 401 and words in resp.json()["error"]["message"], resp.text


def test_owner_lists_and_revokes_refresh_tokens(secured: Secured) -> None:
    user, other = make_user(secured), make_user(secured)
    token = offline(secured, *user, client_id="laptop-docker")
    token_id = token.split("_")[2]
    assert api(secured.next(), "POST", "/tokens", auth=user,
               json={"name": "a-personal-one"}).status_code == 201

    listed = api(secured.next(), "GET", "/tokens", auth=user, params={"kind": "refresh"})
    assert listed.status_code == 200, listed.text
    [entry] = listed.json()
    assert (entry["id"], entry["name"], entry["active"]) == (token_id, "laptop-docker", True)
    assert token not in listed.text and "secret" not in entry
    personal = api(secured.next(), "GET", "/tokens", auth=user).json()
    assert [t["name"] for t in personal] == ["a-personal-one"]

    # Nobody else sees or revokes it; an administrator may look.
    assert api(secured.next(), "GET", "/tokens", auth=other,
               params={"kind": "refresh", "username": user[0]}).status_code == 403
    assert api(secured.next(), "DELETE", f"/tokens/{token_id}", auth=other).status_code == 404
    seen = api(secured.next(), "GET", "/tokens", auth=ADMIN,
               params={"kind": "refresh", "username": user[0]})
    assert [t["id"] for t in seen.json()] == [token_id]

    assert api(secured.next(), "DELETE", f"/tokens/{token_id}", auth=user).status_code == 204
    refused(refresh(secured, token), "revoked")
    after = api(secured.next(), "GET", "/tokens", auth=user, params={"kind": "refresh"}).json()
    assert [(t["id"], t["active"]) for t in after] == [(token_id, False)]
    assert after[0]["revoked_at"] is not None


def test_a_robot_lists_its_own_refresh_tokens(secured: Secured) -> None:
    namespace = unique("robots")
    assert api(secured.next(), "POST", "/namespaces", json={"name": namespace}).status_code == 201
    created = api(secured.next(), "POST", f"/namespaces/{namespace}/robots", json={"name": "ci"})
    robot = (created.json()["username"], created.json()["secret"])
    token = offline(secured, *robot, client_id="ci-runner")
    listed = api(secured.next(), "GET", "/tokens", auth=robot, params={"kind": "refresh"})
    assert listed.status_code == 200, listed.text
    assert [t["id"] for t in listed.json()] == [token.split("_")[2]]


def test_token_kinds_are_in_the_openapi_document(secured: Secured) -> None:
    doc = httpx.get(f"{secured.url}/api/v1/openapi.json", timeout=60).json()
    params = {p["name"]: p for p in doc["paths"]["/api/v1/tokens"]["get"]["parameters"]}
    assert "kind" in params and "refresh" in str(params["kind"]["schema"])
