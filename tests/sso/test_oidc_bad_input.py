"""A provider that is down or answers garbage: the user gets a clear error on the sign-in
page (never a 500 or a stack trace), and the local administrator still signs in there.

The provider is tests/support/fake_oidc.py, switched between faults; in its good mode it
signs people in, which shows that each failure below comes from the one fault injected.
Moorage runs one worker here and keeps a copy of the provider's discovery document and keys
once it has read them, so the cases that break those come first: the cases run in order.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, ROOMY, SECURED
from tests.support.browser import browse, chromium  # noqa: F401 - fixtures
from tests.support.fake_oidc import FakeProvider
from tests.support.server import MoorageServer, free_port

ALERT = re.compile(r'<p class="error" role="alert" id="login-error">(.*?)</p>', re.S)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    provider = FakeProvider(free_port()).start()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def server(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[MoorageServer]:
    server = MoorageServer(tmp_path_factory.mktemp("oidc-bad") / "data",
                           env={**SECURED, **ROOMY, **fake.settings()},
                           extra_args=["--workers", "1"]).start()
    yield server
    server.stop()


def sso(server: MoorageServer, next_path: str = "/") -> tuple[httpx.Response, str]:
    """A browser's way through the sign-in (cookies kept, redirects followed): the last
    answer and the error the sign-in page shows, if any."""
    with httpx.Client(follow_redirects=True, timeout=60) as client:
        answer = client.get(f"{server.url}/sso/oidc/start", params={"next": next_path})
    found = ALERT.search(answer.text)
    return answer, html.unescape(found.group(1)) if found else ""


def admin_signs_in(server: MoorageServer) -> None:
    with httpx.Client(timeout=60) as client:
        page = client.get(f"{server.url}/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf is not None
        answer = client.post(f"{server.url}/login", data={
            "csrf_token": csrf.group(1), "next": "/", "username": "admin",
            "password": ADMIN_PASSWORD})
        assert answer.status_code == 303 and answer.headers["location"] == "/", answer.text
        assert client.get(f"{server.url}/").status_code == 200


def test_provider_down_is_a_clear_error_and_the_admin_signs_in(
        server: MoorageServer, fake: FakeProvider, browse: Any) -> None:
    fake.stop()
    try:
        browsing = browse(server)
        page = browsing.new_page()
        page.goto(f"{server.url}/login")
        page.get_by_role("link", name="Sign in with Faulty SSO").click()
        error = page.get_by_role("alert").inner_text()
        assert "Single sign-on is unavailable" in error
        assert "could not be reached" in error
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password or access token").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_url(re.compile(rf"^{re.escape(server.url)}/(?!sso/|login)"))
        assert "admin" in page.locator(".who").inner_text()
    finally:
        fake.start()


@pytest.mark.parametrize(("mode", "status", "words"), [
    ("garbage-discovery", 502, "discovery document is not a JSON object"),
    ("huge-discovery", 502, "discovery document is too large"),
    ("garbage-jwks", 502, "key set has no keys"),
])
def test_garbage_documents_are_clear_errors(server: MoorageServer, fake: FakeProvider,
                                            mode: str, status: int, words: str) -> None:
    fake.mode(mode)
    answer, error = sso(server)
    assert answer.status_code == status
    assert words in error
    admin_signs_in(server)


def test_the_fake_provider_signs_in_when_it_is_right(server: MoorageServer,
                                                     fake: FakeProvider) -> None:
    fake.mode("good")
    answer, error = sso(server, "/namespaces")
    assert error == ""
    assert answer.status_code == 200 and answer.url.path == "/namespaces"
    user = httpx.get(f"{server.url}/api/v1/users/frank", auth=("admin", ADMIN_PASSWORD),
                     timeout=60).json()
    assert user["source"] == "oidc"


@pytest.mark.parametrize(("mode", "status", "words"), [
    ("bad-signature", 401, "ID token could not be verified"),
    ("wrong-nonce", 401, "not valid for this sign-in (claim nonce)"),
    ("expired", 401, "ID token has expired"),
    ("wrong-state", 400, "does not belong to this sign-in"),
    ("garbage-token", 502, "token request is not a JSON object"),
    ("token-refused", 502, "refused the token request (invalid_grant: grant request is "
                           "invalid)"),
    ("hangup", 502, "could not be reached for its token request"),
    ("no-username", 401, "did not say the account's name"),
    ("slow-token", 502, "did not answer its token request in time"),
])
def test_bad_answers_are_clear_errors(server: MoorageServer, fake: FakeProvider, mode: str,
                                      status: int, words: str) -> None:
    fake.mode(mode)
    answer, error = sso(server)
    assert answer.status_code == status, answer.text[:500]
    assert words in error
    assert "Traceback" not in answer.text
    admin_signs_in(server)


def test_a_disabled_account_is_refused_at_sign_in(server: MoorageServer,
                                                  fake: FakeProvider) -> None:
    fake.mode("good")
    admin = ("admin", ADMIN_PASSWORD)
    disabled = httpx.patch(f"{server.url}/api/v1/users/frank", json={"disabled": True},
                           auth=admin, timeout=60)
    assert disabled.status_code == 200, disabled.text
    try:
        answer, error = sso(server)
        assert answer.status_code == 403
        assert "frank is disabled" in error
    finally:
        httpx.patch(f"{server.url}/api/v1/users/frank", json={"disabled": False}, auth=admin,
                    timeout=60)


def test_an_answer_without_its_cookie_or_for_another_host_is_refused(
        server: MoorageServer, fake: FakeProvider) -> None:
    fake.mode("good")
    # a callback the browser did not start (no state cookie): nothing is exchanged
    answer = httpx.get(f"{server.url}/sso/oidc/callback",
                       params={"code": "stolen", "state": "guessed"}, timeout=60)
    assert answer.status_code == 400
    assert "not started in this browser" in html.unescape(answer.text)
    # `next` naming another host: the sign-in ends on this site's front page
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        answer, error = sso(server, target)
        assert error == "" and answer.url.host == "127.0.0.1", target
        assert answer.url.path == "/"


def test_no_secret_in_the_log(server: MoorageServer, fake: FakeProvider) -> None:
    log = server.log_path.read_text(errors="replace")
    assert "single sign-on failed" in log  # the failures above were logged, in words
    assert fake.client_secret not in log
    assert "Traceback" not in log
