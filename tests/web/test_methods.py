"""Methods a route does not take: 405 with an `Allow` header listing the ones it does, on
/v2, /auth/token and /api/v1 alike; lowercase and unknown methods included (never a 500).

Sent over a plain socket: HTTP clients upper-case the method, and the point is what the
server does when one does not.
"""

from __future__ import annotations

import base64

import pytest

from tests.support.server import MoorageServer
from tests.web.helpers import ADMIN, api, raw_request

AUTH = "Authorization: Basic " + base64.b64encode(":".join(ADMIN).encode()).decode()


def _allow(answer_headers: dict[str, str]) -> set[str]:
    return {m.strip() for m in answer_headers["allow"].split(",")}


@pytest.mark.parametrize("method,path,allowed", [
    ("get", "/v2/", {"GET", "HEAD"}),
    ("POST", "/v2/", {"GET", "HEAD"}),
    ("put", "/v2/_catalog", {"GET"}),
    ("get", "/v2/team/app/manifests/latest", {"GET", "HEAD", "PUT", "DELETE"}),
    ("PATCH", "/v2/team/app/manifests/latest", {"GET", "HEAD", "PUT", "DELETE"}),
    ("head", "/v2/team/app/blobs/sha256:" + "0" * 64, {"GET", "HEAD", "DELETE"}),
    ("BREW", "/v2/team/app/blobs/uploads/", {"POST"}),
    ("post", "/v2/team/app/blobs/uploads/0123", {"GET", "PATCH", "PUT", "DELETE"}),
    ("POST", "/v2/team/app/tags/list", {"GET"}),
    ("delete", "/v2/team/app/referrers/sha256:" + "0" * 64, {"GET"}),
    ("PUT", "/auth/token", {"GET", "POST"}),
    ("get", "/auth/token", {"GET", "POST"}),
])
def test_registry_and_token_routes(secure_registry: MoorageServer, method: str, path: str,
                                   allowed: set[str]) -> None:
    answer = raw_request(secure_registry, f"{method} {path} HTTP/1.1\nHost: moorage\n{AUTH}\n")
    assert answer.status == 405, answer
    assert _allow(answer.headers) == allowed
    assert answer.json()["errors"][0]["code"] == "UNSUPPORTED"


@pytest.mark.parametrize("method,path,allowed", [
    ("get", "/info", {"GET"}),
    ("PUT", "/info", {"GET"}),
    ("OPTIONS", "/namespaces", {"GET", "POST"}),
    ("post", "/namespaces", {"GET", "POST"}),
    ("PUT", "/namespaces/team", {"GET", "PATCH", "DELETE"}),
    ("BREW", "/namespaces/team/members/alice", {"PUT", "DELETE"}),
    ("GET", "/network-rules/1", {"DELETE"}),
    ("PUT", "/users/alice", {"GET", "PATCH", "DELETE"}),
    # /tags is the repository's tag list, whatever the method: not a repository "app/tags"
    ("PATCH", "/repositories/team/app/tags", {"GET"}),
    ("DELETE", "/repositories/team/app/tags", {"GET"}),
    ("GET", "/repositories/team/app/tags/v1", {"DELETE"}),
    ("PUT", "/repositories/team/app", {"GET", "PATCH", "DELETE"}),
])
def test_management_routes(secure_registry: MoorageServer, method: str, path: str,
                           allowed: set[str]) -> None:
    answer = raw_request(secure_registry,
                         f"{method} /api/v1{path} HTTP/1.1\nHost: moorage\n{AUTH}\n")
    assert answer.status == 405, answer
    assert _allow(answer.headers) == allowed
    assert answer.json() == {"error": {"code": "UNSUPPORTED", "message": answer.json()["error"]
                                       ["message"]}}


def test_repositories_with_tags_in_their_names(secure_registry: MoorageServer) -> None:
    """`NAME/tags` and `NAME/tags/TAG` are the tag list and one tag, for every method; any
    other repository name, `tags` components included, is a repository."""
    from tests.web.helpers import make_namespace, push_image

    namespace = make_namespace(secure_registry)
    for repo in (f"{namespace}/tags/app/web", f"{namespace}/tags-of/app"):
        push_image(secure_registry, repo, "v1")
        shown = api(secure_registry, "GET", f"/repositories/{repo}")
        assert shown.status_code == 200 and shown.json()["name"] == repo
        assert [t["name"] for t in api(secure_registry, "GET",
                                       f"/repositories/{repo}/tags").json()] == ["v1"]
    patched = api(secure_registry, "PATCH", f"/repositories/{namespace}/tags-of/app",
                  json={"description": "kept apart"})
    assert patched.status_code == 200 and patched.json()["description"] == "kept apart"
    # `app/tags` on its own is app's tag list, so it cannot be patched or deleted as a
    # repository; the repository `.../app` is untouched.
    assert api(secure_registry, "DELETE", f"/repositories/{namespace}/tags-of/app/tags"
               ).status_code == 405
    assert api(secure_registry, "GET", f"/repositories/{namespace}/tags-of/app"
               ).status_code == 200
