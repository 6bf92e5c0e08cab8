"""Roles, robots, visibility, network allowlists and credential-free pull, over real HTTP."""

from __future__ import annotations

import httpx
import pytest

from tests.access.helpers import (ADMIN, admin_push, api, bearer, error_code, error_message,
                                  push, token, unique)
from tests.support.server import MoorageServer


def _user(server: MoorageServer, namespace: str, role: str | None) -> tuple[str, str]:
    """A fresh user, with `role` in `namespace` if given."""
    name, password = unique("user"), "password-" + unique("")
    resp = api(server, "POST", "/users", json={"username": name, "password": password})
    assert resp.status_code == 201, resp.text
    if role:
        resp = api(server, "PUT", f"/namespaces/{namespace}/members/{name}", json={"role": role})
        assert resp.status_code in (200, 204), resp.text
    return name, password


def test_guest_may_pull_but_not_push(secure_registry: MoorageServer) -> None:
    ns = unique("roles")
    admin_push(secure_registry, f"{ns}/app")
    guest = _user(secure_registry, ns, "guest")
    pull = token(secure_registry, f"repository:{ns}/app:pull,push", guest)
    assert httpx.get(f"{secure_registry.url}/v2/{ns}/app/manifests/v1",
                     headers=bearer(pull)).status_code == 200
    refused = push(secure_registry, f"{ns}/app", "v2", bearer(pull))
    assert refused.status_code == 403
    assert error_code(refused) == "DENIED"
    assert f"has role guest in namespace {ns}; push needs developer" in error_message(refused)


def test_token_never_grants_more_than_held(secure_registry: MoorageServer) -> None:
    import jwt

    ns = unique("scope")
    admin_push(secure_registry, f"{ns}/app")
    guest = _user(secure_registry, ns, "guest")
    granted = token(secure_registry, f"repository:{ns}/app:pull,push,delete", guest)
    access = jwt.decode(granted, options={"verify_signature": False})["access"]
    assert access == [{"type": "repository", "name": f"{ns}/app", "actions": ["pull"]}]


def test_developer_pushes_but_cannot_delete(secure_registry: MoorageServer) -> None:
    ns = unique("dev")
    admin_push(secure_registry, f"{ns}/app")
    dev = _user(secure_registry, ns, "developer")
    assert push(secure_registry, f"{ns}/app", "v2",
                bearer(token(secure_registry, f"repository:{ns}/app:pull,push", dev))).status_code == 201
    resp = httpx.delete(f"{secure_registry.url}/v2/{ns}/app/manifests/v2", auth=dev)
    assert resp.status_code == 403
    assert "delete needs maintainer" in error_message(resp)


def test_other_namespace_is_out_of_reach(secure_registry: MoorageServer) -> None:
    mine, theirs = unique("mine"), unique("theirs")
    admin_push(secure_registry, f"{theirs}/app")
    api(secure_registry, "POST", "/namespaces", json={"name": mine})
    user = _user(secure_registry, mine, "owner")
    resp = httpx.get(f"{secure_registry.url}/v2/{theirs}/app/manifests/v1", auth=user)
    assert resp.status_code == 403
    assert f"has no role in namespace {theirs}" in error_message(resp)
    listed = httpx.get(f"{secure_registry.url}/v2/_catalog", auth=user).json()["repositories"]
    assert f"{theirs}/app" not in listed


def test_robot_is_confined_to_its_namespace(secure_registry: MoorageServer) -> None:
    ns, other = unique("robo"), unique("other")
    admin_push(secure_registry, f"{ns}/app")
    admin_push(secure_registry, f"{other}/app")
    created = api(secure_registry, "POST", f"/namespaces/{ns}/robots",
                  json={"name": "ci", "role": "developer"})
    assert created.status_code == 201, created.text
    robot = (created.json()["username"], created.json()["secret"])
    assert robot[0] == f"robot${ns}+ci"
    assert push(secure_registry, f"{ns}/app", "ci",
                bearer(token(secure_registry, f"repository:{ns}/app:pull,push", robot))).status_code == 201
    resp = httpx.get(f"{secure_registry.url}/v2/{other}/app/manifests/v1", auth=robot)
    assert resp.status_code == 403
    assert "belongs to namespace" in error_message(resp)


def test_public_repository_is_pullable_anonymously_but_not_pushable(
        secure_registry: MoorageServer) -> None:
    ns = unique("pub")
    api(secure_registry, "POST", "/namespaces", json={"name": ns, "visibility": "public"})
    admin_push(secure_registry, f"{ns}/app")
    anon = token(secure_registry, f"repository:{ns}/app:pull,push")
    assert httpx.get(f"{secure_registry.url}/v2/{ns}/app/manifests/v1",
                     headers=bearer(anon)).status_code == 200
    assert httpx.get(f"{secure_registry.url}/v2/{ns}/app/manifests/v1").status_code == 200
    refused = push(secure_registry, f"{ns}/app", "v2", bearer(anon))
    assert refused.status_code == 401


