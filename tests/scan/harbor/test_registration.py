"""Registering Harbor scanner adapters through a real server, by API and CLI: metadata
fetched and shown, non-conforming adapters refused, pings, the API key Moorage calls an
adapter with (kept out of answers and logs), administrators only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import httpx

from tests.conftest import ADMIN_PASSWORD
from tests.scan.harbor.conftest import API_KEY, AdapterProcess
from tests.support.server import MoorageServer
from tests.web.helpers import api, error, make_user, server_log, unique


def moorage(server: MoorageServer, *args: str,
            extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env.update({"MOORAGE_URL": server.url, "MOORAGE_USERNAME": "admin",
                "MOORAGE_PASSWORD": ADMIN_PASSWORD, "NO_COLOR": "1", "COLUMNS": "200",
                "XDG_CONFIG_HOME": str(server.data_dir.parent / "config"), **(extra_env or {})})
    return subprocess.run([sys.executable, "-m", "moorage", *args], capture_output=True,
                          text=True, env=env, timeout=600, stdin=subprocess.DEVNULL)


def test_register_with_an_api_key_by_cli_shows_the_scanner_and_never_the_key(
        server: MoorageServer, adapters: Callable[..., AdapterProcess]) -> None:
    adapter = adapters(api_key=API_KEY)
    name = unique("tiny")
    done = moorage(server, "scanner", "add", name, adapter.url, "--auth", "apikey",
                   extra_env={"MOORAGE_SCANNER_SECRET": API_KEY})
    assert done.returncode == 0, done.stderr
    assert "Tiny 0.1 (Tests)" in done.stdout
    listed = moorage(server, "scanner", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    mine = [s for s in json.loads(listed.stdout) if s["name"] == name]
    assert len(mine) == 1
    found = mine[0]
    assert found["scanner"] == {"name": "Tiny", "vendor": "Tests", "version": "0.1"}
    assert found["auth"] == "apikey" and found["has_secret"] is True
    assert found["health"] == "healthy" and found["enabled"] is True
    assert "application/vnd.security.vulnerability.report; version=1.1" in \
        found["produces_mime_types"]
    table = moorage(server, "scanner", "list")
    assert name in table.stdout and "Tiny 0.1" in table.stdout and "healthy" in table.stdout
    # the key went to the adapter, and comes back out of nothing
    shown = api(server, "GET", f"/scanners/{name}")
    assert shown.status_code == 200
    for text in (shown.text, listed.stdout, table.stdout, server_log(server)):
        assert API_KEY not in text
    # ping with the stored key
    pinged = moorage(server, "scanner", "ping", name)
    assert pinged.returncode == 0 and "healthy" in pinged.stdout
    removed = moorage(server, "scanner", "remove", name)
    assert removed.returncode == 0
    assert api(server, "GET", f"/scanners/{name}").status_code == 404


def test_a_wrong_api_key_is_refused_at_registration(
        server: MoorageServer, adapters: Callable[..., AdapterProcess]) -> None:
    adapter = adapters(api_key=API_KEY)
    resp = api(server, "POST", "/scanners", json={"name": unique("bad"), "url": adapter.url,
                                                  "auth": "apikey", "secret": "not-the-key"})
    assert resp.status_code == 400
    _, message = error(resp)
    assert "HTTP 401" in message and "not-the-key" not in resp.text
    resp = api(server, "POST", "/scanners", json={"name": unique("none"), "url": adapter.url})
    assert resp.status_code == 400 and "HTTP 401" in error(resp)[1]


def test_non_conforming_adapters_are_refused_and_not_stored(
        server: MoorageServer, adapters: Callable[..., AdapterProcess]) -> None:
    cases = {
        server.url: "HTTP",  # Moorage itself: no /api/v1/metadata of an adapter's
        adapters(mode="not-adapter").url: "is this a Harbor scanner adapter",
        adapters(mode="wrong-types").url: "cannot produce the v1.1 vulnerability report",
        "http://127.0.0.1:9": "request failed",  # nothing listens
    }
    for url, words in cases.items():
        name = unique("nc")
        resp = api(server, "POST", "/scanners", json={"name": name, "url": url})
        assert resp.status_code == 400, resp.text
        code, message = error(resp)
        assert words in message, message
        assert api(server, "GET", f"/scanners/{name}").status_code == 404
    for body in ({"name": "UPPER", "url": "http://127.0.0.1:1"},
                 {"name": unique("u"), "url": "ftp://example.com"},
                 {"name": unique("u"), "url": "http://user:pw@127.0.0.1:1"},
                 {"name": unique("u"), "url": "http://127.0.0.1:1", "auth": "basic",
                  "secret": "no-colon"},
                 {"name": unique("u"), "url": "http://127.0.0.1:1", "auth": "kerberos"}):
        resp = api(server, "POST", "/scanners", json=body)
        assert resp.status_code in (400, 422), resp.text
        error(resp)


def test_ping_records_health_and_patch_disables(
        server: MoorageServer, adapters: Callable[..., AdapterProcess]) -> None:
    adapter = adapters()
    name = unique("pinged")
    assert api(server, "POST", "/scanners", json={"name": name, "url": adapter.url}
               ).status_code == 201
    resp = api(server, "POST", f"/scanners/{name}/ping")
    assert resp.status_code == 200 and resp.json()["health"] == "healthy"
    adapter.stop()
    resp = api(server, "POST", f"/scanners/{name}/ping")
    assert resp.status_code == 200
    assert resp.json()["health"] == "unhealthy"
    assert "request failed" in resp.json()["health_detail"]
    failed = moorage(server, "scanner", "ping", name)
    assert failed.returncode == 1 and "unhealthy" in failed.stdout
    resp = api(server, "PATCH", f"/scanners/{name}", json={"enabled": False})
    assert resp.status_code == 200 and resp.json()["enabled"] is False
    assert api(server, "DELETE", f"/scanners/{name}").status_code == 204


def test_only_administrators_manage_adapters(
        server: MoorageServer, adapters: Callable[..., AdapterProcess]) -> None:
    user = make_user(server)
    for method, path, body in (("GET", "/scanners", None),
                               ("POST", "/scanners", {"name": unique("x"),
                                                      "url": adapters().url})):
        resp = api(server, method, path, auth=user, json=body)
        assert resp.status_code == 403, resp.text
    assert api(server, "GET", "/scanners", auth=None).status_code == 401


def test_the_scanners_api_is_in_the_openapi_document(server: MoorageServer) -> None:
    doc = httpx.get(f"{server.url}/api/v1/openapi.json", timeout=120).json()
    assert {"/api/v1/scanners", "/api/v1/scanners/{name}",
            "/api/v1/scanners/{name}/ping"} <= set(doc["paths"])
    assert set(doc["paths"]["/api/v1/scanners/{name}"]) >= {"get", "patch", "delete"}


def test_the_api_key_is_sealed_at_rest_when_encryption_is_on(
        make_registry: Callable[..., MoorageServer],
        adapters: Callable[..., AdapterProcess]) -> None:
    server = make_registry("sealed", env={"MOORAGE_ENCRYPTION": "true"})
    adapter = adapters(api_key=API_KEY)
    resp = api(server, "POST", "/scanners", json={"name": "sealed", "url": adapter.url,
                                                  "auth": "apikey", "secret": API_KEY})
    assert resp.status_code == 201, resp.text
    # the stored key opens again: a ping reaches the adapter with it
    assert api(server, "POST", "/scanners/sealed/ping").json()["health"] == "healthy"
    server.stop()
    for path in server.data_dir.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path
