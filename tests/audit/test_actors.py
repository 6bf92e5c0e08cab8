"""Who the audit log names: the rule for what a rule does, and one login per token issued."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.audit.helpers import entries, wait_for
from tests.clients.tools import skopeo
from tests.lifecycle.helpers import admin_client, make_image, push, run_gc, wait_job
from tests.support.images import busybox_image
from tests.support.server import MoorageServer
from tests.web.helpers import api, make_namespace, make_user, unique

_TOKEN_REQUEST = re.compile(r'msg="GET (\S+/auth/token\?[^"]*)"')


def test_retention_deletes_are_the_rules(secure_registry: MoorageServer) -> None:
    namespace = make_namespace(secure_registry, prefix="audit-retention")
    repo = f"{namespace}/app"
    images = {f"v{n}": make_image([os.urandom(500)], f"v{n}") for n in range(3)}
    with admin_client(secure_registry) as client:
        for tag, image in images.items():
            assert push(client, repo, tag, image).status_code == 201
    rule = api(secure_registry, "POST", "/retention",
               json={"scope": namespace, "tag_pattern": "v*", "keep_last": 1})
    assert rule.status_code == 201, rule.text
    rule_id = rule.json()["id"]
    job = api(secure_registry, "POST", f"/retention/{rule_id}/run", json={"dry_run": False})
    assert job.status_code == 202, job.text
    assert wait_job(secure_registry, job.json())["status"] == "succeeded"

    deletes = wait_for(secure_registry, lambda es: len(es) >= 2, repository=repo,
                       action="delete")
    assert sorted(e["detail"]["digest"] for e in deletes) == \
        sorted(images[t].digest for t in ("v0", "v1")), deletes
    for entry in deletes:
        assert entry["actor"] == f"retention:{rule_id}", entry
        assert entry["detail"]["rule"]["id"] == rule_id
        assert entry["detail"]["rule"]["namespace"] == namespace
    assert entries(secure_registry, actor=f"retention:{rule_id}") == deletes
    # What the requests of people do is still theirs, after a rule ran in the same process.
    with admin_client(secure_registry) as client:
        assert client.delete(f"/v2/{repo}/manifests/v2").status_code == 202
    last = wait_for(secure_registry, lambda es: len(es) >= 3, repository=repo,
                    action="delete")[0]
    assert last["actor"] == "admin" and "rule" not in last["detail"]


def test_one_login_row_per_token_skopeo_was_issued(secure_registry: MoorageServer,
                                                    tmp_path: Path) -> None:
    """skopeo asks for a token per set of scopes (a second one to mount from a repository it
    pushed to before): each token issued is one login, naming the scopes it granted.

    skopeo's blob cache is the machine's (root's), so it may also ask to mount from a
    repository another test pushed the same layers to: a token names only the scopes it
    grants, those in the user's namespace and, elsewhere, pulls of public repositories."""
    user, password = make_user(secure_registry, "skopeo-login")
    namespace = make_namespace(secure_registry, prefix="audit-logins")
    api(secure_registry, "PUT", f"/namespaces/{namespace}/members/{user}",
        json={"role": "developer"})
    busybox_image(tmp_path / "src", "v1")
    asked: list[str] = []
    for name in ("first", "second"):
        ran = skopeo("--debug", "copy", "--dest-tls-verify=false", "--dest-creds",
                     f"{user}:{password}", f"oci:{tmp_path / 'src'}:v1",
                     f"docker://{secure_registry.host}/{namespace}/{name}:v1")
        asked += _TOKEN_REQUEST.findall(ran.stderr)
    assert asked, "skopeo asked for tokens"

    logins = wait_for(secure_registry, lambda es: len(es) >= len(asked), actor=user,
                      action="login")
    assert len(logins) == len(asked), (asked, logins)

    def ours(scope: str) -> bool:
        return scope.split(":")[1].startswith(f"{namespace}/")

    granted = sorted(" ".join(filter(ours, e["detail"]["scope"].split())) for e in logins)
    wanted = sorted(" ".join(filter(ours, parse_qs(urlsplit(url).query)["scope"]))
                    for url in asked)
    assert granted == wanted
    # Outside the user's namespace a token may only grant what anyone may do: pull a public
    # repository (another test's, made public, whose layers skopeo's cache offers to mount).
    for scope in (s for e in logins for s in e["detail"]["scope"].split() if not ours(s)):
        kind, repository, actions = scope.split(":")
        assert (kind, actions) == ("repository", "pull"), scope
        anonymous = httpx.get(f"{secure_registry.url}/auth/token", params={
            "service": "moorage", "scope": f"repository:{repository}:pull"}).json()["token"]
        assert httpx.get(f"{secure_registry.url}/v2/{repository}/tags/list", headers={
            "Authorization": f"Bearer {anonymous}"}).status_code == 200, scope
    assert all(e["result"] == "success" and e["detail"]["grant"] == "password"
               for e in logins)


def test_a_refresh_is_a_token_issued_and_basic_on_v2_is_no_login(
        secure_registry: MoorageServer) -> None:
    user, password = make_user(secure_registry, "refresh-login")
    offline = httpx.post(f"{secure_registry.url}/auth/token", data={
        "grant_type": "password", "username": user, "password": password,
        "service": "moorage", "client_id": "tests", "access_type": "offline"})
    assert offline.status_code == 200, offline.text
    refreshed = httpx.post(f"{secure_registry.url}/auth/token", data={
        "grant_type": "refresh_token", "refresh_token": offline.json()["refresh_token"],
        "service": "moorage", "client_id": "tests", "scope": "repository:nowhere/app:pull"})
    assert refreshed.status_code == 200, refreshed.text
    for _ in range(3):  # Basic on /v2: every request checks the password; none is a login
        assert httpx.get(f"{secure_registry.url}/v2/", auth=(user, password)).status_code == 200
    wrong = httpx.get(f"{secure_registry.url}/v2/", auth=(user, unique("wrong")))
    assert wrong.status_code == 401

    found = wait_for(secure_registry, lambda es: len(es) >= 3, actor=user, action="login")
    assert [(e["result"], e["detail"].get("grant")) for e in found] == [
        ("failure", None), ("success", "refresh_token"), ("success", "password")]
    assert found[2]["detail"]["refresh_token"] is True
    assert "scope" in found[1]["detail"] and password not in str(found)


def test_a_gc_run_is_recorded_as_gcs(secure_registry: MoorageServer) -> None:
    """A real run is one row, actor "gc", with what it deleted; a dry run deletes nothing
    and writes none."""
    before = len(entries(secure_registry, actor="gc"))
    run_gc(secure_registry, dry_run=True)
    done = run_gc(secure_registry)
    found = wait_for(secure_registry, lambda es: len(es) > before, actor="gc")
    assert len(found) == before + 1, "one row for the real run, none for the dry run"
    entry = found[0]
    assert (entry["action"], entry["result"], entry["address"]) == ("gc", "success", "")
    for count in ("manifests_deleted", "links_deleted", "blobs_deleted", "bytes_freed"):
        assert entry["detail"][count] == done[count]
