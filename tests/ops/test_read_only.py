"""Read-only mode (issue 15 item 6), through skopeo, the CLI and the API, on two workers:
a push is refused with 503 and the operator's message, pulls go on, changes through the API
are refused, and turning it off restores pushes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import httpx

from tests.audit.helpers import cli_env, cli_for
from tests.clients.tools import skopeo
from tests.conftest import ADMIN_PASSWORD
from tests.support.images import random_image
from tests.support.server import MoorageServer
from tests.web.helpers import ADMIN, api, error

CREDS = f"admin:{ADMIN_PASSWORD}"


def push(server: MoorageServer, layout: Path, tag: str, check: bool = True):  # type: ignore[no-untyped-def]
    return skopeo("copy", "--dest-tls-verify=false", "--dest-creds", CREDS,
                  f"oci:{layout}:{tag}", f"docker://{server.host}/upgrade/app:{tag}",
                  check=check)


def test_read_only_refuses_pushes_and_changes_and_serves_pulls(
        make_registry: Callable[..., MoorageServer], tmp_path: Path) -> None:
    server = make_registry("readonly", args=["--workers", "2"])
    layout = tmp_path / "layout"
    random_image(layout, "v1")
    random_image(layout, "v2")
    push(server, layout, "v1")
    cli, env = cli_for(server, tmp_path), cli_env(server)

    switched = json.loads(cli.ok("maintenance", "on", "-m", "upgrading to 0.2", "--json",
                                 env=env))
    assert switched["read_only"] is True and switched["by"] == "admin"

    refused = push(server, layout, "v2", check=False)
    assert refused.returncode != 0
    # skopeo shows the status of a 5xx, not its body; the body carries the message:
    assert "503 Service Unavailable" in refused.stderr, refused.stderr
    for _ in range(4):  # each worker answers the same (new connection each time)
        put = httpx.put(f"{server.url}/v2/upgrade/app/manifests/v3", auth=ADMIN, content=b"{}",
                        headers={"content-type": "application/vnd.oci.image.manifest.v1+json"})
        assert put.status_code == 503 and put.headers["retry-after"] == "60"
        assert put.json()["errors"][0]["code"] == "DENIED"
        assert "read-only mode: upgrading to 0.2" in put.json()["errors"][0]["message"]
    out = tmp_path / "pulled"
    skopeo("copy", "--src-tls-verify=false", "--src-creds", CREDS,
           f"docker://{server.host}/upgrade/app:v1", f"oci:{out}:v1")
    assert (out / "index.json").exists()

    created = api(server, "POST", "/namespaces", json={"name": "during-upgrade"})
    assert created.status_code == 503
    assert error(created)[0] == "READ_ONLY"
    assert "upgrading to 0.2" in error(created)[1]
    deleted = api(server, "DELETE", "/repositories/upgrade/app")
    assert deleted.status_code == 503
    assert api(server, "GET", "/repositories").status_code == 200
    status = cli.ok("maintenance", "status", env=env)
    assert "read-only" in status and "on" in status and "upgrading to 0.2" in status

    assert json.loads(cli.ok("maintenance", "off", "--json", env=env))["read_only"] is False
    push(server, layout, "v2")
    assert api(server, "POST", "/namespaces", json={"name": "after-upgrade"}).status_code == 201


def test_only_administrators_switch_read_only_mode(make_registry: Callable[..., MoorageServer]
                                                  ) -> None:
    from tests.web.helpers import make_user

    server = make_registry("readonly-admins")
    user = make_user(server, "operator")
    assert api(server, "GET", "/maintenance", auth=user).json()["read_only"] is False
    refused = api(server, "PUT", "/maintenance", auth=user, json={"read_only": True})
    assert refused.status_code == 403
    assert api(server, "PUT", "/maintenance", json={"read_only": True,
                                                   "message": "x" * 501}).status_code == 422
    assert api(server, "GET", "/maintenance", auth=None).status_code == 401


def test_every_worker_sees_each_switch_at_once(make_registry: Callable[..., MoorageServer],
                                               tmp_path: Path) -> None:
    """A worker keeps the mode it read until the next commit (no query for each write), and
    switching it is a commit: a write right after a switch is answered by the new mode on
    every worker, however often the old one was checked just before."""
    server = make_registry("readonly-kept", args=["--workers", "2"])
    cli, env = cli_for(server, tmp_path), cli_env(server)

    def upload_starts() -> set[int]:
        # a new connection each: both workers check (and keep) the mode
        return {httpx.post(f"{server.url}/v2/kept/app/blobs/uploads/", auth=ADMIN).status_code
                for _ in range(6)}

    for round_ in range(3):
        assert upload_starts() == {202}, f"round {round_}: refused while the mode is off"
        cli.ok("maintenance", "on", "-m", f"round {round_}", env=env)
        assert upload_starts() == {503}, f"round {round_}: accepted right after the switch"
        cli.ok("maintenance", "off", env=env)
