"""Logs (issue 15 item 3): JSON lines, the access log, request ids from the client or made
here, carried into the response, the log lines and the audit entry; and no secret in a log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import httpx

from tests.access.helpers import ADMIN, admin_push, bearer, token
from tests.audit.helpers import wait_for
from tests.conftest import ADMIN_PASSWORD
from tests.support.server import MoorageServer
from tests.web.helpers import api


def json_lines(server: MoorageServer) -> list[dict]:
    found = []
    for line in server.log().splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                pass
    return found


def test_json_access_log_with_request_ids_and_no_secrets(
        make_registry: Callable[..., MoorageServer], tmp_path: Path) -> None:
    server = make_registry("logs", env={"MOORAGE_LOG_FORMAT": "json",
                                        "MOORAGE_ACCESS_LOG": "true"})
    # a request id of the client's is kept, returned, logged and audited
    created = api(server, "POST", "/namespaces", json={"name": "logged"},
                  headers={"X-Request-ID": "proxy-4711"})
    assert created.status_code == 201
    assert created.headers["x-request-id"] == "proxy-4711"
    # one made here when the client sends none, or one that is not usable
    made = httpx.get(f"{server.url}/v2/", auth=ADMIN)
    assert len(made.headers["x-request-id"]) == 32
    odd = httpx.get(f"{server.url}/v2/", headers={"X-Request-ID": "a b\tc"})
    assert odd.headers["x-request-id"] != "a b\tc"

    # secrets go everywhere a client may put them: Basic, Bearer, a token query, a body
    access_token = api(server, "POST", "/tokens", json={"name": "t"}).json()["secret"]
    pushed = admin_push(server, "logged/app", "v1")
    assert pushed.status_code == 201
    scoped = token(server, "repository:logged/app:pull", ADMIN)
    httpx.get(f"{server.url}/v2/logged/app/manifests/v1", headers=bearer(scoped))
    httpx.get(f"{server.url}/api/v1/user", headers={"Authorization": f"Bearer {access_token}"})
    httpx.get(f"{server.url}/auth/token", params={"service": "moorage", "refresh_token": "x" * 40,
                                                  "account": "admin"})
    httpx.post(f"{server.url}/auth/token", data={"grant_type": "password", "username": "admin",
                                                 "password": ADMIN_PASSWORD,
                                                 "service": "moorage"})

    entries = wait_for(server, lambda es: bool(es), timeout=60, action="namespace.create")
    assert entries[0]["detail"]["request_id"] == "proxy-4711"

    server.stop()  # flush every line
    lines = json_lines(server)
    access = [line for line in lines if line.get("logger") == "moorage.access"]
    mine = [line for line in access if line.get("request_id") == "proxy-4711"]
    assert len(mine) == 1
    assert {k: mine[0][k] for k in ("method", "path", "status", "actor")} == {
        "method": "POST", "path": "/api/v1/namespaces", "status": 201, "actor": "admin"}
    assert mine[0]["client"] == "127.0.0.1" and mine[0]["duration_ms"] >= 0
    assert mine[0]["bytes"] > 0
    assert any(line["path"] == "/v2/logged/app/manifests/v1" and line["status"] == 200
               for line in access)
    text = server.log()
    for secret in (ADMIN_PASSWORD, access_token, scoped, "x" * 40):
        assert secret not in text
    assert all(line["level"] in ("debug", "info", "warning", "error", "critical")
               for line in lines)


def test_the_access_log_is_off_by_default(make_registry: Callable[..., MoorageServer]) -> None:
    server = make_registry("quiet")
    httpx.get(f"{server.url}/v2/")
    server.stop()
    assert "moorage.access" not in server.log()


def test_request_ids_made_here_are_unique_across_workers(
        make_registry: Callable[..., MoorageServer]) -> None:
    """Ids come from each worker's own random generator (not uuid4, for speed): two workers
    must never hand out the same ids, which they would if a forked worker kept its parent's
    generator state."""
    server = make_registry("ids", args=["--workers", "2"])
    ids = []
    for _ in range(60):  # a new connection each time: both workers get some of them
        answer = httpx.get(f"{server.url}/v2/", headers={"Connection": "close"})
        ids.append(answer.headers["x-request-id"])
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_process_makes_other_request_ids() -> None:
    import os

    from moorage.ops.logs import new_request_id

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first ids, to the parent
        os.write(write, "".join(new_request_id() for _ in range(4)).encode())
        os._exit(0)
    os.close(write)
    child = b""
    while chunk := os.read(read, 4096):
        child += chunk
    os.close(read)
    os.waitpid(pid, 0)
    mine = "".join(new_request_id() for _ in range(4))
    assert len(child) == len(mine) == 128
    assert child.decode() != mine
