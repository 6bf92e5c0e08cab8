"""Every URL Moorage hands out (issue 15 item 4): the token realm, Location of uploads, blobs
and manifests, Link of paged listings and webhook payload URLs start with the public_url
setting when it is set, else name the host the client asked for; a garbage Host header is
neither echoed into a header nor a 500."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from moorage.events.service import base_url
from moorage.settings import Settings
from tests.conftest import ADMIN_PASSWORD, ROOMY, SECURED
from tests.support.server import MoorageServer

PUBLIC = "https://registry.example.com"
ADMIN = ("admin", ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def public(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    server = MoorageServer(tmp_path_factory.mktemp("public-url") / "data",
                           env={**SECURED, **ROOMY, "MOORAGE_PUBLIC_URL": PUBLIC + "/"}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    server = MoorageServer(tmp_path_factory.mktemp("host-url") / "data",
                           env={**SECURED, **ROOMY}).start()
    yield server
    server.stop()


def push(server: MoorageServer, repo: str, tags: list[str]) -> dict[str, str]:
    """Push a tiny image under each tag with Basic auth; the Location headers seen."""
    seen: dict[str, str] = {}
    with httpx.Client(base_url=server.url, auth=ADMIN, timeout=60) as http:
        started = http.post(f"/v2/{repo}/blobs/uploads/")
        assert started.status_code == 202, started.text
        seen["upload"] = started.headers["location"]
        config = b"{}"
        digest = "sha256:" + hashlib.sha256(config).hexdigest()
        # an absolute Location names the public address, which reaches this server
        where = started.headers["location"].removeprefix(PUBLIC)
        done = http.put(where, params={"digest": digest}, content=config)
        assert done.status_code == 201, done.text
        seen["blob"] = done.headers["location"]
        manifest = json.dumps({"schemaVersion": 2,
                               "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                          "digest": digest, "size": len(config)},
                               "layers": []}).encode()
        for tag in tags:
            put = http.put(f"/v2/{repo}/manifests/{tag}", content=manifest, headers={
                "Content-Type": "application/vnd.oci.image.manifest.v1+json"})
            assert put.status_code == 201, put.text
            seen["manifest"] = put.headers["location"]
    return seen


def test_public_url_starts_every_url_handed_out(public: MoorageServer) -> None:
    challenge = httpx.get(f"{public.url}/v2/", headers={"Host": "elsewhere.example:1"})
    assert f'realm="{PUBLIC}/auth/token"' in challenge.headers["www-authenticate"]
    seen = push(public, "urls/app", ["a", "b", "c"])
    assert seen["upload"].startswith(f"{PUBLIC}/v2/urls/app/blobs/uploads/")
    assert seen["blob"].startswith(f"{PUBLIC}/v2/urls/app/blobs/sha256:")
    assert seen["manifest"].startswith(f"{PUBLIC}/v2/urls/app/manifests/sha256:")
    tags = httpx.get(f"{public.url}/v2/urls/app/tags/list", params={"n": 1}, auth=ADMIN)
    assert tags.headers["link"] == f'<{PUBLIC}/v2/urls/app/tags/list?n=1&last=a>; rel="next"'
    catalog = httpx.get(f"{public.url}/v2/_catalog", params={"n": 0}, auth=ADMIN)
    assert catalog.status_code == 200
    repos = httpx.get(f"{public.url}/api/v1/repositories", params={"limit": 1}, auth=ADMIN)
    if "link" in repos.headers:  # one repository: no next page; push another to have one
        assert repos.headers["link"].startswith(f"<{PUBLIC}/api/v1/repositories?")
    push(public, "urls/other", ["x"])
    repos = httpx.get(f"{public.url}/api/v1/repositories", params={"limit": 1}, auth=ADMIN)
    assert repos.headers["link"].startswith(f"<{PUBLIC}/api/v1/repositories?"), repos.headers


def test_without_public_url_urls_name_the_host_the_client_asked_for(plain: MoorageServer
                                                                   ) -> None:
    challenge = httpx.get(f"{plain.url}/v2/", headers={"Host": "registry.internal:8443"})
    assert 'realm="http://registry.internal:8443/auth/token"' in \
        challenge.headers["www-authenticate"]
    seen = push(plain, "urls/app", ["a", "b"])
    # paths: a client resolves them against the very URL it asked for
    assert seen["upload"].startswith("/v2/urls/app/blobs/uploads/")
    assert seen["manifest"].startswith("/v2/urls/app/manifests/sha256:")
    tags = httpx.get(f"{plain.url}/v2/urls/app/tags/list", params={"n": 1}, auth=ADMIN)
    assert tags.headers["link"] == '</v2/urls/app/tags/list?n=1&last=a>; rel="next"'


@pytest.mark.parametrize("host", ['evil.example"; realm="https://attacker', "a b",
                                  "x" * 2000, "", "reg.example:99999999999", "[::1"])
def test_a_garbage_host_header_is_neither_echoed_nor_a_500(plain: MoorageServer,
                                                           host: str) -> None:
    answer = httpx.get(f"{plain.url}/v2/", headers={"Host": host})
    assert answer.status_code in (400, 401), answer.text
    if answer.status_code == 401:
        challenge = answer.headers["www-authenticate"]
        assert "attacker" not in challenge and "x" * 300 not in challenge
        assert challenge.startswith('Bearer realm="http://127.0.0.1:'), challenge
    refused = httpx.post(f"{plain.url}/v2/urls/app/blobs/uploads/", headers={"Host": host})
    assert refused.status_code in (400, 401)


def test_webhook_payload_urls_follow_public_url_else_the_listen_address(tmp_path: Path
                                                                         ) -> None:
    assert base_url(Settings(public_url="https://registry.example.com/")) == \
        "https://registry.example.com"
    assert base_url(Settings(listen="127.0.0.1:5000")) == "http://127.0.0.1:5000"
    assert base_url(Settings(listen="127.0.0.1:5000", tls_cert="c", tls_key="k")) == \
        "https://127.0.0.1:5000"


def test_a_trusted_proxy_names_the_scheme_and_host_and_nobody_else_does(
        plain: MoorageServer, tmp_path: Path) -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "registry.example.org"}
    ignored = httpx.get(f"{plain.url}/v2/", headers=forwarded)  # no trusted proxy set
    assert f'realm="http://{plain.host}/auth/token"' in ignored.headers["www-authenticate"]
    proxied = MoorageServer(tmp_path / "data", env={
        **SECURED, "MOORAGE_TRUSTED_PROXIES": "127.0.0.1/32"}).start()
    try:  # the test's own requests come from 127.0.0.1: here, a trusted proxy
        answer = httpx.get(f"{proxied.url}/v2/", headers=forwarded)
        assert 'realm="https://registry.example.org/auth/token"' in \
            answer.headers["www-authenticate"]
        garbage = httpx.get(f"{proxied.url}/v2/", headers={
            "X-Forwarded-Proto": "gopher", "X-Forwarded-Host": 'x"y'})
        assert garbage.headers["www-authenticate"].startswith(
            'Bearer realm="http://127.0.0.1:'), garbage.headers
    finally:
        proxied.stop()
