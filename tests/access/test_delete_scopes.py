"""Deletes through the token flow, the way each client asks for them; and `*` scopes.

Clients differ in what they ask /auth/token for before a DELETE:
- go-containerregistry (`crane delete`) asks for `repository:NAME:push,pull` and asks again
  only after a 401, with the scope of that 401's challenge added in front;
- oras-py asks for the scope of a challenge; holding a token already, it retries a 401 with
  the same token and fetches a new one only after a 403;
- skopeo asks for `pull,delete` (tests/clients).

Moorage grants `delete` to a token that asked for `push` when the caller holds the delete
right, so crane's first DELETE succeeds; and answers a token that lacks the action with 403
insufficient_scope and a challenge naming the missing action, which is what oras-py retries.
(A 401 there sent oras-py into a loop of the same token, and its DELETE failed.)
"""

from __future__ import annotations

import re

import httpx
import jwt

from tests.access.helpers import (ADMIN, admin_push, bearer, error_code, error_message, token,
                                  unique)
from tests.access.test_roles_and_networks import _user
from tests.support.server import MoorageServer

_PARAM_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _challenge(resp: httpx.Response) -> dict[str, str]:
    value = resp.headers["WWW-Authenticate"]
    assert value.startswith("Bearer "), value
    return {k: v.replace('\\"', '"') for k, v in _PARAM_RE.findall(value)}


def _crane_token(client: httpx.Client, challenge: dict[str, str], scopes: list[str],
                 creds: tuple[str, str]) -> str:
    """go-containerregistry's bearer refresh: the realm, its service, every scope it holds."""
    resp = client.get(challenge["realm"],
                      params=[("service", challenge["service"]), *(("scope", s) for s in scopes)],
                      auth=creds)
    assert resp.status_code == 200, resp.text
    return resp.json()["token"]


def crane_delete(server: MoorageServer, repo: str, reference: str,
                 creds: tuple[str, str]) -> tuple[httpx.Response, list[str]]:
    """The HTTP sequence of `crane delete` (remote.Delete in go-containerregistry): ping,
    a token for push,pull, the DELETE, and on a 401 one more token with the challenge's scope
    put first, then the DELETE again. Returns the last answer and what was sent."""
    sent: list[str] = []
    with httpx.Client(base_url=server.url) as client:
        ping = client.get("/v2/")
        sent.append(f"GET /v2/ -> {ping.status_code}")
        assert ping.status_code == 401
        challenge = _challenge(ping)
        scopes = [f"repository:{repo}:push,pull"]
        bearer_token = _crane_token(client, challenge, scopes, creds)
        sent.append(f"token {' '.join(scopes)}")
        path = f"/v2/{repo}/manifests/{reference}"
        resp = client.delete(path, headers=bearer(bearer_token))
        sent.append(f"DELETE -> {resp.status_code}")
        if resp.status_code == 401:
            wanted = _challenge(resp).get("scope")
            if wanted and wanted not in scopes:
                scopes.insert(0, wanted)
            bearer_token = _crane_token(client, challenge, scopes, creds)
            sent.append(f"token {' '.join(scopes)}")
            resp = client.delete(path, headers=bearer(bearer_token))
            sent.append(f"DELETE -> {resp.status_code}")
    return resp, sent


def _digest_of(server: MoorageServer, repo: str, tag: str) -> str:
    resp = httpx.head(f"{server.url}/v2/{repo}/manifests/{tag}",
                      headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}, auth=ADMIN)
    assert resp.status_code == 200, resp.text
    return resp.headers["docker-content-digest"]


def _access(value: str) -> list[dict[str, object]]:
    return jwt.decode(value, options={"verify_signature": False})["access"]


def test_crane_delete_by_a_maintainer_succeeds(secure_registry: MoorageServer) -> None:
    ns = unique("crane")
    repo = f"{ns}/app"
    admin_push(secure_registry, repo)
    digest = _digest_of(secure_registry, repo, "v1")
    maintainer = _user(secure_registry, ns, "maintainer")

    resp, sent = crane_delete(secure_registry, repo, digest, maintainer)
    assert resp.status_code == 202, (sent, resp.text)
    # The token crane asked for carries delete already: one DELETE, no second round trip.
    assert sent == ["GET /v2/ -> 401", f"token repository:{repo}:push,pull", "DELETE -> 202"]
    gone = httpx.get(f"{secure_registry.url}/v2/{repo}/manifests/{digest}", auth=ADMIN)
    assert gone.status_code == 404


