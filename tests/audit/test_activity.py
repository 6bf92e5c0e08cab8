"""Pushes and pulls per day from the audit log: the console overview's chart, the API and
`moorage audit activity`."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import httpx

from tests.access.helpers import ADMIN, admin_push, bearer, token
from tests.audit.helpers import cli_env, cli_for, wait_for
from tests.support.server import MoorageServer
from tests.web.helpers import api, make_user


def test_pushes_and_pulls_are_counted_per_day(make_registry: Callable[..., MoorageServer],
                                              tmp_path: Path) -> None:
    server = make_registry("activity")
    admin_push(server, "act/app", "v1")
    admin_push(server, "act/app", "v2")
    headers = bearer(token(server, "repository:act/app:pull", ADMIN))
    for tag in ("v1", "v1", "v2"):
        assert httpx.get(f"{server.url}/v2/act/app/manifests/{tag}", headers={
            **headers, "accept": "application/vnd.oci.image.manifest.v1+json"}).status_code == 200
    wait_for(server, lambda es: len(es) >= 3, action="pull")

    found = api(server, "GET", "/audit/activity", params={"days": 3})
    assert found.status_code == 200, found.text
    days = found.json()["days"]
    today = datetime.fromtimestamp(time.time(), timezone.utc).strftime("%Y-%m-%d")
    assert len(days) == 3 and days[-1]["date"] == today
    assert (days[-1]["pushes"], days[-1]["pulls"]) == (2, 3)
    assert all(d["pushes"] == d["pulls"] == 0 for d in days[:-1])

    cli = cli_for(server, tmp_path)
    printed = json.loads(cli.ok("audit", "activity", "--days", "3", "--json",
                                env=cli_env(server)))
    assert printed["days"][-1] == days[-1]
    table = cli.ok("audit", "activity", "--days", "2", env=cli_env(server))
    assert table.split("\n")[0].split() == ["DAY", "PUSHES", "PULLS"] and today in table


def test_activity_is_for_administrators_and_bounded(make_registry: Callable[..., MoorageServer]
                                                    ) -> None:
    server = make_registry("activity-bounds")
    user = make_user(server, "viewer")
    assert api(server, "GET", "/audit/activity", auth=user).status_code == 403
    for days in ("0", "91", "-1", "x"):
        assert api(server, "GET", "/audit/activity", params={"days": days}).status_code == 422
