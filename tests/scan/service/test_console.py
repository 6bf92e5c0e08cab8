"""The manifest page of the console shows an image's last vulnerability report (headless
Chromium against the real server), accessible like every other page."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import ADMIN_PASSWORD
from tests.scan.service.helpers import (api, base_layer, layout, push, python_layer,
                                        wait_report)
from tests.support.browser import accessibility_violations, browse, chromium  # noqa: F401
from tests.support.server import MoorageServer

pytestmark = [pytest.mark.slow]


def test_the_manifest_page_shows_the_report(server: MoorageServer, browse,  # noqa: F811
                                            tmp_path: Path) -> None:
    repo = f"web{uuid.uuid4().hex[:8]}/app"
    push(server, layout(tmp_path / "img", [base_layer(), python_layer(("Jinja2", "2.10"))]),
         f"{repo}:1")
    with api(server) as client:
        found = wait_report(client, repo, "1")
    b = browse(server)
    page = b.new_page()
    b.sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"{b.base}/repositories/{repo}/-/manifests/1")
    expect(page.get_by_role("heading", name="Vulnerabilities", level=2)).to_be_visible()
    summary = page.locator("#vuln-summary")
    for level, count in found["summary"].items():
        expect(summary).to_contain_text(f"{count} {level}")
    rows = page.locator("#vulnerabilities tbody tr")
    expect(rows).to_have_count(len(found["findings"]))
    expect(page.locator("#vulnerabilities")).to_contain_text(found["findings"][0]["id"])
    assert accessibility_violations(page) == []
