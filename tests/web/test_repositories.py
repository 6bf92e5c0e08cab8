"""Repositories and tags through /api/v1, with images pushed through /v2 first."""

from __future__ import annotations

import httpx

from tests.support.server import MoorageServer
from tests.web.conftest import People
from tests.web.helpers import ADMIN, api, error, grant, make_namespace, push_image, unique


def test_repository_life_cycle(secure_registry: MoorageServer) -> None:
    ns = make_namespace(secure_registry)
    repo = f"{ns}/group/app"  # names with several slashes
    first = push_image(secure_registry, repo, "v1")
    second = push_image(secure_registry, repo, "v2")
    push_image(secure_registry, f"{ns}/other", "latest")

    listed = api(secure_registry, "GET", "/repositories", params={"namespace": ns}).json()
    assert [r["name"] for r in listed] == [repo, f"{ns}/other"] or \
        sorted(r["name"] for r in listed) == sorted([repo, f"{ns}/other"])
    shown = api(secure_registry, "GET", f"/repositories/{repo}")
    assert shown.status_code == 200
    assert shown.json()["name"] == repo and shown.json()["namespace"] == ns
    assert shown.json()["tag_count"] == 2 and shown.json()["visibility"] == "private"

    tags = api(secure_registry, "GET", f"/repositories/{repo}/tags").json()
    assert [(t["name"], t["digest"]) for t in tags] == [("v1", first), ("v2", second)]
    assert all(t["updated_at"].endswith("Z") for t in tags)

    changed = api(secure_registry, "PATCH", f"/repositories/{repo}",
                  json={"visibility": "public", "description": "the app"})
    assert changed.status_code == 200
    assert changed.json()["visibility"] == "public" and changed.json()["description"] == "the app"
    # Public now: anyone may pull it without credentials.
    assert httpx.get(f"{secure_registry.url}/v2/{repo}/manifests/v2",
                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
                     ).status_code == 200

    untag = api(secure_registry, "DELETE", f"/repositories/{repo}/tags/v1")
    assert untag.status_code == 204
    assert [t["name"] for t in api(secure_registry, "GET", f"/repositories/{repo}/tags").json()] == ["v2"]
    assert httpx.get(f"{secure_registry.url}/v2/{repo}/tags/list",
                     auth=ADMIN).json()["tags"] == ["v2"]
    by_digest = api(secure_registry, "DELETE", f"/repositories/{repo}/tags/{second}")
    assert by_digest.status_code == 400 and error(by_digest)[0] == "TAG_INVALID"
    missing_tag = api(secure_registry, "DELETE", f"/repositories/{repo}/tags/v1")
    assert missing_tag.status_code == 404 and error(missing_tag)[0] == "MANIFEST_UNKNOWN"

    assert api(secure_registry, "DELETE", f"/repositories/{repo}").status_code == 204
    gone = api(secure_registry, "GET", f"/repositories/{repo}")
    assert gone.status_code == 404 and error(gone)[0] == "NOT_FOUND"
    assert api(secure_registry, "GET", f"/repositories/{repo}/tags").status_code == 404
    remaining = api(secure_registry, "GET", "/repositories", params={"namespace": ns}).json()
    assert [r["name"] for r in remaining] == [f"{ns}/other"]


def test_repository_permissions(secure_registry: MoorageServer, people: People) -> None:
    ns = make_namespace(secure_registry)
    repo = f"{ns}/app"
    push_image(secure_registry, repo, "v1")
    developer, outsider = people.alice, people.carol
    grant(secure_registry, ns, developer[0], "developer")

    assert repo in [r["name"] for r in api(secure_registry, "GET", "/repositories",
                                           auth=developer).json()]
    assert repo not in [r["name"] for r in api(secure_registry, "GET", "/repositories",
                                               auth=outsider).json()]
    assert api(secure_registry, "GET", f"/repositories/{repo}", auth=outsider).status_code == 404
    assert api(secure_registry, "GET", f"/repositories/{repo}/tags",
               auth=developer).status_code == 200

    untag = api(secure_registry, "DELETE", f"/repositories/{repo}/tags/v1", auth=developer)
    assert untag.status_code == 403
    assert "delete" in error(untag)[1] or "maintainer" in error(untag)[1]
    assert api(secure_registry, "DELETE", f"/repositories/{repo}",
               auth=developer).status_code == 403
    assert api(secure_registry, "PATCH", f"/repositories/{repo}", auth=developer,
               json={"visibility": "public"}).status_code == 403
    assert api(secure_registry, "GET", f"/repositories/{repo}").json()["tag_count"] == 1

    grant(secure_registry, ns, developer[0], "maintainer")
    assert api(secure_registry, "DELETE", f"/repositories/{repo}/tags/v1",
               auth=developer).status_code == 204


def test_unknown_repository(secure_registry: MoorageServer) -> None:
    name = f"{unique('none')}/app"
    for method, path in (("GET", f"/repositories/{name}"), ("GET", f"/repositories/{name}/tags"),
                         ("DELETE", f"/repositories/{name}/tags/v1"),
                         ("DELETE", f"/repositories/{name}")):
        resp = api(secure_registry, method, path)
        assert resp.status_code == 404, (method, path, resp.text)
        assert error(resp)[0] == "NOT_FOUND"
