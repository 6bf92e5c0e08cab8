"""An administrator disables an account: from that moment it can neither log in (password,
access token, Basic on /v2 and /api/v1) nor refresh, and its bearer tokens stop pushing and
deleting; its refresh tokens end for good. Enabled again, it logs in as before."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.access.conftest import Secured
from tests.access.helpers import admin_push, api, bearer, push, token, unique
from tests.access.test_refresh_tokens import offline, refresh, refused
from tests.support.server import MoorageServer
from tests.web.helpers import api as web_api
from tests.web.helpers import grant, make_user


def _disable(secured: Secured, username: str, disabled: bool = True) -> httpx.Response:
    return api(secured.next(), "PATCH", f"/users/{username}", json={"disabled": disabled})


def test_a_disabled_account_cannot_log_in_refresh_or_push(secured: Secured) -> None:
    repo = unique("disabled") + "/app"
    admin_push(secured.servers[0], repo)
    user = make_user(secured.servers[0], "disabled")
    grant(secured.servers[0], repo.split("/")[0], user[0], "maintainer")
    refresh_token = offline(secured, *user)
    access = api(secured.next(), "POST", "/tokens", auth=user, json={"name": "ci"})
    assert access.status_code == 201, access.text
    held = token(secured.next(), f"repository:{repo}:pull,push,delete", user)

    resp = _disable(secured, user[0])
    assert resp.status_code == 200 and resp.json()["disabled"] is True, resp.text

    refused(refresh(secured, refresh_token), "revoked")
    for door in (secured.next().url + "/v2/", secured.next().url + "/api/v1/user",
                 secured.next().url + "/auth/token"):
        answer = httpx.get(door, auth=user)
        assert answer.status_code == 401 and "disabled" in answer.text, (door, answer.text)
    as_bearer = httpx.get(f"{secured.next().url}/api/v1/user",
                          headers=bearer(access.json()["secret"]))
    assert as_bearer.status_code == 401 and "disabled" in as_bearer.text, as_bearer.text
    pushed = push(secured.next(), repo, "after", bearer(held))
    assert pushed.status_code == 401, pushed.text
    # A pull keeps the bearer token's own few minutes (token_ttl_seconds), as after a revocation.
    assert httpx.get(f"{secured.next().url}/v2/{repo}/manifests/v1",
                     headers=bearer(held)).status_code == 200

    resp = _disable(secured, user[0], False)
    assert resp.status_code == 200 and resp.json()["disabled"] is False, resp.text
    assert httpx.get(f"{secured.next().url}/auth/token", auth=user).status_code == 200
    refused(refresh(secured, refresh_token), "revoked")  # its refresh tokens stay ended
    fresh = token(secured.next(), f"repository:{repo}:pull,push", user)
    assert push(secured.next(), repo, "again", bearer(fresh)).status_code == 201


def test_only_administrators_disable_and_never_the_last_one(
        make_registry: Callable[..., MoorageServer]) -> None:
    server = make_registry()  # its one administrator: admin
    user, other = make_user(server, "plain"), make_user(server, "other")
    resp = web_api(server, "PATCH", f"/users/{other[0]}", auth=user, json={"disabled": True})
    assert resp.status_code == 403, resp.text
    resp = web_api(server, "PATCH", "/users/admin", json={"disabled": True})
    assert resp.status_code == 400 and "last administrator" in resp.text, resp.text
    second = make_user(server, "second", admin=True)
    assert web_api(server, "PATCH", "/users/admin", auth=second,
                   json={"disabled": True}).json()["disabled"] is True
    resp = web_api(server, "PATCH", f"/users/{second[0]}", auth=second, json={"disabled": True})
    assert resp.status_code == 400 and "last administrator" in resp.text, resp.text
    # nor may the last enabled one be demoted or deleted
    assert web_api(server, "DELETE", f"/users/{second[0]}", auth=second).status_code == 400
    # A disabled administrator is not one the instance can count on: it may go.
    assert web_api(server, "PATCH", "/users/admin", auth=second,
                   json={"is_admin": False}).status_code == 200
    assert web_api(server, "DELETE", "/users/admin", auth=second).status_code == 204
