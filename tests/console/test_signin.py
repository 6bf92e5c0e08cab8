"""Sign-in, sign-out, sessions and CSRF, through a real browser and raw HTTP."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support.browser import DESKTOP, PHONE, accessibility_violations, screenshot
from tests.support.server import MoorageServer


def test_sign_in_shows_the_overview_and_sign_out_ends_the_session(
        console_server: MoorageServer, browse, admin_password: str) -> None:
    b = browse(console_server)
    page = b.new_page()
    page.goto(f"{b.base}/")
    assert "/login" in page.url  # a page needs a session
    assert not accessibility_violations(page)
    screenshot(page, "login-1280")
    b.sign_in(page, "admin", admin_password)
    assert page.get_by_role("heading", name="Overview").is_visible()
    assert page.get_by_text("Namespaces", exact=True).first.is_visible()
    cookie = next(c for c in b.context.cookies() if c["name"] == "moorage_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert not cookie["secure"]  # plain HTTP here; Secure behind HTTPS (test below)
    assert not accessibility_violations(page)
    screenshot(page, "overview-1280")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/login$"))
    page.goto(f"{b.base}/")
    assert "/login" in page.url
    assert b.log.foreign(b.host) == []  # every asset came from the registry itself


def test_the_session_cookie_stops_working_after_sign_out(console_server: MoorageServer,
                                                         admin_password: str) -> None:
    with httpx.Client(base_url=console_server.url) as client:
        cookie = sign_in(client, "admin", admin_password)
        assert client.get("/").status_code == 200
        csrf = csrf_of(client.get("/").text)
        assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
    with httpx.Client(base_url=console_server.url, cookies={"moorage_session": cookie}) as other:
        answer = other.get("/")  # the same cookie, replayed
        assert answer.status_code == 303 and "/login" in answer.headers["location"]


def test_a_post_without_the_csrf_token_is_refused(console_server: MoorageServer,
                                                  admin_password: str) -> None:
    with httpx.Client(base_url=console_server.url) as client:
        sign_in(client, "admin", admin_password)
        refused = client.post("/logout", data={})
        assert refused.status_code == 403
        assert client.get("/").status_code == 200  # still signed in


def test_wrong_password_is_an_error_on_the_form(console_server: MoorageServer) -> None:
    with httpx.Client(base_url=console_server.url) as client:
        page = client.get("/login")
        answer = client.post("/login", data={"csrf_token": csrf_of(page.text), "username": "admin",
                                             "password": "not-the-password", "next": "/"})
        assert answer.status_code == 401
        assert "invalid username or password" in answer.text
        assert "moorage_session" not in answer.cookies


def test_next_never_leads_to_another_host(console_server: MoorageServer,
                                          admin_password: str) -> None:
    with httpx.Client(base_url=console_server.url) as client:
        page = client.get("/login")
        answer = client.post("/login", data={
            "csrf_token": csrf_of(page.text), "username": "admin", "password": admin_password,
            "next": "//evil.example/steal"})
        assert answer.status_code == 303 and answer.headers["location"] == "/"


def test_behind_https_the_cookie_is_secure(tmp_path, admin_password: str) -> None:
    from tests.conftest import ROOMY, SECURED

    server = MoorageServer(tmp_path / "data", env={**SECURED, **ROOMY,
                                                   "MOORAGE_TRUSTED_PROXIES": "127.0.0.0/8"})
    server.start()
    try:
        headers = {"x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https"}
        with httpx.Client(base_url=server.url, headers=headers) as client:
            page = client.get("/login")
            assert "secure" in page.headers["set-cookie"].lower()
            # The browser would send the Secure cookie back over HTTPS; httpx, on plain
            # HTTP to the proxy's side, only if told to.
            pre = page.headers["set-cookie"].split(";")[0]
            answer = client.post("/login", headers={"cookie": pre},
                                 data={"csrf_token": csrf_of(page.text), "username": "admin",
                                       "password": admin_password, "next": "/"})
            assert answer.status_code == 303
            session = next(v for k, v in answer.headers.multi_items()
                           if k == "set-cookie" and v.startswith("moorage_session="))
            assert "; secure" in session.lower() and "httponly" in session.lower()
    finally:
        server.stop()


@pytest.mark.parametrize("viewport,name", [(DESKTOP, "1280"), (PHONE, "390")])
def test_overview_at_desktop_and_phone_widths(console_server: MoorageServer, browse,
                                              admin_password: str, viewport, name) -> None:
    b = browse(console_server, viewport)
    page = b.new_page()
    b.sign_in(page, "admin", admin_password)
    screenshot(page, f"overview-{name}")
    if viewport is PHONE:
        nav = page.get_by_role("navigation", name="Main")
        assert not nav.is_visible()
        page.get_by_role("button", name="Menu").click()
        assert nav.is_visible()
    assert not accessibility_violations(page)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def sign_in(client: httpx.Client, username: str, password: str) -> str:
    page = client.get("/login")
    answer = client.post("/login", data={"csrf_token": csrf_of(page.text), "username": username,
                                         "password": password, "next": "/"})
    assert answer.status_code == 303, answer.text
    return answer.cookies["moorage_session"]


def test_sign_ins_are_audited_as_console_logins(console_server: MoorageServer,
                                                admin_password: str) -> None:
    from tests.audit.helpers import wait_for

    with httpx.Client(base_url=console_server.url) as client:
        page = client.get("/login")
        client.post("/login", data={"csrf_token": csrf_of(page.text), "username": "admin",
                                    "password": "wrong-one", "next": "/"})
        sign_in(client, "admin", admin_password)
    found = wait_for(console_server, lambda es: any(e["result"] == "failure" for e in es)
                     and any(e["result"] == "success" for e in es), timeout=60,
                     action="login", actor="admin")
    console = [e for e in found if e["target"] == "console"]
    assert {e["result"] for e in console} == {"success", "failure"}
    assert any(e["detail"].get("client") == "console" for e in console)


def test_a_live_update_after_the_session_ended_sends_the_page_to_sign_in(
        console_server: MoorageServer) -> None:
    answer = httpx.get(f"{console_server.url}/jobs/1", headers={
        "HX-Request": "true", "HX-Current-URL": f"{console_server.url}/jobs/1"})
    assert answer.status_code == 204
    assert answer.headers["hx-redirect"] == "/login?next=%2Fjobs%2F1"
    assert answer.text == ""


def test_unknown_pages_and_methods(console_server: MoorageServer, admin_password: str) -> None:
    with httpx.Client(base_url=console_server.url) as client:
        sign_in(client, "admin", admin_password)
        assert client.get("/no/such/page").status_code == 404
        wrong = client.delete("/namespaces")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, HEAD, POST"
        assert client.get("/static/no-such-file.js").status_code == 404
