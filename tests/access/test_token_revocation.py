"""A bearer token loses push and delete the moment its grounds go: the role, the account, or
the access or refresh token it was issued from. Pulls keep the token's lifetime (they are the
hot path and cost no lookup); pushes and deletes check the account at request time.
"""

from __future__ import annotations

import httpx

from tests.access.conftest import Secured
from tests.access.helpers import ADMIN, admin_push, api, bearer, error_code, push, token, unique
from tests.web.helpers import USER_PASSWORD as PASSWORD
from tests.web.helpers import grant, make_user


def member(secured: Secured, namespace: str, role: str) -> tuple[str, str]:
    user = make_user(secured.servers[0], "holder")
    grant(secured.servers[0], namespace, user[0], role)
    return user


def repository(secured: Secured) -> str:
    repo = unique("revoke") + "/app"
    admin_push(secured.servers[0], repo)
    return repo


def test_role_removal_ends_push_and_delete_but_not_pull(secured: Secured) -> None:
    repo = repository(secured)
    namespace = repo.split("/")[0]
    user = member(secured, namespace, "maintainer")
    held = token(secured.next(), f"repository:{repo}:pull,push,delete", user)
    assert push(secured.next(), repo, "before", bearer(held)).status_code == 201

    assert api(secured.next(), "DELETE",
               f"/namespaces/{namespace}/members/{user[0]}").status_code == 204
    refused = push(secured.next(), repo, "after", bearer(held))
    assert refused.status_code == 403, refused.text
    assert error_code(refused) == "DENIED" and "has no role" in refused.text
    deleted = httpx.delete(f"{secured.next().url}/v2/{repo}/manifests/before",
                           headers=bearer(held))
    assert deleted.status_code == 403, deleted.text
    # Pulls are not looked up again: the token's own lifetime (token_ttl_seconds) bounds them.
    assert httpx.get(f"{secured.next().url}/v2/{repo}/manifests/before",
                     headers=bearer(held)).status_code == 200


def test_deleted_user_cannot_push_with_an_earlier_token(secured: Secured) -> None:
    repo = repository(secured)
    user = member(secured, repo.split("/")[0], "developer")
    held = token(secured.next(), f"repository:{repo}:pull,push", user)
    assert api(secured.next(), "DELETE", f"/users/{user[0]}").status_code == 204
    refused = push(secured.next(), repo, "ghost", bearer(held))
    assert refused.status_code == 401, refused.text
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]

    # Nor does an account re-created under the same name inherit the old one's tokens.
    assert api(secured.next(), "POST", "/users",
               json={"username": user[0], "password": PASSWORD}).status_code == 201
    assert api(secured.next(), "PUT", f"/namespaces/{repo.split('/')[0]}/members/{user[0]}",
               json={"role": "developer"}).status_code == 200
    assert push(secured.next(), repo, "ghost", bearer(held)).status_code == 401
    fresh = token(secured.next(), f"repository:{repo}:pull,push", user)
    assert push(secured.next(), repo, "reborn", bearer(fresh)).status_code == 201


def test_revoked_access_token_ends_the_bearer_tokens_it_got(secured: Secured) -> None:
    repo = repository(secured)
    user = member(secured, repo.split("/")[0], "maintainer")
    created = api(secured.next(), "POST", "/tokens", auth=user, json={"name": "ci"})
    assert created.status_code == 201, created.text
    pat = created.json()["secret"]
    held = token(secured.next(), f"repository:{repo}:pull,push,delete", (user[0], pat))
    assert push(secured.next(), repo, "v1", bearer(held)).status_code == 201

    assert api(secured.next(), "DELETE", f"/tokens/{created.json()['id']}",
               auth=user).status_code == 204
    refused = push(secured.next(), repo, "v2", bearer(held))
    assert refused.status_code == 401 and "revoked" in refused.text
    assert httpx.delete(f"{secured.next().url}/v2/{repo}/manifests/v1",
                        headers=bearer(held)).status_code == 401
    # A bearer token from the password itself is unaffected.
    other = token(secured.next(), f"repository:{repo}:pull,push", user)
    assert push(secured.next(), repo, "v3", bearer(other)).status_code == 201


def test_revoked_refresh_token_ends_the_bearer_tokens_it_got(secured: Secured) -> None:
    repo = repository(secured)
    user = member(secured, repo.split("/")[0], "developer")
    offline = httpx.post(f"{secured.next().url}/auth/token", data={
        "grant_type": "password", "username": user[0], "password": user[1],
        "service": "moorage", "client_id": "tests", "access_type": "offline"})
    refresh_token = offline.json()["refresh_token"]
    refreshed = httpx.post(f"{secured.next().url}/auth/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh_token, "service": "moorage",
        "client_id": "tests", "scope": f"repository:{repo}:pull,push"})
    assert refreshed.status_code == 200, refreshed.text
    held = refreshed.json()["access_token"]
    assert push(secured.next(), repo, "v1", bearer(held)).status_code == 201

    assert api(secured.next(), "DELETE", f"/tokens/{refresh_token.split('_')[2]}",
               auth=user).status_code == 204
    refused = push(secured.next(), repo, "v2", bearer(held))
    assert refused.status_code == 401 and "revoked" in refused.text


def test_admin_tokens_are_checked_too(secured: Secured) -> None:
    """Administrators hold everything; a demoted one keeps nothing beyond their roles."""
    repo = repository(secured)
    name = unique("admin")
    assert api(secured.next(), "POST", "/users", json={
        "username": name, "password": PASSWORD, "is_admin": True}).status_code == 201
    held = token(secured.next(), f"repository:{repo}:pull,push,delete", (name, PASSWORD))
    assert push(secured.next(), repo, "by-admin", bearer(held)).status_code == 201
    assert api(secured.next(), "PATCH", f"/users/{name}", auth=ADMIN,
               json={"is_admin": False}).status_code == 200
    assert push(secured.next(), repo, "by-former-admin", bearer(held)).status_code == 403


def test_a_grant_every_process_kept_ends_at_the_role_removal(secured: Secured) -> None:
    """Pushes with one token on every process keep its grant there (web/auth.py, `granted`);
    removing the role is a commit, and the next push on each of them is refused."""
    repo = repository(secured)
    namespace = repo.split("/")[0]
    user = member(secured, namespace, "maintainer")
    held = token(secured.next(), f"repository:{repo}:pull,push", user)

    def upload_starts() -> set[int]:  # a new connection each: every worker and replica
        return {httpx.post(f"{secured.next().url}/v2/{repo}/blobs/uploads/",
                           headers=bearer(held)).status_code for _ in range(6)}

    assert upload_starts() == {202}
    assert api(secured.next(), "DELETE",
               f"/namespaces/{namespace}/members/{user[0]}").status_code == 204
    assert upload_starts() == {403}
