"""`moorage token list --refresh`: the refresh tokens clients keep, listed and revoked."""

from __future__ import annotations

import json

import httpx

from tests.cli.conftest import Cli
from tests.cli.test_commands import rows
from tests.web.helpers import USER_PASSWORD, make_user, unique


def test_refresh_tokens_are_listed_and_revoked(cli: Cli) -> None:
    user = make_user(cli.server, "refresher")
    client_id = unique("laptop-")
    offline = httpx.post(f"{cli.server.url}/auth/token", data={
        "grant_type": "password", "username": user[0], "password": USER_PASSWORD,
        "service": "moorage", "client_id": client_id, "access_type": "offline"})
    assert offline.status_code == 200, offline.text
    refresh_token = offline.json()["refresh_token"]
    token_id = refresh_token.split("_")[2]
    as_user = {"MOORAGE_URL": cli.server.url, "MOORAGE_USERNAME": user[0],
               "MOORAGE_PASSWORD": USER_PASSWORD}

    table = cli.ok("token", "list", "--refresh", env=as_user)
    assert rows(table)[token_id].split()[1:3] == [client_id, "active"]
    assert refresh_token not in table
    assert token_id not in cli.ok("token", "list", env=as_user), "access tokens only"
    [listed] = json.loads(cli.ok("token", "list", "--refresh", "--json", env=as_user))
    assert (listed["id"], listed["name"], listed["active"]) == (token_id, client_id, True)

    cli.ok("token", "revoke", token_id, env=as_user)
    [revoked] = json.loads(cli.ok("token", "list", "--refresh", "--json", env=as_user))
    assert revoked["active"] is False and revoked["revoked_at"]
    refused = httpx.post(f"{cli.server.url}/auth/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh_token, "service": "moorage"})
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_grant"


def test_administrators_list_anyones_refresh_tokens(admin_cli: Cli) -> None:
    user = make_user(admin_cli.server, "refreshed")
    offline = httpx.post(f"{admin_cli.server.url}/auth/token", data={
        "grant_type": "password", "username": user[0], "password": USER_PASSWORD,
        "service": "moorage", "client_id": "docker", "access_type": "offline"})
    token_id = offline.json()["refresh_token"].split("_")[2]
    listed = json.loads(admin_cli.ok("token", "list", "--refresh", "--user", user[0], "--json"))
    assert [t["id"] for t in listed] == [token_id]
