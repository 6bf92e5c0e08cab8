"""Reading the audit log over the real API, as an administrator or a SIEM would."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.cli.conftest import Cli
from tests.conftest import ADMIN_PASSWORD
from tests.support.server import MoorageServer
from tests.web.helpers import ADMIN, api

Entries = list[dict[str, Any]]


def page(server: MoorageServer, auth: tuple[str, str] | None = ADMIN,
         **params: Any) -> httpx.Response:
    return api(server, "GET", "/audit", auth=auth,
               params={k: v for k, v in params.items() if v is not None})


def entries(server: MoorageServer, **filters: Any) -> Entries:
    """Every entry matching, newest first, following the `next` cursor."""
    found: Entries = []
    cursor = None
    while True:
        resp = page(server, **filters, limit=1000, before_id=cursor)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        found += body["entries"]
        cursor = body["next"]
        if cursor is None:
            return found


def wait_for(server: MoorageServer, check: Callable[[Entries], bool] = bool,
             timeout: float = 120.0, **filters: Any) -> Entries:
    """Entries are written a few hundred ms after the request they record (see
    moorage.audit.recorder); a reader waits for them rather than sleeping blindly. The
    timeout only bounds a hang: a loaded machine may take many seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = entries(server, **filters)
        if check(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def export(server: MoorageServer, **params: Any) -> list[str]:
    resp = api(server, "GET", "/audit/export", params=params)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/x-ndjson")
    lines = resp.text.splitlines()
    for line in lines:
        json.loads(line)
    return lines


def verify(server: MoorageServer) -> dict[str, Any]:
    resp = api(server, "GET", "/audit/verify")
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def cli_for(server: MoorageServer, tmp_path: Path) -> Cli:
    """The `moorage` command with a config folder of the test's own."""
    return Cli(server, tmp_path / "config")


def cli_env(server: MoorageServer) -> dict[str, str]:
    """The administrator's credentials, as `moorage` reads them from the environment."""
    return {"MOORAGE_URL": server.url, "MOORAGE_USERNAME": "admin",
            "MOORAGE_PASSWORD": ADMIN_PASSWORD}
