"""The console of an instance with an LDAP directory, in headless Chromium: an administrator
maps a directory group to a namespace role (and sees the API's refusals on the form), sees
where each account signs in, and switches a local account to the directory."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.conftest import ADMIN_PASSWORD, ROOMY, SECURED
from tests.sso.conftest import PASSWORDS, ldap_env, token_answer
from tests.support.browser import accessibility_violations, browse, chromium  # noqa: F401
from tests.support.browser import screenshot
from tests.support.ldap_server import LdapServer, group_dn
from tests.support.server import MoorageServer
from tests.web.helpers import api, make_namespace, unique


@pytest.fixture(scope="module")
def console_ldap(directory: LdapServer,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    """Two workers: what a page shows must not depend on the process that answers."""
    server = MoorageServer(tmp_path_factory.mktemp("console-ldap") / "data",
                           env={**SECURED, **ROOMY, **ldap_env(directory)},
                           extra_args=["--workers", "2"]).start()
    yield server
    server.stop()


def test_group_roles_and_sign_in_sources_in_the_console(console_ldap: MoorageServer,
                                                        browse) -> None:  # noqa: F811
    namespace = make_namespace(console_ldap, prefix="mapped")
    developers = group_dn("developers")
    b = browse(console_ldap)
    page = b.new_page()
    b.sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"{b.base}/admin")
    expect(page.locator("#sign-in-sources")).to_have_text("local, ldap")
    admin_nav = page.get_by_role("navigation", name="Administration")
    admin_nav.get_by_role("link", name="Group roles").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Group roles")
    expect(page.get_by_text("Signing in here: LDAP directory")).to_be_visible()

    # a namespace that does not exist: the API's words, on the form, which keeps its input
    page.get_by_label("Group").fill(developers)
    page.get_by_label("Namespace").fill(unique("missing"))
    page.get_by_role("button", name="Add mapping").click()
    expect(page.get_by_role("alert")).to_contain_text("does not exist")
    expect(page.get_by_label("Group")).to_have_value(developers)

    page.get_by_label("Namespace").fill(namespace)
    page.get_by_label("Role").select_option("maintainer")
    page.get_by_role("button", name="Add mapping").click()
    expect(page.get_by_role("status")).to_contain_text(
        f"Members of {developers} are now maintainer in {namespace}")
    row = page.get_by_role("row").filter(has_text=namespace)
    expect(row).to_contain_text(developers)
    expect(row).to_contain_text("maintainer")
    assert not accessibility_violations(page)
    screenshot(page, "group-roles-1280")
    mapped = [m for m in api(console_ldap, "GET", "/sso/group-roles").json()
              if m["namespace"] == namespace]
    assert [(m["group"], m["role"]) for m in mapped] == [(developers, "maintainer")]

    # the mapping works: alice's next sign-in makes her a maintainer there
    assert token_answer(console_ldap, "alice", PASSWORDS["alice"]).status_code == 200
    roles = {m["username"]: m["role"] for m in
             api(console_ldap, "GET", f"/namespaces/{namespace}/members").json()}
    assert roles["alice"] == "maintainer"

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=re.compile("^Remove")).click()
    expect(page.get_by_role("status")).to_contain_text("Group role removed")
    expect(page.get_by_role("row").filter(has_text=namespace)).to_have_count(0)
    assert not [m for m in api(console_ldap, "GET", "/sso/group-roles").json()
                if m["namespace"] == namespace]

    # where each account signs in; a local account switched to the directory
    assert api(console_ldap, "POST", "/users",
               json={"username": "frank", "password": "franks-local-password"}
               ).status_code == 201
    admin_nav.get_by_role("link", name="Users").click()
    expect(page.get_by_role("row").filter(has_text="alice")).to_contain_text("ldap")
    expect(page.get_by_role("row").filter(has_text="frank")).to_contain_text("local")
    assert not accessibility_violations(page)
    page.get_by_role("link", name="frank", exact=True).click()
    expect(page.locator("#account-source")).to_have_text("local password")
    assert token_answer(console_ldap, "frank", PASSWORDS["frank"]).status_code == 401
    page.get_by_label("Signs in with").select_option("ldap")
    page.get_by_role("button", name="Switch source").click()
    expect(page.get_by_role("status")).to_contain_text("frank now signs in with LDAP directory")
    expect(page.locator("#account-source")).to_have_text("LDAP directory")
    # its local password form is gone with its local password
    expect(page.get_by_role("button", name="Set password")).to_have_count(0)
    assert not accessibility_violations(page)
    assert api(console_ldap, "GET", "/users/frank").json()["source"] == "ldap"
    assert token_answer(console_ldap, "frank", PASSWORDS["frank"]).status_code == 200
    assert token_answer(console_ldap, "frank", "franks-local-password").status_code == 401

    # back to local without a password: refused, with the API's words
    page.get_by_label("Signs in with").select_option("local")
    page.get_by_role("button", name="Switch source").click()
    expect(page.get_by_role("alert")).to_contain_text("needs one")
    page.get_by_label("Signs in with").select_option("local")
    page.get_by_label("Local password", exact=True).fill("franks-new-password")
    page.get_by_label("Local password again").fill("franks-new-password")
    page.get_by_role("button", name="Switch source").click()
    expect(page.get_by_role("status")).to_contain_text("frank now signs in with local password")
    assert token_answer(console_ldap, "frank", "franks-new-password").status_code == 200
    assert b.log.foreign(b.host) == []


def test_a_directory_user_signs_in_to_the_console(console_ldap: MoorageServer,
                                                  browse) -> None:  # noqa: F811
    b = browse(console_ldap)
    page = b.new_page()
    b.sign_in(page, "grace", PASSWORDS["grace"])
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Administration")).to_have_count(0)
    page.goto(f"{b.base}/admin/group-roles")
    expect(page.get_by_role("heading", level=1)).not_to_have_text("Group roles")
