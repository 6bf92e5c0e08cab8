"""Network rules through /api/v1, including the guard against locking oneself out."""

from __future__ import annotations

from tests.support.server import MoorageServer
from tests.web.conftest import People
from tests.web.helpers import api, error, make_namespace


def test_lock_out_guard(secure_registry: MoorageServer) -> None:
    """Tests reach the server from 127.0.0.1: an allowlist without it would shut us out."""
    refused = api(secure_registry, "POST", "/network-rules",
                  json={"cidr": "10.0.0.0/8", "kind": "allow"})
    assert refused.status_code == 400
    code, message = error(refused)
    assert code == "INVALID" and "lock you out" in message and "127.0.0.1" in message
    assert all(r["cidr"] != "10.0.0.0/8" for r in api(secure_registry, "GET",
                                                      "/network-rules").json())

    created = api(secure_registry, "POST", "/network-rules",
                  json={"cidr": "127.0.0.1/32", "description": "this host"})
    assert created.status_code == 201, created.text
    rule = created.json()
    try:
        assert rule["kind"] == "allow" and rule["namespace"] is None
        assert rule["description"] == "this host"
        # With our own address allowed, a second network may join the allowlist.
        other = api(secure_registry, "POST", "/network-rules", json={"cidr": "10.0.0.0/8"})
        assert other.status_code == 201
        assert api(secure_registry, "DELETE",
                   f"/network-rules/{other.json()['id']}").status_code == 204
    finally:
        assert api(secure_registry, "DELETE", f"/network-rules/{rule['id']}").status_code == 204
    assert api(secure_registry, "DELETE", f"/network-rules/{rule['id']}").status_code == 404


def test_namespace_rules_belong_to_their_owners(secure_registry: MoorageServer,
                                                people: People) -> None:
    owner, other = people.alice, people.bob
    ns = make_namespace(secure_registry, auth=owner)
    created = api(secure_registry, "POST", "/network-rules", auth=owner,
                  json={"cidr": "192.168.0.0/16", "namespace": ns})
    assert created.status_code == 201, created.text
    rule = created.json()
    assert rule["namespace"] == ns
    duplicate = api(secure_registry, "POST", "/network-rules", auth=owner,
                    json={"cidr": "192.168.0.0/16", "namespace": ns})
    assert duplicate.status_code == 409 and error(duplicate)[0] == "CONFLICT"

    assert rule["id"] in [r["id"] for r in
                          api(secure_registry, "GET", "/network-rules", auth=owner).json()]
    assert rule["id"] not in [r["id"] for r in
                              api(secure_registry, "GET", "/network-rules", auth=other).json()]
    assert api(secure_registry, "DELETE", f"/network-rules/{rule['id']}",
               auth=other).status_code == 403
    instance_wide = api(secure_registry, "POST", "/network-rules", auth=owner,
                        json={"cidr": "127.0.0.1/32"})
    assert instance_wide.status_code == 403
    assert api(secure_registry, "DELETE", f"/network-rules/{rule['id']}",
               auth=owner).status_code == 204


def test_rule_requests_are_validated(secure_registry: MoorageServer) -> None:
    bad_cidr = api(secure_registry, "POST", "/network-rules", json={"cidr": "not-a-network"})
    assert bad_cidr.status_code == 400 and "not a CIDR" in error(bad_cidr)[1]
    bad_kind = api(secure_registry, "POST", "/network-rules",
                   json={"cidr": "10.0.0.0/8", "kind": "deny"})
    assert bad_kind.status_code == 422
    trusted_ns = api(secure_registry, "POST", "/network-rules",
                     json={"cidr": "10.0.0.0/8", "kind": "trusted",
                           "namespace": make_namespace(secure_registry)})
    assert trusted_ns.status_code == 400 and "instance-wide" in error(trusted_ns)[1]
    bad_id = api(secure_registry, "DELETE", "/network-rules/abc")
    assert bad_id.status_code == 422 and error(bad_id)[0] == "INVALID"
