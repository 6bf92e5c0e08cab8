"""The scanner in the console, in headless Chromium against a real server (advanced edition,
the fixture's Jinja2 and urllib3 advisories imported): a scanned image's page (summary,
findings, severity filter by htmx, CSV download, fix plan commands), Scan now followed to a
new report, what a reader does not get (Scan now, the scan-on-push switch), the tag listing's
summary column, Administration → Advisories, and bad input answered without a server error.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import ADMIN_PASSWORD, ROOMY, SECURED
from tests.console.test_signin import csrf_of, sign_in
from tests.scan.console.test_fixes import PACKAGES, expected_command
from tests.scan.service.helpers import (OSV_PYPA, api, base_layer, import_advisories, layout,
                                        push, python_layer, report, wait_report)
from tests.support.browser import accessibility_violations, browse, chromium  # noqa: F401
from tests.support.server import MoorageServer
from tests.web.helpers import USER_PASSWORD, make_user

pytestmark = [pytest.mark.slow]
WAIT_MS = 180_000  # bounds a hang only


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    started = MoorageServer(tmp_path_factory.mktemp("scan-console") / "data",
                            env={**SECURED, **ROOMY}).start()
    import_advisories(started, OSV_PYPA / "jinja2", OSV_PYPA / "urllib3")
    yield started
    started.stop()


@pytest.fixture(scope="module")
def image(server: MoorageServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """team/app:1 scanned; team/app:2 pushed and never scanned."""
    repo = f"con{uuid.uuid4().hex[:8]}/app"
    folder = tmp_path_factory.mktemp("scan-console-img")
    push(server, layout(folder / "one", [base_layer(), python_layer(*PACKAGES)]), f"{repo}:1")
    push(server, layout(folder / "two", [base_layer(), python_layer(("Jinja2", "2.10"))],
                        tag="t"), f"{repo}:2")
    with api(server) as client:
        assert client.post(f"/repositories/{repo}/scans",
                           json={"reference": "1"}).status_code == 202
        found = wait_report(client, repo, "1")
    assert found["status"] == "done" and found["findings"], found
    return repo


def member(server: MoorageServer, namespace: str, role: str) -> str:
    username = make_user(server, role)[0]
    with api(server) as client:
        assert client.put(f"/namespaces/{namespace}/members/{username}",
                          json={"role": role}).status_code == 200
    return username


def test_a_scanned_image_shows_findings_filters_downloads_and_fixes(
        server: MoorageServer, image: str, browse, tmp_path: Path) -> None:  # noqa: F811
    with api(server) as client:
        found = report(client, image, "1")
        levels = sorted({f["severity"]["level"] for f in found["findings"]})
    b = browse(server)
    page = b.new_page()
    b.sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"{b.base}/repositories/{image}/-/manifests/1")
    summary = page.locator("#vuln-summary")
    for level, count in found["summary"].items():
        expect(summary).to_contain_text(f"{count} {level}")
    expect(page.locator("#vuln-status")).to_contain_text("done")
    expect(page.locator("#vuln-status")).to_contain_text("osv")
    rows = page.locator("#vulnerabilities tbody tr")
    expect(rows).to_have_count(len(found["findings"]))
    for f in found["findings"]:
        expect(page.locator("#vulnerabilities")).to_contain_text(f["id"])
    assert accessibility_violations(page) == []

    # the severity filter (htmx: the table alone is replaced, the URL kept)
    with api(server) as client:
        for level in ("critical", "high", "medium"):
            wanted = report(client, image, "1", severity=level)["findings"]
            page.get_by_label("Severity").select_option(level)
            expect(page).to_have_url(re.compile(f"severity={level}"))
            if wanted:
                expect(rows).to_have_count(len(wanted))
                shown = {r.get_attribute("data-severity") for r in rows.all()}
                order = ("critical", "high", "medium", "low", "unknown")
                assert shown <= set(order[:order.index(level) + 1]), (level, shown)
            else:
                expect(page.locator("#vuln-findings")).to_contain_text(
                    "No finding matches the filters.")
    assert levels  # the image has findings at all
    page.get_by_label("Severity").select_option("")
    page.get_by_label("only with a fix").check()
    expect(page).to_have_url(re.compile("fixable=true"))
    with api(server) as client:
        fixable = report(client, image, "1", fixable="true")["findings"]
    expect(rows).to_have_count(len(fixable))

    # the CSV download
    with page.expect_download() as download:
        page.locator("#export-csv").click()
    saved = tmp_path / "report.csv"
    download.value.save_as(saved)
    lines = saved.read_text().splitlines()
    assert lines[0].startswith("platform,id,aliases,severity")
    assert len(lines) == 1 + len(found["findings"])

    # the fix plan: the commands computed from the fixture's ranges, copyable
    commands = page.locator("#fix-plan code.fix-command")
    expect(commands).to_have_count(1)
    expect(commands).to_have_text(expected_command())
    expect(page.locator("#fix-plan").get_by_role(
        "button", name=f"Copy command: {expected_command()}")).to_be_visible()
    assert b.log.foreign(b.host) == []


def test_scan_now_is_followed_to_a_new_report(server: MoorageServer, image: str,
                                              browse) -> None:  # noqa: F811
    developer = member(server, image.split("/")[0], "developer")
    with api(server) as client:
        before = report(client, image, "1")["images"][0]["job_id"]
    b = browse(server)
    page = b.new_page()
    b.sign_in(page, developer, USER_PASSWORD)
    page.goto(f"{b.base}/repositories/{image}/-/manifests/1")
    page.get_by_role("button", name="Scan now").click()
    expect(page).to_have_url(re.compile(r"scan_job=\d+"))
    job = int(re.search(r"scan_job=(\d+)", page.url).group(1))  # type: ignore[union-attr]
    assert job != before
    # progress follows the job; once finished the page reloads without the job in its URL
    expect(page).not_to_have_url(re.compile("scan_job"), timeout=WAIT_MS)
    status = page.locator("#vuln-status")
    expect(status).to_contain_text(f"job {job}")
    expect(status).to_contain_text("done")
    with api(server) as client:
        assert report(client, image, "1")["images"][0]["job_id"] == job
    assert accessibility_violations(page) == []


def test_a_reader_gets_neither_scan_now_nor_the_switch(server: MoorageServer, image: str,
                                                      browse) -> None:  # noqa: F811
    namespace = image.split("/")[0]
    guest = member(server, namespace, "guest")
    b = browse(server)
    page = b.new_page()
    b.sign_in(page, guest, USER_PASSWORD)
    page.goto(f"{b.base}/repositories/{image}/-/manifests/1")
    expect(page.locator("#vuln-summary")).to_be_visible()
    expect(page.get_by_role("button", name="Scan now")).to_have_count(0)
    page.goto(f"{b.base}/namespaces/{namespace}")
    expect(page.locator("#scan-on-push-state")).to_contain_text("Scan on push: off")
    expect(page.locator("#scan-on-push")).to_have_count(0)
    assert accessibility_violations(page) == []
    with httpx.Client(base_url=server.url, timeout=120) as client:
        sign_in(client, guest, USER_PASSWORD)
        csrf = csrf_of(client.get(f"/namespaces/{namespace}").text)
        forged = client.post("/scanning/scan", data={"csrf_token": csrf, "repository": image,
                                                     "reference": "1"})
        assert forged.status_code == 403, forged.text
        switched = client.post(f"/namespaces/{namespace}/scan-settings",
                               data={"csrf_token": csrf, "scan_on_push": "true"})
        assert switched.status_code == 403, switched.text


def test_a_maintainer_turns_scan_on_push_on_and_off(server: MoorageServer, image: str,
                                                    browse) -> None:  # noqa: F811
    namespace = image.split("/")[0]
    maintainer = member(server, namespace, "maintainer")
    b = browse(server)
    page = b.new_page()
    b.sign_in(page, maintainer, USER_PASSWORD)
    page.goto(f"{b.base}/namespaces/{namespace}")
    switch = page.get_by_role("switch")
    expect(switch).to_have_attribute("aria-checked", "false")
    switch.click()
    expect(page.locator("#scan-on-push-state")).to_contain_text("Scan on push: on")
    with api(server) as client:
        assert client.get(f"/namespaces/{namespace}/scan-settings").json()["scan_on_push"]
    page.get_by_role("switch").click()
    expect(page.locator("#scan-on-push-state")).to_contain_text("Scan on push: off")
    with api(server) as client:
        assert not client.get(f"/namespaces/{namespace}/scan-settings").json()["scan_on_push"]


def test_the_tag_list_shows_each_tags_summary(server: MoorageServer, image: str,
                                              browse) -> None:  # noqa: F811
    with api(server) as client:
        tags = {t["name"]: t for t in client.get(f"/repositories/{image}/tags").json()}
    scanned = tags["1"]["vulnerabilities"]
    assert scanned is not None and tags["2"]["vulnerabilities"] is None
    b = browse(server)
    page = b.new_page()
    b.sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"{b.base}/repositories/{image}")
    expect(page.get_by_role("columnheader", name="Vulnerabilities")).to_be_visible()
    one = page.locator('tr[data-tag="1"] td.vulns')
    for level in ("critical", "high", "medium", "low", "unknown"):
        if scanned[level]:
            expect(one).to_contain_text(f"{scanned[level]} {level}")
    expect(page.locator('tr[data-tag="2"] td.vulns')).to_have_text("not scanned")
    assert accessibility_violations(page) == []


def test_the_advisories_page_shows_the_imported_counts(server: MoorageServer,
                                                       browse) -> None:  # noqa: F811
    with api(server) as client:
        state = client.get("/advisories").json()
    assert state["total"] > 0
    b = browse(server)
    page = b.new_page()
    b.sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"{b.base}/admin")
    page.get_by_role("navigation", name="Administration").get_by_role(
        "link", name="Advisories").click()
    expect(page.locator("#advisory-total")).to_contain_text(str(state["total"]))
    table = page.locator("#advisory-ecosystems")
    for ecosystem, count in state["ecosystems"].items():
        expect(table.get_by_role("row").filter(has_text=ecosystem)).to_contain_text(str(count))
    expect(page.locator("#advisory-last-import")).to_contain_text(
        state["last_import"]["source"])
    expect(page.locator("#import-command")).to_have_text(
        f"moorage advisories import {state['last_import']['source']} --data-dir DATA_DIR")
    assert accessibility_violations(page) == []


def test_bad_input_is_refused_without_a_server_error(server: MoorageServer,
                                                     image: str) -> None:
    with httpx.Client(base_url=server.url, timeout=120) as client:
        sign_in(client, "admin", ADMIN_PASSWORD)
        page = client.get(f"/repositories/{image}/-/manifests/1",
                          params={"severity": "<b>bogus</b>", "fixable": "maybe"})
        assert page.status_code == 200 and "is not a severity" in page.text
        assert "<b>bogus</b>" not in page.text
        assert client.get(f"/repositories/{image}/-/manifests/nope").status_code == 404
        assert client.get(f"/repositories/{image}/-/manifests/1",
                          params={"scan_job": "9" * 40}).status_code == 200
        for params in ({"repository": image, "reference": "1", "format": "xml"},
                       {"repository": image, "format": "csv"}, {}):
            assert client.get("/scanning/export", params=params).status_code == 400
        assert client.get("/scanning/export", params={
            "repository": image, "reference": "nope", "format": "csv"}).status_code == 404
        assert client.get("/scanning/export", params={
            "repository": image, "reference": "1", "format": "spdx",
            "platform": "x" * 500}).status_code in (400, 404)
        assert client.get("/scanning/jobs/abc", params={"repository": image,
                                                        "reference": "1"}).status_code == 400
        assert client.get("/scanning/jobs/99999999", params={
            "repository": image, "reference": "1"}).status_code == 404
        csv = client.get("/scanning/export", params={"repository": image, "reference": "1",
                                                     "format": "csv"})
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        assert "attachment" in csv.headers["content-disposition"]
        spdx = client.get("/scanning/export", params={"repository": image, "reference": "1",
                                                      "format": "spdx"})
        assert spdx.status_code == 200 and spdx.json()["spdxVersion"] == "SPDX-2.3"
        cdx = client.get("/scanning/export", params={"repository": image, "reference": "1",
                                                     "format": "cyclonedx"})
        assert cdx.status_code == 200 and cdx.json()["bomFormat"] == "CycloneDX"
