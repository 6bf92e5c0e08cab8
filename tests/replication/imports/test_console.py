"""Administration → Import in a real browser: start an import on the form (a refusal is
shown on it), follow it on its page to its end with its log; accessible pages."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.remote.conftest import Distribution
from tests.replication.imports.helpers import Seeded
from tests.replication.rules.helpers import ADMIN
from tests.support.browser import accessibility_violations, browse, chromium  # noqa: F401
from tests.support.server import MoorageServer


def test_start_and_follow_an_import(importer: MoorageServer, distribution: Distribution,
                                    seeded: Seeded, authority,  # type: ignore[no-untyped-def]
                                    browse: Any) -> None:  # noqa: F811
    b = browse(importer)
    page = b.new_page()
    b.sign_in(page, *ADMIN)
    page.goto("/admin")
    page.get_by_role("navigation", name="Administration").get_by_role(
        "link", name="Import").click()
    expect(page.get_by_role("heading", name="Import", level=1)).to_be_visible()
    assert accessibility_violations(page) == []

    form = page.locator("form[action='/admin/imports'][method='post']")
    form.get_by_label("Source registry URL").fill("ftp://nowhere")
    form.get_by_role("button", name="Start import").click()
    expect(page.get_by_role("alert")).to_contain_text("http(s)://host")

    # no CA configured in the form: the source's certificate is not trusted, and the
    # import's page says so when it ends
    form = page.locator("form[action='/admin/imports'][method='post']")
    form.get_by_label("Source registry URL").fill(distribution.url)
    form.get_by_label("What to import").select_option("repositories")
    form.get_by_label("Namespace, or repositories").fill("team/d, other/d")
    form.get_by_label("Into").fill("console")
    form.get_by_role("button", name="Start import").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Import #")
    expect(page.locator("#import-status")).to_have_text("failed", timeout=120_000)
    expect(page.locator("#import-live")).to_contain_text("not trusted")
    assert accessibility_violations(page) == []

    page.goto("/admin/imports")
    row = page.get_by_role("row").filter(has_text="failed").first
    expect(row).to_contain_text(distribution.url)
    row.get_by_role("link").click()
    expect(page.locator("pre.log")).to_contain_text("not trusted")
