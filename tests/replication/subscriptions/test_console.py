"""Administration → Subscriptions in a real browser: a refusal shown on the form, a
subscription created, run, and its execution followed to its status and log; accessible
pages."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.remote.conftest import Distribution
from tests.replication.rules.conftest import BASIC_PASSWORD, BASIC_USER
from tests.replication.rules.helpers import ADMIN
from tests.replication.subscriptions.helpers import UPSTREAM, local_tags, push_upstream
from tests.support.browser import accessibility_violations, browse, chromium  # noqa: F401
from tests.support.certs import Authority
from tests.support.server import MoorageServer


def test_create_run_and_follow_a_subscription(primary: MoorageServer,
                                              distribution: Distribution,
                                              authority: Authority,
                                              browse: Any) -> None:  # noqa: F811
    pushed = push_upstream(distribution, authority, ["7.0.0", "7.1.0", "8.0.0"],
                           seed="console")
    b = browse(primary)
    page = b.new_page()
    b.sign_in(page, *ADMIN)
    page.goto("/admin")
    page.get_by_role("navigation", name="Administration").get_by_role(
        "link", name="Subscriptions").click()
    expect(page.get_by_role("heading", name="Subscriptions", level=1)).to_be_visible()
    assert accessibility_violations(page) == []

    def fill(name: str, pattern: str) -> None:
        form = page.locator("form[action='/admin/subscriptions'][method='post']")
        form.get_by_label("Name", exact=True).fill(name)
        form.get_by_label("Upstream registry URL").fill(distribution.url)
        form.get_by_label("Upstream repository").fill(UPSTREAM)
        form.get_by_label("Username at the upstream").fill(BASIC_USER)
        form.get_by_label("Password", exact=True).fill(BASIC_PASSWORD)
        form.get_by_label(re.compile("^Local repository")).fill("console/app")
        form.get_by_label("Tag filter kind").select_option("semver")
        form.get_by_label("Tag filter", exact=True).fill(pattern)
        form.get_by_role("checkbox", name="No TLS verification").check()
        form.get_by_role("button", name="Create subscription").click()

    fill("console-sub", ">=7 <=")
    expect(page.get_by_role("alert")).to_contain_text("not a version")
    assert BASIC_PASSWORD not in page.content()
    fill("console-sub", "^7")
    expect(page.get_by_role("status").first).to_contain_text("console-sub created")

    page.get_by_role("button", name="Run the subscription console-sub now").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("console-sub")
    row = page.get_by_role("row").filter(has_text="#")
    for _ in range(480):  # the run takes its time on a loaded machine; this only bounds it
        page.reload()
        if "succeeded" in page.locator("table").inner_text() or \
                "failed" in page.locator("table").inner_text():
            break
        page.wait_for_timeout(500)
    expect(row.first).to_contain_text("succeeded")
    assert accessibility_violations(page) == []
    row.first.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Subscription execution")
    expect(page.locator("pre.log")).to_contain_text("console/app:7.1.0")
    assert accessibility_violations(page) == []
    assert run_tags(primary) == {"7.0.0": pushed["7.0.0"], "7.1.0": pushed["7.1.0"]}


def run_tags(server: MoorageServer) -> dict[str, str]:
    return local_tags(server, "console/app")
