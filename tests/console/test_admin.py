"""The administration pages in a real browser: users (create, administrator or not,
disable and enable, reset the password, delete through a confirmation), the signed-in
user's access tokens (shown once, revoked), network rules with the lock-out guard's refusal,
and the instance's information."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import expect

from tests.console.test_signin import csrf_of, sign_in
from tests.support.browser import accessibility_violations, screenshot
from tests.support.server import MoorageServer
from tests.web.helpers import USER_PASSWORD, api, make_user, unique


def login_status(server: MoorageServer, username: str, password: str) -> int:
    return httpx.get(f"{server.url}/v2/", auth=(username, password)).status_code


def test_an_administrator_manages_users(console_server: MoorageServer, browse,
                                        admin_password: str) -> None:
    b = browse(console_server)
    page = b.new_page()
    b.sign_in(page, "admin", admin_password)
    page.get_by_role("navigation", name="Main").get_by_role("link",
                                                            name="Administration").click()
    page.get_by_role("navigation", name="Administration").get_by_role("link",
                                                                      name="Users").click()
    username = unique("ann")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(USER_PASSWORD)
    page.get_by_label("Administrator").check()
    page.get_by_role("button", name="Create user").click()
    page.wait_for_url(re.compile(rf".*/admin/users/{username}$"))
    assert api(console_server, "GET", f"/users/{username}").json()["is_admin"] is True
    assert login_status(console_server, username, USER_PASSWORD) == 200
    assert not accessibility_violations(page)
    screenshot(page, "user-1280")

    page.get_by_role("button", name="Remove administrator").click()
    expect(page.get_by_role("status")).to_contain_text(f"{username} is no longer an admin")
    assert api(console_server, "GET", f"/users/{username}").json()["is_admin"] is False
    page.get_by_role("button", name="Make administrator").click()
    expect(page.get_by_role("status")).to_contain_text(f"{username} is now an administrator")
    page.get_by_role("button", name="Remove administrator").click()

    page.get_by_role("button", name="Disable").click()
    expect(page.get_by_role("status")).to_contain_text(f"{username} is disabled")
    assert login_status(console_server, username, USER_PASSWORD) == 401
    page.get_by_role("button", name="Enable").click()
    expect(page.get_by_role("status")).to_contain_text(f"{username} is enabled")
    assert login_status(console_server, username, USER_PASSWORD) == 200

    new_password = "a-new-password-for-ann"
    page.get_by_label("New password", exact=True).fill(new_password)
    page.get_by_label("New password again").fill(new_password + "x")
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("alert")).to_contain_text("The two passwords differ")
    page.get_by_label("New password", exact=True).fill(new_password)
    page.get_by_label("New password again").fill(new_password)
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("status")).to_contain_text(f"The password of {username} is changed")
    assert login_status(console_server, username, USER_PASSWORD) == 401
    assert login_status(console_server, username, new_password) == 200

    page.get_by_role("navigation", name="Administration").get_by_role("link",
                                                                      name="Users").click()
    expect(page.get_by_role("link", name=username)).to_be_visible()
    assert not accessibility_violations(page)
    screenshot(page, "users-1280")
    page.get_by_role("link", name=username).click()
    page.get_by_role("link", name="Delete user…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Delete user {username}")
    assert not accessibility_violations(page)
    page.get_by_role("button", name="Delete this user").click()
    page.wait_for_url(re.compile(r".*/admin/users$"))
    expect(page.get_by_role("status")).to_contain_text(f"User {username} deleted.")
    assert api(console_server, "GET", f"/users/{username}").status_code == 404

    # The last administrator stays: the API's refusal, on the page.
    page.goto(f"{b.base}/admin/users/admin/delete")
    page.get_by_role("button", name="Delete this user").click()
    expect(page.get_by_role("alert")).to_contain_text("the last administrator cannot be deleted")
    assert b.log.foreign(b.host) == []


def test_a_short_password_is_refused_by_the_server_with_its_words(
        console_server: MoorageServer, admin_password: str) -> None:
    with httpx.Client(base_url=console_server.url) as client:
        sign_in(client, "admin", admin_password)
        csrf = csrf_of(client.get("/admin/users").text)
        answer = client.post("/admin/users", data={"csrf_token": csrf, "username": unique("s"),
                                                   "password": "short"})
        assert answer.status_code in (400, 422)
        assert "at least 8 characters" in answer.text


def test_access_tokens_are_shown_once_and_revoked(console_server: MoorageServer,
                                                  browse) -> None:
    username, password = make_user(console_server, "tok")
    b = browse(console_server)
    page = b.new_page()
    b.sign_in(page, username, password)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Administration")).to_have_count(0)
    nav.get_by_role("link", name="Account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Access tokens")
    page.get_by_label("Token name").fill("laptop")
    page.get_by_label("Expires in (days)").fill("7")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Access token created")
    secret = page.locator("#token-secret").inner_text().strip()
    copy = page.get_by_role("button", name=re.compile("^Copy token"))
    assert copy.get_attribute("data-copy") == secret
    assert not accessibility_violations(page)
    copy = page.locator(f'button[data-copy="{copy.get_attribute("data-copy")}"]')
    copy.click()  # the text and the accessible name say "Copied" for a moment
    expect(copy).to_have_attribute("data-copied", "true")
    assert login_status(console_server, username, secret) == 200
    me = api(console_server, "GET", "/user", auth=(username, secret))
    assert me.status_code == 200 and me.json()["username"] == username

    page.get_by_role("link", name="Back to your tokens").click()
    row = page.get_by_role("row").filter(has_text="laptop")
    expect(row).to_contain_text("active")
    assert secret not in page.content()
    assert not accessibility_violations(page)
    screenshot(page, "tokens-1280")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke token laptop").click()
    expect(page.get_by_role("status")).to_contain_text("Token revoked.")
    expect(page.get_by_role("row").filter(has_text="laptop")).to_contain_text("revoked")
    assert login_status(console_server, username, secret) == 401

    # Not an administrator: the administration pages are the API's refusals.
    page.goto(f"{b.base}/admin/users")
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    with httpx.Client(base_url=console_server.url) as client:
        sign_in(client, username, password)
        assert client.get("/admin/users").status_code == 403
        csrf = csrf_of(client.get("/account/tokens").text)
        forged = client.post("/admin/network", data={"csrf_token": csrf, "cidr": "0.0.0.0/0",
                                                     "kind": "allow"})
        assert forged.status_code == 403
        forged = client.post("/admin/users", data={"csrf_token": csrf, "username": unique("x"),
                                                   "password": USER_PASSWORD,
                                                   "is_admin": "on"})
        assert forged.status_code == 403
        forged = client.post(f"/admin/users/{username}/admin",
                             data={"csrf_token": csrf, "is_admin": "true"})
        assert forged.status_code == 403
    assert api(console_server, "GET", f"/users/{username}").json()["is_admin"] is False
    assert b.log.foreign(b.host) == []


def test_instance_information(console_server: MoorageServer, browse,
                              admin_password: str) -> None:
    b = browse(console_server)
    page = b.new_page()
    b.sign_in(page, "admin", admin_password)
    page.goto(f"{b.base}/admin")
    info = httpx.get(f"{console_server.url}/api/v1/info").json()
    expect(page.get_by_role("heading", level=1)).to_have_text("Administration")
    facts = page.locator("dl.facts")
    expect(facts).to_contain_text(info["version"])
    expect(facts).to_contain_text(info["edition"])
    expect(facts).to_contain_text("token")
    audit = page.get_by_role("row").filter(has_text=re.compile(r"^audit log"))
    expect(audit).to_contain_text("yes" if info["features"]["audit_log"] else "no")
    expect(page.get_by_role("meter", name="Namespaces", exact=True)).to_be_visible()
    assert not accessibility_violations(page)
    screenshot(page, "admin-1280")


def test_network_rules_and_the_lock_out_guard(console_server: MoorageServer, browse,
                                              admin_password: str) -> None:
    b = browse(console_server)
    page = b.new_page()
    b.sign_in(page, "admin", admin_password)
    page.goto(f"{b.base}/admin/network")

    def add(cidr: str, kind: str = "allow", description: str = "") -> None:
        page.get_by_label("Network (CIDR)").fill(cidr)
        page.get_by_label("Kind").select_option(kind)
        page.get_by_label("Description").fill(description)
        page.get_by_role("button", name="Add rule").click()

    add("10.0.0.0/8", "trusted", "the office")
    expect(page.get_by_role("status")).to_contain_text("Rule trusted 10.0.0.0/8 added.")
    # An instance allow rule that leaves out the browser's own address is refused, in the
    # API's words, with what to do instead.
    add("10.0.0.0/8", "allow", "only the office")
    expect(page.get_by_role("alert")).to_contain_text("this rule would lock you out")
    expect(page.get_by_role("alert")).to_contain_text("no override")
    expect(page.get_by_label("Network (CIDR)")).to_have_value("10.0.0.0/8")
    assert not accessibility_violations(page)
    add("127.0.0.0/8", "allow", "this machine")
    expect(page.get_by_role("status")).to_contain_text("Rule allow 127.0.0.0/8 added.")
    add("10.0.0.0/8", "allow", "the office")
    expect(page.get_by_role("status")).to_contain_text("Rule allow 10.0.0.0/8 added.")
    rules = {(r["cidr"], r["kind"]) for r in api(console_server, "GET", "/network-rules").json()}
    assert rules == {("10.0.0.0/8", "trusted"), ("127.0.0.0/8", "allow"),
                     ("10.0.0.0/8", "allow")}
    assert not accessibility_violations(page)
    screenshot(page, "network-1280")

    def delete(kind: str, cidr: str) -> None:
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name=f"Delete the {kind} rule {cidr}").click()

    delete("allow", "127.0.0.0/8")  # the rule that admits this browser: refused
    expect(page.get_by_role("alert")).to_contain_text("would lock you out")
    delete("allow", "10.0.0.0/8")
    expect(page.get_by_role("status")).to_contain_text("Rule deleted.")
    delete("allow", "127.0.0.0/8")
    expect(page.get_by_role("status")).to_contain_text("Rule deleted.")
    delete("trusted", "10.0.0.0/8")
    expect(page.get_by_role("status")).to_contain_text("Rule deleted.")
    assert api(console_server, "GET", "/network-rules").json() == []
    assert b.log.foreign(b.host) == []


def test_read_only_mode_is_switched_from_the_administration_page(
        console_server: MoorageServer, browse, admin_password: str) -> None:
    b = browse(console_server)
    page = b.new_page()
    b.sign_in(page, "admin", admin_password)
    page.goto(f"{b.base}/admin")
    page.get_by_label("Message for refused clients").fill("moving storage")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Turn read-only mode on").click()
    expect(page.get_by_role("status")).to_contain_text("Read-only mode is on")
    expect(page.locator("#maintenance-h + p")).to_contain_text("moving storage")
    try:
        refused = api(console_server, "POST", "/namespaces", json={"name": unique("ro")})
        assert refused.status_code == 503 and "moving storage" in refused.text
        assert not accessibility_violations(page)
    finally:
        page.get_by_role("button", name="Turn read-only mode off").click()
        expect(page.get_by_role("status")).to_contain_text("Read-only mode is off")
    assert api(console_server, "GET", "/maintenance").json()["read_only"] is False