def test_personal_access_token_works_until_revoked(secure_registry: MoorageServer) -> None:
    ns = unique("pat")
    admin_push(secure_registry, f"{ns}/app")
    created = api(secure_registry, "POST", "/tokens", json={"name": "laptop",
                                                            "expires_in_days": 1})
    assert created.status_code == 201, created.text
    pat = created.json()["secret"]
    assert httpx.get(f"{secure_registry.url}/v2/{ns}/app/tags/list",
                     auth=("admin", pat)).status_code == 200
    assert api(secure_registry, "DELETE", f"/tokens/{created.json()['id']}").status_code in (200, 204)
    revoked = httpx.get(f"{secure_registry.url}/v2/{ns}/app/tags/list", auth=("admin", pat))
    assert revoked.status_code == 401
    assert "revoked" in error_message(revoked)


@pytest.fixture
def proxied(make_registry):  # type: ignore[no-untyped-def]
    """An instance behind a (simulated) reverse proxy on loopback, so tests pick addresses."""
    return make_registry(env={"MOORAGE_TRUSTED_PROXIES": "127.0.0.1/32"})


def _from(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def test_instance_allowlist_refuses_other_addresses(proxied: MoorageServer) -> None:
    admin_push(proxied, "team/app")
    locked_out = api(proxied, "POST", "/network-rules",
                     json={"cidr": "10.0.0.0/8", "kind": "allow"}, headers=_from("192.0.2.1"))
    assert locked_out.status_code == 400 and "lock you out" in locked_out.text
    rule = api(proxied, "POST", "/network-rules", json={"cidr": "192.0.2.0/24", "kind": "allow"},
               headers=_from("192.0.2.1"))
    assert rule.status_code == 201, rule.text
    resp = httpx.get(f"{proxied.url}/v2/team/app/manifests/v1", auth=ADMIN,
                     headers=_from("203.0.113.9"))
    assert resp.status_code == 403
    assert error_code(resp) == "DENIED"
    assert "address 203.0.113.9 is not in this registry's allowlist" in error_message(resp)
    assert httpx.get(f"{proxied.url}/v2/team/app/manifests/v1", auth=ADMIN,
                     headers=_from("192.0.2.77")).status_code == 200


def test_namespace_allowlist(proxied: MoorageServer) -> None:
    admin_push(proxied, "secret/app")
    admin_push(proxied, "open/app")
    rule = api(proxied, "POST", "/network-rules",
               json={"cidr": "198.51.100.0/24", "kind": "allow", "namespace": "secret"})
    assert rule.status_code == 201, rule.text
    resp = httpx.get(f"{proxied.url}/v2/secret/app/manifests/v1", auth=ADMIN,
                     headers=_from("203.0.113.9"))
    assert resp.status_code == 403
    assert "not in the allowlist of namespace secret" in error_message(resp)
    assert httpx.get(f"{proxied.url}/v2/open/app/manifests/v1", auth=ADMIN,
                     headers=_from("203.0.113.9")).status_code == 200


def test_credential_free_pull_from_trusted_network(proxied: MoorageServer) -> None:
    admin_push(proxied, "cluster/app")
    admin_push(proxied, "closed/app")
    assert api(proxied, "PATCH", "/namespaces/cluster",
               json={"credential_free_pull": True}).status_code == 200
    rule = api(proxied, "POST", "/network-rules", json={"cidr": "10.20.0.0/16", "kind": "trusted"})
    assert rule.status_code == 201, rule.text
    inside = httpx.get(f"{proxied.url}/v2/cluster/app/manifests/v1", headers=_from("10.20.3.4"))
    assert inside.status_code == 200
    outside = httpx.get(f"{proxied.url}/v2/cluster/app/manifests/v1", headers=_from("10.21.3.4"))
    assert outside.status_code == 401
    not_opted_in = httpx.get(f"{proxied.url}/v2/closed/app/manifests/v1", headers=_from("10.20.3.4"))
    assert not_opted_in.status_code == 401
    cannot_push = push(proxied, "cluster/app", "v2", _from("10.20.3.4"))
    assert cannot_push.status_code == 401


def test_network_allowlists_need_basic_edition(make_registry) -> None:  # type: ignore[no-untyped-def]
    server = make_registry(env={"MOORAGE_EDITION": "personal"})
    resp = api(server, "POST", "/network-rules", json={"cidr": "127.0.0.0/8", "kind": "allow"})
    assert resp.status_code == 403
    assert "needs the basic edition" in resp.json()["error"]["message"]


def test_deleting_the_rule_that_admits_you_is_refused(proxied: MoorageServer) -> None:
    mine = api(proxied, "POST", "/network-rules", json={"cidr": "192.0.2.0/24", "kind": "allow"},
               headers=_from("192.0.2.1"))
    other = api(proxied, "POST", "/network-rules", json={"cidr": "10.0.0.0/8", "kind": "allow"},
                headers=_from("192.0.2.1"))
    assert mine.status_code == other.status_code == 201
    duplicate = api(proxied, "POST", "/network-rules", json={"cidr": "10.0.0.0/8", "kind": "allow"},
                    headers=_from("192.0.2.1"))
    assert duplicate.status_code == 409
    refused = api(proxied, "DELETE", f"/network-rules/{mine.json()['id']}",
                  headers=_from("192.0.2.1"))
    assert refused.status_code == 400 and "lock you out" in refused.text
    assert api(proxied, "DELETE", f"/network-rules/{other.json()['id']}",
               headers=_from("192.0.2.1")).status_code == 204
