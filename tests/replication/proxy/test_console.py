"""The proxy caches page in a real browser: an administrator adds a proxy namespace (a bad
URL is refused on the form in the API's words, the password never sent back), checks its
upstream, sees the binding on the namespace page, and unbinds it."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.remote.conftest import BASIC_PASSWORD, BASIC_USER
from tests.replication.proxy.conftest import api
from tests.support.browser import accessibility_violations, browse, chromium  # noqa: F401
from tests.support.server import MoorageServer

ADMIN_PASSWORD = "admin-password-for-tests"


def test_an_administrator_adds_checks_and_unbinds_a_proxy_cache(
        moorage: MoorageServer, misbehaving, browse) -> None:  # type: ignore[no-untyped-def]
    b = browse(moorage)
    page = b.new_page()
    b.sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"{b.base}/admin")
    page.get_by_role("navigation", name="Administration").get_by_role(
        "link", name="Proxy caches").click()
    expect(page.get_by_role("heading", name="Proxy caches", exact=True)).to_be_visible()

    page.get_by_label("Namespace (made if it does not exist)").fill("webhub")
    page.get_by_label("Upstream registry URL").fill("http://registry.example.com")
    page.get_by_label("Upstream account (optional)").fill(BASIC_USER)
    page.get_by_label("Upstream password").fill(BASIC_PASSWORD)
    page.get_by_role("button", name="Add proxy cache").click()
    expect(page.get_by_role("alert")).to_contain_text("plain http")
    expect(page.get_by_label("Upstream password")).to_have_value("")  # never sent back
    assert not accessibility_violations(page)

    page.get_by_label("Upstream registry URL").fill(misbehaving.url)
    page.get_by_label("Upstream password").fill(BASIC_PASSWORD)
    page.get_by_role("button", name="Add proxy cache").click()
    expect(page.get_by_role("status")).to_contain_text("webhub now pulls through")
    row = page.get_by_role("row").filter(has_text="webhub")
    row.get_by_role("button", name="Check the upstream of webhub").click()
    expect(page.get_by_role("status")).to_contain_text("The upstream of webhub answers")
    assert BASIC_PASSWORD not in page.content()
    assert not accessibility_violations(page)

    page.goto(f"{b.base}/namespaces/webhub")
    expect(page.locator("#proxy-cache")).to_contain_text(misbehaving.url)
    expect(page.locator("#proxy-cache")).to_contain_text("Pushes into this namespace are refused")

    page.goto(f"{b.base}/admin/proxy-caches")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("row").filter(has_text="webhub").get_by_role(
        "button", name="Unbind webhub").click()
    expect(page.get_by_role("status")).to_contain_text("webhub is no longer a proxy cache")
    with api(moorage) as client:
        assert "webhub" not in [p["namespace"] for p in client.get("/proxy-caches").json()]
