"""Administration → Replication in a real browser: create a rule on the form (a refusal is
shown on it), run it, follow its execution to its status and log; accessible pages."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.replication.rules.helpers import (ADMIN, client_for, executions, push_multiarch,
                                             run, wait_finished)
from tests.support.browser import accessibility_violations, browse, chromium  # noqa: F401
from tests.support.server import MoorageServer


def test_create_run_and_follow_a_rule(primary: MoorageServer, peer: MoorageServer,
                                      browse: Any) -> None:  # noqa: F811
    async def seed() -> None:
        async with client_for(primary, *ADMIN) as client:
            await push_multiarch(client, "web/site", "3", seed="console")
    run(seed())
    b = browse(primary)
    page = b.new_page()
    b.sign_in(page, *ADMIN)
    page.goto("/admin")
    page.get_by_role("navigation", name="Administration").get_by_role(
        "link", name="Replication").click()
    expect(page.get_by_role("heading", name="Replication", level=1)).to_be_visible()
    assert accessibility_violations(page) == []

    form = page.locator("form[action='/admin/replication'][method='post']")
    form.get_by_label("Name", exact=True).fill("Bad Name")
    form.get_by_label("Registry URL").fill(peer.url)
    form.get_by_role("button", name="Create rule").click()
    expect(page.get_by_role("alert")).to_contain_text("rule name")

    form = page.locator("form[action='/admin/replication'][method='post']")
    form.get_by_label("Name", exact=True).fill("console-out")
    form.get_by_label("Registry URL").fill(peer.url)
    form.get_by_label("Username at the registry").fill(ADMIN[0])
    form.get_by_label("Password", exact=True).fill(ADMIN[1])
    form.get_by_label(re.compile("^Repositories")).fill("web/*")
    form.get_by_role("checkbox", name=re.compile("Replicate on each push")).uncheck()
    form.get_by_role("button", name="Create rule").click()
    expect(page.get_by_role("status").first).to_contain_text("console-out created")
    assert ADMIN[1] not in page.content()

    page.get_by_role("button", name="Run the rule console-out now").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("console-out")
    wait_finished(primary, "console-out")
    execution = executions(primary, "console-out")[0]
    assert execution["status"] == "succeeded", execution
    page.reload()
    row = page.get_by_role("row").filter(has_text=f"#{execution['id']}")
    expect(row).to_contain_text("succeeded")
    assert accessibility_violations(page) == []
    row.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"#{execution['id']}")
    expect(page.locator("pre.log")).to_contain_text("web/site")
    assert accessibility_violations(page) == []
