"""Repositories and tags through /api/v1, with images pushed through /v2 first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.secured import Secured
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


def _anonymous_pull(server: MoorageServer, repo: str) -> int:
    return httpx.get(f"{server.url}/v2/{repo}/manifests/v1",
                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}).status_code


def _visibility(server: MoorageServer, repo: str) -> tuple[str, bool]:
    shown = api(server, "GET", f"/repositories/{repo}")
    assert shown.status_code == 200, shown.text
    return shown.json()["visibility"], shown.json()["visibility_inherited"]


def test_a_repository_inherits_its_namespace_visibility_unless_it_sets_its_own(
        secured: Secured) -> None:
    server, other = secured.servers
    ns = make_namespace(server)
    own, follows = f"{ns}/own", f"{ns}/follows"
    push_image(server, own, "v1")
    push_image(server, follows, "v1")
    assert _visibility(server, follows) == ("private", True)
    assert api(server, "GET", "/repositories",
               params={"namespace": ns}).json()[0]["visibility_inherited"] is True

    changed = api(server, "PATCH", f"/repositories/{own}", json={"visibility": "public"})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["visibility"], changed.json()["visibility_inherited"]) == ("public", False)
    assert (_anonymous_pull(other, own), _anonymous_pull(other, follows)) == (200, 401)

    assert api(server, "PATCH", f"/namespaces/{ns}", json={"visibility": "public"}).status_code == 200
    assert (_anonymous_pull(other, own), _anonymous_pull(other, follows)) == (200, 200)
    assert _visibility(other, follows) == ("public", True)
    # Set on the repository itself, private stays private in a public namespace.
    assert api(server, "PATCH", f"/repositories/{follows}",
               json={"visibility": "private"}).status_code == 200
    assert _anonymous_pull(other, follows) == 401
    assert _visibility(other, follows) == ("private", False)

    assert api(server, "PATCH", f"/namespaces/{ns}", json={"visibility": "private"}).status_code == 200
    assert (_anonymous_pull(other, own), _anonymous_pull(other, follows)) == (200, 401)

    # Back to inheriting: it follows the (private) namespace at once.
    reset = api(server, "PATCH", f"/repositories/{own}", json={"visibility": "inherit"})
    assert reset.status_code == 200, reset.text
    assert (reset.json()["visibility"], reset.json()["visibility_inherited"]) == ("private", True)
    assert _anonymous_pull(other, own) == 401
    assert api(server, "PATCH", f"/namespaces/{ns}", json={"visibility": "public"}).status_code == 200
    assert _anonymous_pull(other, own) == 200

    bad = api(server, "PATCH", f"/repositories/{own}", json={"visibility": "secret"})
    assert bad.status_code == 422 and error(bad)[0] == "INVALID"


def test_repository_visibility_from_the_cli(secured: Secured, tmp_path: Path) -> None:
    server = secured.server
    ns = make_namespace(server)
    repo = f"{ns}/app"
    push_image(server, repo, "v1")
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "MOORAGE_URL": server.url,
           "MOORAGE_USERNAME": ADMIN[0], "MOORAGE_PASSWORD": ADMIN[1]}

    def moorage(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "moorage", *args], capture_output=True,
                                text=True, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        return result

    shown = moorage("repo", "show", repo)
    assert "private (from namespace)" in shown.stdout, shown.stdout
    public = json.loads(moorage("repo", "update", repo, "--public", "--json").stdout)
    assert (public["visibility"], public["visibility_inherited"]) == ("public", False)
    def row() -> list[str]:
        lines = moorage("repo", "list", "--namespace", ns).stdout.splitlines()
        assert lines[0].split()[:4] == ["NAME", "VISIBILITY", "TAGS", "INHERITED"], lines
        return next(line.split() for line in lines if line.startswith(repo + " "))

    assert row()[1:4] == ["public", "1", "no"]
    reset = json.loads(moorage("repo", "update", repo, "--inherit-visibility", "--json").stdout)
    assert (reset["visibility"], reset["visibility_inherited"]) == ("private", True)
    assert row()[1:4] == ["private", "1", "yes"]
    assert "private (from namespace)" in moorage("repo", "show", repo).stdout
    assert _anonymous_pull(server, repo) == 401
