"""Pull decisions and tags that workers keep (cache/decisions.py, db/rawreads.py) follow every
change at once, on any worker or replica.

Each test first pulls many times on fresh connections, so that every worker of the embedded
instance (two granian workers) or both replicas have made and kept the decision, then changes
what it rests on through the API, and requires the very next pulls, on every process, to
follow the change.
"""

from __future__ import annotations

import httpx

from tests.access.conftest import Secured, from_address, new_address
from tests.access.helpers import ADMIN, admin_push, api, unique

ROUNDS = 12  # new connections per check: each process answers some of them


def _pulls(secured: Secured, path: str, headers: dict[str, str] | None = None,
           auth: tuple[str, str] | None = None) -> list[httpx.Response]:
    found = []
    for _ in range(ROUNDS):
        server = secured.next()
        found.append(httpx.get(f"{server.url}{path}", auth=auth,
                               headers={"Connection": "close", **(headers or {})}))
    return found


def test_a_public_repository_made_private_is_refused_at_once(secured: Secured) -> None:
    ns = unique("pubcache")
    server = secured.next()
    assert api(server, "POST", "/namespaces",
               json={"name": ns, "visibility": "public"}).status_code == 201
    admin_push(server, f"{ns}/app")
    path = f"/v2/{ns}/app/manifests/v1"
    assert [r.status_code for r in _pulls(secured, path)] == [200] * ROUNDS
    assert api(secured.next(), "PATCH", f"/namespaces/{ns}",
               json={"visibility": "private"}).status_code == 200
    refused = _pulls(secured, path)
    assert [r.status_code for r in refused] == [401] * ROUNDS
    # and public again: pullable again, at once
    assert api(secured.next(), "PATCH", f"/namespaces/{ns}",
               json={"visibility": "public"}).status_code == 200
    assert [r.status_code for r in _pulls(secured, path)] == [200] * ROUNDS


def test_a_trusted_network_removed_stops_credential_free_pulls_at_once(secured: Secured) -> None:
    ns = unique("trustcache")
    server = secured.next()
    admin_push(server, f"{ns}/app")
    assert api(server, "PATCH", f"/namespaces/{ns}",
               json={"credential_free_pull": True}).status_code == 200
    address = new_address()
    rule = api(server, "POST", "/network-rules", json={"cidr": f"{address}/32", "kind": "trusted"})
    assert rule.status_code == 201, rule.text
    path = f"/v2/{ns}/app/manifests/v1"
    inside = from_address(address)
    try:
        assert [r.status_code for r in _pulls(secured, path, inside)] == [200] * ROUNDS
    finally:
        assert api(secured.next(), "DELETE",
                   f"/network-rules/{rule.json()['id']}").status_code in (200, 204)
    assert [r.status_code for r in _pulls(secured, path, inside)] == [401] * ROUNDS


def test_a_tag_moved_is_served_at_once_by_every_worker(secured: Secured) -> None:
    ns = unique("tagcache")
    server = secured.next()
    first = admin_push(server, f"{ns}/app", "moving").headers["docker-content-digest"]
    path = f"/v2/{ns}/app/manifests/moving"
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    seen = {r.headers.get("docker-content-digest") for r in _pulls(secured, path, accept, ADMIN)}
    assert seen == {first}
    second = admin_push(secured.next(), f"{ns}/app", "moving").headers["docker-content-digest"]
    assert second != first
    seen = {r.headers.get("docker-content-digest") for r in _pulls(secured, path, accept, ADMIN)}
    assert seen == {second}
