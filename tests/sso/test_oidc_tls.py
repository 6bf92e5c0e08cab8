"""A provider on HTTPS with a certificate of a private CA: trusted through `oidc_ca_file`,
and refused with a message that says so without it."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOMY, SECURED
from tests.support.certs import Authority
from tests.support.fake_oidc import FakeProvider
from tests.support.server import MoorageServer, free_port

ALERT = re.compile(r'<p class="error" role="alert" id="login-error">(.*?)</p>', re.S)


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeProvider]:
    authority = Authority.make(tmp_path_factory.mktemp("oidc-ca"))
    cert, key, _ = authority.issue("provider", ["localhost"])
    provider = FakeProvider(free_port(), tls=(cert, key, authority.ca_file)).start()
    yield provider
    provider.stop()


def sign_in(server: MoorageServer) -> tuple[httpx.Response, str]:
    with httpx.Client(follow_redirects=True, timeout=60, verify=False) as client:
        answer = client.get(f"{server.url}/sso/oidc/start", params={"next": "/namespaces"})
    found = ALERT.search(answer.text)
    return answer, html.unescape(found.group(1)) if found else ""


@pytest.mark.parametrize("trusted", [True, False])
def test_the_provider_certificate_is_checked_against_oidc_ca_file(
        fake: FakeProvider, tmp_path: Path, trusted: bool) -> None:
    assert fake.tls is not None
    env = {**SECURED, **ROOMY, **fake.settings()}
    if trusted:
        env["MOORAGE_OIDC_CA_FILE"] = str(fake.tls[2])
    server = MoorageServer(tmp_path / "data", env=env).start()
    try:
        answer, error = sign_in(server)
    finally:
        server.stop()
    if trusted:
        assert error == "" and answer.url.path == "/namespaces", error
    else:
        assert answer.status_code == 502
        assert "TLS certificate is not trusted" in error and "oidc_ca_file" in error
