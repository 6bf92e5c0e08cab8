"""Refused /v2 requests in the audit log: every refused write or delete, with who, what, why.

A 401 challenge to a request without credentials is the token protocol (every `docker
login` and every anonymous pull begins with one), not a refusal, and is not recorded; a
refusal of someone who presented credentials is, for pulls as for writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.access.helpers import bearer, token
from tests.audit.helpers import Entries, entries, wait_for
from tests.clients.tools import skopeo
from tests.support.images import busybox_image
from tests.support.server import MoorageServer
from tests.web.helpers import (ADMIN, OCI_MANIFEST, api, grant, make_namespace, make_user,
                               push_image)

LOOPBACK = "127.0.0.1"


def refusals(server: MoorageServer, repository: str, count: int = 1,
             **filters: Any) -> Entries:
    """The refusals recorded for a repository, once at least `count` are written."""
    return wait_for(server, lambda es: len(es) >= count, repository=repository,
                    result="failure", **filters)


def by_action(found: Entries, action: str) -> dict[str, Any]:
    matching = [e for e in found if e["action"] == action]
    assert matching, (action, [(e["action"], e["target"], e["detail"]) for e in found])
    return matching[0]


def test_a_guests_skopeo_push_and_http_delete_are_recorded(secure_registry: MoorageServer,
                                                           tmp_path: Path) -> None:
    namespace = make_namespace(secure_registry, prefix="refused-guest")
    repo = f"{namespace}/app"
    digest = push_image(secure_registry, repo, "v1")
    guest, password = make_user(secure_registry, "guest")
    grant(secure_registry, namespace, guest, "guest")

    busybox_image(tmp_path / "src", "v2")
    pushed = skopeo("copy", "--quiet", "--dest-tls-verify=false", "--dest-creds",
                    f"{guest}:{password}", f"oci:{tmp_path / 'src'}:v2",
                    f"docker://{secure_registry.host}/{repo}:v2", check=False)
    assert pushed.returncode != 0, "a guest may not push"
    put = httpx.put(f"{secure_registry.url}/v2/{repo}/manifests/v3", auth=(guest, password),
                    content=b"{}", headers={"Content-Type": OCI_MANIFEST})
    assert put.status_code == 403, put.text
    delete = httpx.delete(f"{secure_registry.url}/v2/{repo}/manifests/{digest}",
                          auth=(guest, password))
    assert delete.status_code == 403, delete.text

    found = refusals(secure_registry, repo, 3, actor=guest)
    upload = by_action(found, "blob.upload")
    assert upload["detail"]["status"] == 403 and upload["detail"]["code"] == "DENIED"
    assert "guest" in upload["detail"]["reason"]
    manifest = by_action(found, "manifest.push")
    assert (manifest["target"], manifest["detail"]["method"]) == (f"{repo}:v3", "PUT")
    deleted = by_action(found, "manifest.delete")
    assert deleted["target"] == f"{repo}@{digest}" and deleted["address"] == LOOPBACK
    assert deleted["detail"]["status"] == 403
    assert "role guest" in deleted["detail"]["reason"]


def test_a_robot_outside_its_namespace_is_recorded(secure_registry: MoorageServer,
                                                   tmp_path: Path) -> None:
    home = make_namespace(secure_registry, prefix="refused-robot")
    other = make_namespace(secure_registry, prefix="refused-other")
    repo = f"{other}/app"
    digest = push_image(secure_registry, repo, "v1")
    created = api(secure_registry, "POST", f"/namespaces/{home}/robots",
                  json={"name": "ci", "role": "maintainer"})
    assert created.status_code == 201, created.text
    robot = (created.json()["username"], created.json()["secret"])

    busybox_image(tmp_path / "src", "v2")
    pushed = skopeo("copy", "--quiet", "--dest-tls-verify=false", "--dest-creds",
                    f"{robot[0]}:{robot[1]}", f"oci:{tmp_path / 'src'}:v2",
                    f"docker://{secure_registry.host}/{repo}:v2", check=False)
    assert pushed.returncode != 0, "a robot may not push outside its namespace"
    upload = httpx.post(f"{secure_registry.url}/v2/{repo}/blobs/uploads/", auth=robot)
    assert upload.status_code == 403, upload.text
    robot_token = token(secure_registry, f"repository:{repo}:pull,push,delete", robot)
    delete = httpx.delete(f"{secure_registry.url}/v2/{repo}/manifests/{digest}",
                          headers=bearer(robot_token))
    assert delete.status_code == 403, delete.text
    pull = httpx.get(f"{secure_registry.url}/v2/{repo}/manifests/v1", auth=robot)
    assert pull.status_code == 403, "a refused pull of an authenticated caller"

    found = refusals(secure_registry, repo, 4, actor=robot[0])
    # skopeo's first request, whether the blob is there, is already refused
    assert by_action(found, "blob.pull")["detail"]["method"] == "HEAD"
    assert "belongs to namespace" in by_action(found, "blob.upload")["detail"]["reason"]
    deleted = by_action(found, "manifest.delete")
    assert deleted["target"] == f"{repo}@{digest}" and deleted["detail"]["status"] == 403
    pulled = by_action(found, "manifest.pull")
    assert pulled["target"] == f"{repo}:v1" and pulled["detail"]["method"] == "GET"


def test_a_token_without_the_action_is_recorded(secure_registry: MoorageServer) -> None:
    """The caller holds the delete right, but the token does not carry it. Whether that is
    answered 403 or a 401 challenge naming the scope, it is recorded: credentials were
    presented and the request was refused."""
    namespace = make_namespace(secure_registry, prefix="refused-scope")
    repo = f"{namespace}/app"
    digest = push_image(secure_registry, repo, "v1")
    pull_only = token(secure_registry, f"repository:{repo}:pull", ADMIN)
    resp = httpx.delete(f"{secure_registry.url}/v2/{repo}/manifests/{digest}",
                        headers=bearer(pull_only))
    assert resp.status_code in (401, 403), resp.text
    [entry] = refusals(secure_registry, repo, action="manifest.delete")
    assert entry["actor"] == "admin" and entry["detail"]["status"] == resp.status_code
    assert "delete" in entry["detail"]["reason"]
    assert entries(secure_registry, repository=repo, action="delete") == [], "not deleted"


def test_refused_uploads_and_blob_deletes_are_recorded(secure_registry: MoorageServer) -> None:
    namespace = make_namespace(secure_registry, prefix="refused-blob")
    repo = f"{namespace}/app"
    push_image(secure_registry, repo, "v1")
    guest, password = make_user(secure_registry, "guest")
    grant(secure_registry, namespace, guest, "guest")
    layer = "sha256:" + "a" * 64
    started = httpx.post(f"{secure_registry.url}/v2/{repo}/blobs/uploads/",
                         auth=(guest, password))
    assert started.status_code == 403
    removed = httpx.delete(f"{secure_registry.url}/v2/{repo}/blobs/{layer}",
                           auth=(guest, password))
    assert removed.status_code == 403
    found = refusals(secure_registry, repo, 2, actor=guest)
    assert by_action(found, "blob.upload")["detail"]["method"] == "POST"
    assert by_action(found, "blob.delete")["target"] == f"{repo}@{layer}"


def test_challenges_without_credentials_are_not_refusals(secure_registry: MoorageServer) -> None:
    """The docker login flow: an anonymous request, a 401 challenge, a token, the request
    again. Only the wrong password is recorded, once: as the failed login it is."""
    namespace = make_namespace(secure_registry, prefix="refused-anon")
    repo = f"{namespace}/app"
    push_image(secure_registry, repo, "v1")
    for method in ("GET", "HEAD"):
        resp = httpx.request(method, f"{secure_registry.url}/v2/{repo}/manifests/v1")
        assert resp.status_code == 401
    anonymous_put = httpx.put(f"{secure_registry.url}/v2/{repo}/manifests/v2", content=b"{}",
                              headers={"Content-Type": OCI_MANIFEST})
    assert anonymous_put.status_code == 401
    user, _ = make_user(secure_registry, "mistyped")
    wrong = httpx.get(f"{secure_registry.url}/v2/{repo}/manifests/v1", auth=(user, "nope"))
    assert wrong.status_code == 401
    expired = httpx.get(f"{secure_registry.url}/v2/{repo}/manifests/v1",
                        headers=bearer("not.a-token.at-all"))
    assert expired.status_code == 401
    # The refusal of the bad token is written after the anonymous requests before it.
    [entry] = refusals(secure_registry, repo)
    assert (entry["action"], entry["detail"]["status"]) == ("manifest.pull", 401)
    assert entry["actor"] == "anonymous" and entry["detail"]["reason"]
    [login] = wait_for(secure_registry, actor=user)
    assert (login["action"], login["result"]) == ("login", "failure")


def test_an_immutability_refusal_names_the_rule(secure_registry: MoorageServer) -> None:
    namespace = make_namespace(secure_registry, prefix="refused-immutable")
    repo = f"{namespace}/app"
    push_image(secure_registry, repo, "v1")
    rule = api(secure_registry, "POST", "/immutability",
               json={"scope": namespace, "tag_pattern": "v*"})
    assert rule.status_code == 201, rule.text
    resp = httpx.delete(f"{secure_registry.url}/v2/{repo}/manifests/v1", auth=ADMIN)
    assert resp.status_code == 403, resp.text
    [entry] = refusals(secure_registry, repo, action="manifest.delete")
    assert entry["actor"] == "admin" and entry["target"] == f"{repo}:v1"
    assert entry["detail"]["rule"] == f"immutability:{rule.json()['id']}"
