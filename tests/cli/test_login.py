"""`moorage login`/`logout`: credentials checked, a token stored safely, and taken back."""

from __future__ import annotations

import json
import socket
import stat

import httpx

from tests.cli.conftest import Cli
from tests.conftest import ADMIN_PASSWORD


def user_with(token: str, server_url: str) -> int:
    """The status /api/v1/user answers a stored token with: 200 live, 401 revoked."""
    return httpx.get(f"{server_url}/api/v1/user",
                     headers={"Authorization": f"Bearer {token}"}).status_code


def test_login_stores_a_token_not_the_password(cli: Cli) -> None:
    before = cli("namespace", "list")
    assert before.code == 2
    assert before.stderr == ("moorage: no server configured: run `moorage login URL` "
                             "or set MOORAGE_URL\n")

    wrong = cli.login(password="not-the-password")
    assert wrong.code == 1
    assert wrong.stderr == "moorage: invalid username or password\n"
    assert not cli.credentials.exists()

    done = cli.login()
    assert done.code == 0, done
    assert f"Logged in to {cli.server.url} as admin" in done.stdout
    assert stat.S_IMODE(cli.credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.credentials.parent.stat().st_mode) == 0o700
    first = json.loads(cli.credentials.read_text())
    assert first["url"] == cli.server.url and first["username"] == "admin"
    assert first["token"].startswith("mrg_p_")
    assert ADMIN_PASSWORD not in cli.credentials.read_text()
    me = json.loads(cli.ok("whoami", "--json"))
    assert me["username"] == "admin" and me["is_admin"] is True

    # Logging in again from this machine replaces its token: one machine, one live token.
    assert cli.login().code == 0
    second = json.loads(cli.credentials.read_text())
    assert second["token_id"] != first["token_id"]
    assert user_with(first["token"], cli.server.url) == 401
    tokens = {t["id"]: t for t in json.loads(cli.ok("token", "list", "--json"))}
    assert tokens[second["token_id"]]["name"] == f"cli-{socket.gethostname()}"
    assert tokens[second["token_id"]]["active"] is True

    # Logging out revokes the token on the server and forgets it here.
    out = cli("logout")
    assert out.code == 0 and "token revoked" in out.stdout
    assert not cli.credentials.exists()
    assert user_with(second["token"], cli.server.url) == 401
    assert cli("namespace", "list").code == 2