def test_crane_delete_of_a_tag_by_a_maintainer_succeeds(secure_registry: MoorageServer) -> None:
    ns = unique("cranetag")
    repo = f"{ns}/app"
    admin_push(secure_registry, repo)
    resp, sent = crane_delete(secure_registry, repo, "v1", _user(secure_registry, ns, "maintainer"))
    assert resp.status_code == 202, (sent, resp.text)
    assert httpx.get(f"{secure_registry.url}/v2/{repo}/tags/list",
                     auth=ADMIN).json()["tags"] == []


def test_crane_delete_by_a_developer_is_denied_with_the_reason(
        secure_registry: MoorageServer) -> None:
    """Without the delete right no token carries it, and the refusal says why."""
    ns = unique("cranedev")
    repo = f"{ns}/app"
    admin_push(secure_registry, repo)
    resp, sent = crane_delete(secure_registry, repo, "v1", _user(secure_registry, ns, "developer"))
    assert resp.status_code == 403, sent
    assert error_code(resp) == "DENIED"
    assert "delete needs maintainer" in error_message(resp)
    assert httpx.get(f"{secure_registry.url}/v2/{repo}/tags/list",
                     auth=ADMIN).json()["tags"] == ["v1"]


def test_push_grants_delete_only_to_those_who_hold_it(secure_registry: MoorageServer) -> None:
    ns = unique("pushdel")
    repo = f"{ns}/app"
    admin_push(secure_registry, repo)
    scope = f"repository:{repo}:push,pull"
    assert _access(token(secure_registry, scope, _user(secure_registry, ns, "maintainer"))) == [
        {"type": "repository", "name": repo, "actions": ["delete", "pull", "push"]}]
    assert _access(token(secure_registry, scope, _user(secure_registry, ns, "developer"))) == [
        {"type": "repository", "name": repo, "actions": ["pull", "push"]}]
    # A pull asks for nothing more than pull, whatever is held.
    assert _access(token(secure_registry, f"repository:{repo}:pull", ADMIN)) == [
        {"type": "repository", "name": repo, "actions": ["pull"]}]


def test_a_token_without_the_action_is_told_which_scope_to_ask_for(
        secure_registry: MoorageServer) -> None:
    """403 insufficient_scope (RFC 6750 3.1), the challenge naming the missing action; a
    token for that scope then deletes."""
    ns = unique("narrow")
    repo = f"{ns}/app"
    admin_push(secure_registry, repo)
    maintainer = _user(secure_registry, ns, "maintainer")
    pull_only = token(secure_registry, f"repository:{repo}:pull", maintainer)
    path = f"{secure_registry.url}/v2/{repo}/manifests/v1"
    refused = httpx.delete(path, headers=bearer(pull_only))
    assert refused.status_code == 403
    assert error_code(refused) == "DENIED"
    challenge = _challenge(refused)
    assert challenge["scope"] == f"repository:{repo}:delete"
    assert challenge["error"] == "insufficient_scope"
    assert challenge["realm"] == f"{secure_registry.url}/auth/token"
    fresh = token(secure_registry, challenge["scope"], maintainer)
    assert httpx.delete(path, headers=bearer(fresh)).status_code == 202


def test_a_star_scope_grants_every_action_held(secure_registry: MoorageServer) -> None:
    ns = unique("star")
    repo = f"{ns}/app"
    admin_push(secure_registry, repo)
    scope = f"repository:{repo}:*"
    for role, actions in [("guest", ["pull"]), ("developer", ["pull", "push"]),
                          ("maintainer", ["delete", "pull", "push"]),
                          ("owner", ["delete", "pull", "push"])]:
        granted = token(secure_registry, scope, _user(secure_registry, ns, role))
        assert _access(granted) == [{"type": "repository", "name": repo, "actions": actions}], role
    # And the star token works: a maintainer deletes with it.
    star = token(secure_registry, scope, _user(secure_registry, ns, "maintainer"))
    resp = httpx.delete(f"{secure_registry.url}/v2/{repo}/manifests/v1", headers=bearer(star))
    assert resp.status_code == 202, resp.text
