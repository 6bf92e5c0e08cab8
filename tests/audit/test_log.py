"""The audit log of a real server: what gets recorded, by whom, from where; reading it.

Most tests share the session's secured server (tests.conftest.secure_registry), so its log
also holds what other test modules did: every query here filters on names made unique per
test. Tests that break, restart or re-edition a server start their own.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path
from typing import Any, Callable

import httpx

from moorage.audit import AuditStore
from moorage.db.metadata import open_engine, sqlite_url
from tests.access.helpers import bearer, token
from tests.audit.helpers import Entries, entries, export, page, verify, wait_for
from tests.clients.tools import copy_in, inspect
from tests.conftest import ADMIN_PASSWORD
from tests.support.images import busybox_image
from tests.support.server import MoorageServer
from tests.web.helpers import (ADMIN, USER_PASSWORD, api, error, make_namespace, make_user,
                               push_image, unique)

LOOPBACK = "127.0.0.1"


def one(found: Entries, **fields: Any) -> dict[str, Any]:
    """The single entry whose fields have these values."""
    matching = [e for e in found if all(e.get(k) == v for k, v in fields.items())]
    assert len(matching) == 1, (fields, found)
    return matching[0]


def test_skopeo_push_pull_and_delete(secure_registry: MoorageServer, tmp_path: Path) -> None:
    digest = busybox_image(tmp_path / "src", "v1")
    repo = unique("audit-skopeo/app")
    ref = f"docker://{secure_registry.host}/{repo}:v1"
    since = time.time()
    copy_in(f"oci:{tmp_path / 'src'}:v1", ref, "--dest-creds", f"admin:{ADMIN_PASSWORD}")
    inspect(ref, "--creds", f"admin:{ADMIN_PASSWORD}")
    pull_token = token(secure_registry, f"repository:{repo}:delete", ADMIN)
    resp = httpx.delete(f"{secure_registry.url}/v2/{repo}/manifests/{digest}",
                        headers=bearer(pull_token))
    assert resp.status_code == 202, resp.text

    found = wait_for(secure_registry, lambda es: {"push", "pull", "delete"} <=
                     {e["action"] for e in es}, repository=repo)
    for action in ("push", "pull", "delete"):
        entry = [e for e in found if e["action"] == action][0]
        assert entry["actor"] == "admin" and entry["address"] == LOOPBACK, entry
        assert entry["result"] == "success"
        assert entry["repository"] == repo
        assert entry["detail"]["digest"] == digest
    push = one(found, action="push")
    assert push["target"] == f"{repo}:v1@{digest}" and push["detail"]["tag"] == "v1"
    assert not [e for e in found if e["action"].startswith("blob.")], "blob events are noise"
    # skopeo fetched its bearer tokens with the password: logins, from this address
    logins = entries(secure_registry, action="login", actor="admin", result="success",
                     since=str(since))
    assert logins and all(e["address"] == LOOPBACK for e in logins)


def test_failed_logins_everywhere(secure_registry: MoorageServer) -> None:
    """The token endpoint, Basic credentials on /v2, and the management API. (The accounts
    exist: an unknown username is recorded as a pseudonym, tests/access/test_login_throttle.)"""
    guess = f"guessed-{unique('')}"
    mallory = make_user(secure_registry, "mallory")[0]
    resp = httpx.get(f"{secure_registry.url}/auth/token", auth=(mallory, guess),
                     params={"service": "moorage", "scope": "repository:x/y:pull"})
    assert resp.status_code == 401
    eve = make_user(secure_registry, "eve")[0]
    assert httpx.get(f"{secure_registry.url}/v2/x/y/tags/list",
                     auth=(eve, guess)).status_code == 401
    trudy = make_user(secure_registry, "trudy")[0]
    assert api(secure_registry, "GET", "/user", auth=(trudy, guess)).status_code == 401

    for actor, target in ((mallory, "moorage"), (eve, "moorage"), (trudy, "api")):
        [entry] = wait_for(secure_registry, actor=actor)
        assert (entry["action"], entry["result"], entry["address"], entry["target"]) == \
            ("login", "failure", LOOPBACK, target), entry
        assert guess not in json.dumps(entry)


def test_management_changes(secure_registry: MoorageServer) -> None:
    namespace = make_namespace(secure_registry, prefix="audit-mgmt")
    user, password = make_user(secure_registry, "audit-user")
    resp = api(secure_registry, "PATCH", f"/users/{user}",
               json={"password": "a-new-password-never-logged"})
    assert resp.status_code == 200, resp.text
    refused = api(secure_registry, "DELETE", f"/namespaces/{namespace}",
                  auth=(user, "a-new-password-never-logged"))
    assert refused.status_code == 403
    anonymous = api(secure_registry, "POST", "/namespaces", auth=None,
                    json={"name": unique("audit-anon")})
    assert anonymous.status_code == 401

    created = one(wait_for(secure_registry, action="namespace.create", actor="admin"),
                  target=f"namespaces/{namespace}")
    assert (created["result"], created["address"]) == ("success", LOOPBACK)
    assert created["detail"]["status"] == 201 and created["detail"]["values"]["name"] == namespace

    changed = one(entries(secure_registry, action="user.update"), target=f"users/{user}")
    assert changed["actor"] == "admin" and changed["result"] == "success"
    assert changed["detail"]["fields"] == ["password"], "which fields changed, not their values"
    assert "values" not in changed["detail"]
    made = one(entries(secure_registry, action="user.create"), target=f"users/{user}")
    assert made["detail"]["values"] == {"username": user, "is_admin": False}
    assert made["detail"]["fields"] == ["is_admin", "password", "username"]

    [denied] = entries(secure_registry, action="namespace.delete", actor=user)
    assert (denied["result"], denied["detail"]["status"]) == ("failure", 403)
    assert denied["target"] == f"namespaces/{namespace}"
    anon = [e for e in entries(secure_registry, action="namespace.create", actor="anonymous",
                               result="failure") if e["detail"]["status"] == 401]
    assert anon, "an anonymous attempt is recorded too"


def test_deleting_through_the_api_records_the_actor_on_the_core_event(
        secure_registry: MoorageServer) -> None:
    repo = f"{make_namespace(secure_registry, prefix='audit-del')}/app"
    push_image(secure_registry, repo, "v1")
    assert api(secure_registry, "DELETE", f"/repositories/{repo}").status_code == 204
    found = wait_for(secure_registry, lambda es: len(es) >= 3, repository=repo)
    assert one(found, action="repository.delete")["actor"] == "admin"
    core = one(found, action="delete")
    assert (core["actor"], core["address"]) == ("admin", LOOPBACK), core


def test_filters_and_pagination(secure_registry: MoorageServer) -> None:
    auditor, password = make_user(secure_registry, "auditor", admin=True)
    me = (auditor, password)
    before = time.time()
    names = [make_namespace(secure_registry, auth=me, prefix="audit-page") for _ in range(5)]
    api(secure_registry, "POST", "/namespaces", auth=me, json={"name": "Not A Valid Name"})
    repos = [f"{names[0]}/one", f"{names[0]}/two"]
    for repo in repos:
        push_image(secure_registry, repo, "v1", auth=me)
    after = time.time()

    mine = wait_for(secure_registry, lambda es: len(es) >= 8, actor=auditor)
    ids = [e["id"] for e in mine]
    assert ids == sorted(ids, reverse=True), "newest first"

    creates = entries(secure_registry, actor=auditor, action="namespace.create",
                      result="success")
    assert [e["target"] for e in creates] == [f"namespaces/{n}" for n in reversed(names)]
    failed = entries(secure_registry, actor=auditor, result="failure")
    assert [(e["action"], e["detail"]["status"]) for e in failed] == [("namespace.create", 400)]
    assert {e["action"] for e in entries(secure_registry, actor=auditor, action="namespace.*")} \
        == {"namespace.create"}
    assert [e["target"] for e in entries(secure_registry, repository=repos[1])] == \
        [f"{repos[1]}:v1@{e['detail']['digest']}" for e in
         entries(secure_registry, repository=repos[1])]
    assert len(entries(secure_registry, actor=auditor, since=str(before), until=str(after))) \
        == len(mine)
    assert entries(secure_registry, actor=auditor, until=str(before)) == []
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(before - 1))
    assert len(entries(secure_registry, actor=auditor, since=iso)) == len(mine)
    assert len(entries(secure_registry, actor=auditor, since="10m")) == len(mine)
    code, message = error(page(secure_registry, since="yesterday"))
    assert code == "INVALID" and "since" in message

    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        body = page(secure_registry, actor=auditor, action="namespace.create", limit=2,
                    before_id=cursor).json()
        assert len(body["entries"]) <= 2
        seen += [e["id"] for e in body["entries"]]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            break
        assert cursor == body["entries"][-1]["id"]
    assert pages == 3
    assert seen == [e["id"] for e in entries(secure_registry, actor=auditor,
                                             action="namespace.create")]


def test_export_is_json_lines_that_chain(secure_registry: MoorageServer) -> None:
    make_namespace(secure_registry, prefix="audit-export")
    wait_for(secure_registry, action="namespace.create")
    lines = export(secure_registry)
    rows = [json.loads(line) for line in lines]
    assert rows and [r["id"] for r in rows] == list(range(1, len(rows) + 1)), "oldest first"
    for previous, row in zip(rows, rows[1:]):
        assert row["prev_hash"] == previous["hash"]
    assert set(rows[0]) == {"id", "at", "timestamp", "actor", "address", "action", "target",
                            "repository", "result", "detail", "prev_hash", "hash"}

    later = [json.loads(line) for line in export(secure_registry, after_id=rows[-3]["id"])]
    assert [r["id"] for r in later][:2] == [rows[-2]["id"], rows[-1]["id"]]
    creates = [json.loads(line) for line in export(secure_registry, action="namespace.create",
                                                   result="success")]
    assert creates and {r["action"] for r in creates} == {"namespace.create"}
    assert len(export(secure_registry, limit=3)) == 3


def test_verify_on_an_untouched_log(secure_registry: MoorageServer) -> None:
    make_namespace(secure_registry, prefix="audit-verify")
    result = verify(secure_registry)
    assert result["ok"] is True and result["first_broken_id"] is None, result
    assert result["checked"] >= 1 and result["last_id"] == result["checked"]
    assert (result["complete"], result["dropped"], result["unwritable"],
            result["write_failures"], result["last_report"]) == (True, 0, 0, 0, None)
    status = api(secure_registry, "GET", "/audit/status").json()
    assert status["last_id"] >= result["last_id"] and status["complete"] is True, status


def test_only_administrators_read_the_log(secure_registry: MoorageServer) -> None:
    user = make_user(secure_registry, "audit-nosy")
    for path in ("/audit", "/audit/export", "/audit/verify", "/audit/status"):
        resp = api(secure_registry, "GET", path, auth=user)
        assert resp.status_code == 403, resp.text
        assert error(resp) == ("DENIED", "the audit log is open to administrators only")
        assert api(secure_registry, "GET", path, auth=None).status_code == 401


def test_no_secret_reaches_the_log(secure_registry: MoorageServer) -> None:
    """Passwords, bearer tokens, access tokens and robot secrets go through requests that are
    audited; none of them may be in an entry."""
    secrets = {ADMIN_PASSWORD, USER_PASSWORD}
    user, _ = make_user(secure_registry, "audit-secret")
    resp = api(secure_registry, "PATCH", f"/users/{user}",
               json={"password": "rotated-password-9f3a1c"})
    assert resp.status_code == 200
    secrets.add("rotated-password-9f3a1c")
    namespace = make_namespace(secure_registry, prefix="audit-secret")
    robot = api(secure_registry, "POST", f"/namespaces/{namespace}/robots",
                json={"name": "ci", "role": "developer"})
    assert robot.status_code == 201, robot.text
    secrets.add(robot.json()["secret"])
    pat = api(secure_registry, "POST", "/tokens", json={"name": "audit-secret"})
    assert pat.status_code == 201, pat.text
    secrets.add(pat.json()["secret"])
    assert api(secure_registry, "GET", "/user", auth=None,
               headers=bearer(pat.json()["secret"])).status_code == 200
    registry_token = token(secure_registry, f"repository:{namespace}/app:pull,push", ADMIN)
    secrets.add(registry_token)
    push_image(secure_registry, f"{namespace}/app", "v1")
    httpx.get(f"{secure_registry.url}/auth/token", auth=("admin", "wrong-" + ADMIN_PASSWORD))
    secrets.add("wrong-" + ADMIN_PASSWORD)
    secrets.add(base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode())

    wait_for(secure_registry, action="robot.create")
    text = "\n".join(export(secure_registry))
    assert "robot.create" in text and "token.create" in text
    for secret in secrets:
        assert secret not in text, f"a secret ({secret[:6]}…) is in the audit log"


def test_workers_write_one_chain_and_a_graceful_stop_loses_nothing(
        make_registry: Callable[..., MoorageServer]) -> None:
    """Two granian worker processes, each with its own buffer and flusher, append to one
    chain at the same time: it must stay linear. SIGTERM right after the last request must
    still leave every entry in the database (the lifespan shutdown flushes the buffers)."""
    server = make_registry("workers", env={"MOORAGE_AUTH": "off"}, args=["--workers", "2"])
    repo = "team/app"
    push_image(server, repo, "v1", auth=None)  # type: ignore[arg-type]
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}

    def pulls() -> None:
        with httpx.Client(base_url=server.url) as client:  # own connections: both workers serve
            for _ in range(50):
                assert client.get(f"/v2/{repo}/manifests/v1", headers=accept).status_code == 200

    threads = [threading.Thread(target=pulls) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    namespace = make_namespace(server, auth=None, prefix="audit-stop")  # type: ignore[arg-type]
    assert server.stop() == 0  # at once: the flushers have not run since these requests

    store = AuditStore(open_engine(sqlite_url(server.data_dir)))
    result = store.verify()
    assert result.ok, result
    assert result.checked == result.last_id
    rows = list(store.scan())
    assert sum(1 for r in rows if r.entry.action == "pull") == 300
    assert [r.entry.target for r in rows if r.entry.action == "namespace.create"] == \
        [f"namespaces/{namespace}"]
