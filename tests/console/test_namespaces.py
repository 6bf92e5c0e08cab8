"""The namespaces pages in a real browser: create a namespace, a member and a robot (its
secret shown once, and working), delete through the confirmation page; a guest sees no
management control, and the server refuses the forms it forges."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import expect

from tests.console.test_signin import csrf_of, sign_in
from tests.support.browser import accessibility_violations, screenshot
from tests.support.server import MoorageServer
from tests.web.helpers import USER_PASSWORD, api, make_namespace, make_user, unique


def create_user_on_admin_page(page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/admin/users")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Create user").click()
    page.wait_for_url(re.compile(rf".*/admin/users/{username}$"))
    expect(page.get_by_role("status")).to_contain_text(f"User {username} created.")


def test_an_administrator_creates_a_namespace_a_member_and_a_robot_then_deletes_it(
        console_server: MoorageServer, browse, admin_password: str) -> None:
    b = browse(console_server)
    page = b.new_page()
    b.sign_in(page, "admin", admin_password)
    member, name = unique("dev"), unique("team")
    create_user_on_admin_page(page, b.base, member, USER_PASSWORD)

    # Create, with a quota in words and credential-free pull.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Namespaces").click()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Visibility").select_option("public")
    page.get_by_label("Storage quota").fill("50GiB")
    page.get_by_label("Description", exact=True).fill("The team's images")
    page.get_by_label("Credential-free pull from trusted networks").check()
    page.get_by_role("button", name="Create namespace").click()
    page.wait_for_url(re.compile(rf".*/namespaces/{name}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Namespace {name}")
    expect(page.get_by_label("Storage quota")).to_have_value("50GiB")
    expect(page.get_by_label("Visibility")).to_have_value("public")
    expect(page.get_by_label("Credential-free pull from trusted networks")).to_be_checked()
    stored = api(console_server, "GET", f"/namespaces/{name}").json()
    assert stored["storage_quota"] == 50 * 1024**3 and stored["credential_free_pull"]
    assert stored["description"] == "The team's images" and stored["role"] == "owner"

    # Edit: private again, another description, no quota.
    page.get_by_label("Visibility").select_option("private")
    page.get_by_label("Description", exact=True).fill("Private now")
    page.get_by_label("Storage quota").fill("")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_contain_text(f"Namespace {name} saved.")
    stored = api(console_server, "GET", f"/namespaces/{name}").json()
    assert (stored["visibility"], stored["description"], stored["storage_quota"]) == \
        ("private", "Private now", None)

    # A member, then a change of role.
    page.get_by_label("Username").fill(member)
    page.get_by_label("Role", exact=True).select_option("developer")
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_role("status")).to_contain_text(f"{member} is now developer")
    row = page.get_by_role("row").filter(has_text=member)
    row.get_by_label(f"Role of {member}", exact=True).select_option("maintainer")
    row.get_by_role("button", name=f"Change role of {member}").click()
    expect(page.get_by_role("status")).to_contain_text(f"{member} is now maintainer")
    roles = {m["username"]: m["role"]
             for m in api(console_server, "GET", f"/namespaces/{name}/members").json()}
    assert roles[member] == "maintainer"
    assert not accessibility_violations(page)
    screenshot(page, "namespace-1280")

    # A robot: its secret on the result page, once, with a copy button.
    page.get_by_label("Robot name").fill("ci")
    page.get_by_label("Robot role").select_option("developer")
    page.get_by_label("Expires in (days)").fill("30")
    page.get_by_label("Robot description").fill("the pipeline")
    page.get_by_role("button", name="Create robot account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Robot account created")
    secret = page.locator("#robot-secret").inner_text().strip()
    username = page.locator("#robot-username").inner_text().strip()
    assert username == f"robot${name}+ci" and len(secret) >= 20
    copy = page.get_by_role("button", name=re.compile("^Copy secret"))
    assert copy.get_attribute("data-copy") == secret
    assert not accessibility_violations(page)
    copy = page.locator(f'button[data-copy="{copy.get_attribute("data-copy")}"]')
    copy.click()  # the text and the accessible name say "Copied" for a moment
    expect(copy).to_have_attribute("data-copied", "true")
    assert httpx.get(f"{console_server.url}/v2/", auth=(username, secret)).status_code == 200
    assert httpx.get(f"{console_server.url}/v2/",
                     auth=(username, secret + "x")).status_code == 401
    page.get_by_role("link", name=f"Back to namespace {name}").click()
    expect(page.get_by_role("cell", name="the pipeline")).to_be_visible()
    assert secret not in page.content()  # shown once: never again

    # The robot goes through its confirmation page, and its secret stops working.
    page.get_by_role("link", name="Delete robot ci").click()
    assert not accessibility_violations(page)
    page.get_by_role("button", name="Delete robot account").click()
    expect(page.get_by_role("status")).to_contain_text("Robot account ci deleted.")
    assert httpx.get(f"{console_server.url}/v2/", auth=(username, secret)).status_code == 401

    # A member removed (a confirmation in the browser first).
    other = make_user(console_server, "gone")[0]
    api(console_server, "PUT", f"/namespaces/{name}/members/{other}", json={"role": "guest"})
    page.reload()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Remove {other}").click()
    expect(page.get_by_role("status")).to_contain_text(f"{other} no longer has a role")
    assert other not in {m["username"] for m in
                         api(console_server, "GET", f"/namespaces/{name}/members").json()}

    # The list shows it with the signed-in user's role.
    page.goto(f"{b.base}/namespaces")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=name, exact=True))
    expect(row).to_contain_text("owner")
    expect(row).to_contain_text("private")
    assert not accessibility_violations(page)
    screenshot(page, "namespaces-1280")

    # Delete: the server asks for the name typed out.
    page.goto(f"{b.base}/namespaces/{name}")
    page.get_by_role("link", name="Delete namespace…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Delete namespace {name}")
    assert not accessibility_violations(page)
    page.get_by_label(re.compile("to confirm")).fill(name + "-not")
    page.get_by_role("button", name="Delete this namespace").click()
    expect(page.get_by_role("alert")).to_contain_text("Type the namespace's name")
    assert api(console_server, "GET", f"/namespaces/{name}").status_code == 200
    page.get_by_label(re.compile("to confirm")).fill(name)
    page.get_by_role("button", name="Delete this namespace").click()
    page.wait_for_url(re.compile(r".*/namespaces$"))
    expect(page.get_by_role("status")).to_contain_text(f"Namespace {name} deleted.")
    expect(page.get_by_role("link", name=name, exact=True)).to_have_count(0)
    assert api(console_server, "GET", f"/namespaces/{name}").status_code == 404
    assert b.log.foreign(b.host) == []


def test_a_refused_form_shows_the_api_s_words_on_the_form(
        console_server: MoorageServer, browse, admin_password: str) -> None:
    b = browse(console_server)
    page = b.new_page()
    b.sign_in(page, "admin", admin_password)
    page.goto(f"{b.base}/namespaces")
    page.get_by_label("Name", exact=True).fill("Not Valid")
    page.get_by_role("button", name="Create namespace").click()
    expect(page.get_by_role("alert")).to_contain_text("invalid namespace name")
    expect(page.get_by_label("Name", exact=True)).to_have_value("Not Valid")
    page.get_by_label("Name", exact=True).fill(unique("q"))
    page.get_by_label("Storage quota").fill("lots")
    page.get_by_role("button", name="Create namespace").click()
    expect(page.get_by_role("alert")).to_contain_text("is not a size")
    assert not accessibility_violations(page)


def test_a_guest_sees_no_management_control_and_forged_posts_are_refused(
        console_server: MoorageServer, browse) -> None:
    guest = make_user(console_server, "guest")[0]
    name = make_namespace(console_server, description="before")
    assert api(console_server, "PUT", f"/namespaces/{name}/members/{guest}",
               json={"role": "guest"}).status_code == 200

    b = browse(console_server)
    page = b.new_page()
    b.sign_in(page, guest, USER_PASSWORD)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Administration")).to_have_count(0)
    page.goto(f"{b.base}/namespaces/{name}")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Namespace {name}")
    expect(page.get_by_role("heading", name="Members")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text=guest)).to_contain_text("guest")
    for control in ("Save settings", "Add member", "Create robot account", "Change role",
                    "Remove"):
        expect(page.get_by_role("button", name=re.compile(control))).to_have_count(0)
    expect(page.get_by_role("link", name=re.compile("Delete"))).to_have_count(0)
    expect(page.get_by_role("heading", name="Robot accounts")).to_have_count(0)
    # The only form is sign-out.
    assert page.locator("form").evaluate_all("fs => fs.map(f => f.action)") == \
        [f"{b.base}/logout"]
    assert not accessibility_violations(page)
    screenshot(page, "namespace-guest-1280")
    assert b.log.foreign(b.host) == []

    with httpx.Client(base_url=console_server.url) as client:
        sign_in(client, guest, USER_PASSWORD)
        csrf = csrf_of(client.get(f"/namespaces/{name}").text)
        edit = client.post(f"/namespaces/{name}/settings",
                           data={"csrf_token": csrf, "visibility": "public",
                                 "description": "forged"})
        assert edit.status_code == 403, edit.text
        add = client.post(f"/namespaces/{name}/members",
                          data={"csrf_token": csrf, "username": guest, "role": "owner"})
        assert add.status_code == 403, add.text
        robot = client.post(f"/namespaces/{name}/robots",
                            data={"csrf_token": csrf, "robot_name": "sneaky"})
        assert robot.status_code == 403, robot.text
        delete = client.post(f"/namespaces/{name}/delete",
                             data={"csrf_token": csrf, "confirm_name": name})
        assert delete.status_code == 403, delete.text
        # Without the CSRF token, refused before the page runs.
        bare = client.post(f"/namespaces/{name}/settings", data={"description": "forged"})
        assert bare.status_code == 403 and "security token" in bare.text
    stored = api(console_server, "GET", f"/namespaces/{name}").json()
    assert (stored["visibility"], stored["description"]) == ("private", "before")
    roles = {m["username"]: m["role"]
             for m in api(console_server, "GET", f"/namespaces/{name}/members").json()}
    assert roles[guest] == "guest" and "sneaky" not in str(roles)


def test_a_forged_post_by_the_owner_without_the_csrf_token_is_refused(
        console_server: MoorageServer, admin_password: str) -> None:
    name = make_namespace(console_server)
    with httpx.Client(base_url=console_server.url) as client:
        sign_in(client, "admin", admin_password)
        bare = client.post(f"/namespaces/{name}/delete", data={"confirm_name": name})
        assert bare.status_code == 403
        wrong = client.post(f"/namespaces/{name}/delete",
                            data={"confirm_name": name, "csrf_token": "x" * 43})
        assert wrong.status_code == 403
    assert api(console_server, "GET", f"/namespaces/{name}").status_code == 200


def test_a_private_namespace_is_not_found_for_a_non_member(
        console_server: MoorageServer) -> None:
    outsider = make_user(console_server, "out")[0]
    name = make_namespace(console_server)
    with httpx.Client(base_url=console_server.url) as client:
        sign_in(client, outsider, USER_PASSWORD)
        assert client.get(f"/namespaces/{name}").status_code == 404
        assert name not in client.get("/namespaces").text


def test_a_quota_reads_back_as_it_is_shown() -> None:
    from moorage.web.console.pages.namespaces import exact_size, read_quota

    for value in (None, 0, 1, 1000, 1024, 50 * 1024**3, 3 * 1024**5 + 1, 5 * 1024**2):
        assert read_quota(exact_size(value)) == value
    assert exact_size(50 * 1024**3) == "50GiB" and read_quota("500MB") == 500_000_000
    for wrong in ("lots", "-1", "9" * 30):
        try:
            read_quota(wrong)
        except ValueError:
            continue
        raise AssertionError(f"{wrong!r} was read as a size")
