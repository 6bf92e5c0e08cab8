"""The scanner adapters page in a real browser: an administrator registers an adapter (one
that is not an adapter is refused on the form in the API's words), sees its scanner, pings
it, takes it out of scans and removes it."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import expect

from tests.conftest import ADMIN_PASSWORD
from tests.scan.harbor.conftest import AdapterProcess
from tests.support.browser import accessibility_violations
from tests.support.browser import browse, chromium  # noqa: F401 - fixtures
from tests.support.server import MoorageServer
from tests.web.helpers import api


def test_an_administrator_registers_pings_disables_and_removes_an_adapter(
        server: MoorageServer, browse, adapters: Callable[..., AdapterProcess]) -> None:  # noqa: F811
    adapter = adapters()
    b = browse(server)
    page = b.new_page()
    b.sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"{b.base}/admin")
    page.get_by_role("navigation", name="Administration").get_by_role(
        "link", name="Scanners").click()
    expect(page.get_by_role("heading", name="Scanner adapters")).to_be_visible()

    def register(url: str) -> None:
        page.get_by_label("Name").fill("console-tiny")
        page.get_by_label("Adapter URL").fill(url)
        page.get_by_role("button", name="Register adapter").click()

    register(server.url)  # Moorage itself is no adapter
    expect(page.get_by_role("alert")).to_contain_text("is not a usable scanner adapter")
    expect(page.get_by_label("Adapter URL")).to_have_value(server.url)
    assert not accessibility_violations(page)
    register(adapter.url)
    expect(page.get_by_role("status")).to_contain_text("console-tiny registered: Tiny 0.1")
    row = page.get_by_role("row").filter(has_text="console-tiny")
    expect(row).to_contain_text("Tiny 0.1")
    expect(row).to_contain_text("healthy")
    assert not accessibility_violations(page)
    row.get_by_role("button", name="Ping the adapter console-tiny").click()
    expect(page.get_by_role("status")).to_contain_text("console-tiny is healthy")
    page.get_by_role("row").filter(has_text="console-tiny").get_by_role(
        "button", name="Disable the adapter console-tiny").click()
    expect(page.get_by_role("status")).to_contain_text("console-tiny disabled")
    assert api(server, "GET", "/scanners/console-tiny").json()["enabled"] is False
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("row").filter(has_text="console-tiny").get_by_role(
        "button", name="Remove the adapter console-tiny").click()
    expect(page.get_by_role("status")).to_contain_text("console-tiny removed")
    assert api(server, "GET", "/scanners/console-tiny").status_code == 404
