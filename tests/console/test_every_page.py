"""Every page of the console, found by following its links from the overview: none answers
with a server error, none has a serious or critical accessibility violation (axe-core), none
asks another host for anything; and a user without rights gets a refusal, never the page,
for each administrator's page found."""

from __future__ import annotations

import re
from collections import deque
from urllib.parse import urljoin, urlsplit

import httpx

from tests.access.helpers import admin_push
from tests.support.browser import PHONE, accessibility_violations, screenshot
from tests.support.server import MoorageServer
from tests.web.helpers import USER_PASSWORD, api, make_user

MAX_PAGES = 60
# Links that act or leave the console: never followed by the crawler.
_SKIP = re.compile(r"^/(logout|static/|api/|v2/)|/export|/delete$")


def seed(server: MoorageServer) -> None:
    assert api(server, "POST", "/namespaces", json={"name": "crawl"}).status_code == 201
    admin_push(server, "crawl/app", "v1")
    admin_push(server, "crawl/app", "v2")
    assert api(server, "POST", "/retention", json={
        "scope": "crawl/*", "keep_last": 1}).status_code == 201
    assert api(server, "POST", "/immutability", json={
        "scope": "crawl/*", "tag_pattern": "release-*"}).status_code == 201
    assert api(server, "POST", "/webhooks", json={
        "namespace": "crawl", "url": "http://127.0.0.1:9/hook",
        "events": ["push"]}).status_code == 201
    assert api(server, "POST", "/gc", json={"dry_run": True}).status_code == 202
    # the scanner's pages: a scan requested, so the manifest page has a report to show
    scanned = api(server, "POST", "/repositories/crawl/app/scans", json={"reference": "v2"})
    assert scanned.status_code == 202, scanned.text


def same_site_links(page, base: str) -> list[str]:  # type: ignore[no-untyped-def]
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
    found = []
    for href in hrefs:
        url = urljoin(page.url, href)
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != base or parts.fragment and not parts.path:
            continue
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if not _SKIP.search(parts.path):
            found.append(path)
    return found


def test_every_page_is_accessible_and_local(console_server: MoorageServer, browse,
                                            admin_password: str) -> None:
    seed(console_server)
    b = browse(console_server)
    page = b.new_page()
    b.sign_in(page, "admin", admin_password)
    queue, seen, problems, statuses = deque(["/"]), {"/"}, {}, {}
    while queue and len(statuses) < MAX_PAGES:
        path = queue.popleft()
        answer = page.goto(f"{b.base}{path}")
        statuses[path] = answer.status if answer else 0
        assert statuses[path] < 500, (path, statuses[path])
        found = accessibility_violations(page)
        if found:
            problems[path] = found
        for link in same_site_links(page, b.base):
            if link not in seen and link.split("?")[0] not in seen:
                seen.add(link)
                queue.append(link)
    assert problems == {}
    assert b.log.foreign(b.host) == []
    visited = set(statuses)
    for area in ("/namespaces", "/repositories", "/rules", "/jobs", "/webhooks", "/audit",
                 "/admin", "/admin/advisories", "/admin/scanners"):
        assert any(p == area or p.startswith(area + "/") or p.startswith(area + "?")
                   for p in visited), (area, sorted(visited))
    assert len(visited) >= 15, sorted(visited)

    # A user with no role anywhere: every administrator's page is refused by the server.
    # (Network rules are not among them: the API shows each user the rules they may see.)
    username, _ = make_user(console_server, "outsider")
    other = browse(console_server)
    outsider = other.new_page()
    other.sign_in(outsider, username, USER_PASSWORD)
    for path in sorted(visited):
        if path == "/admin" or path.startswith(("/admin/users", "/admin/advisories", "/audit",
                                                   "/jobs")):
            answer = outsider.goto(f"{other.base}{path}")
            assert answer is not None and answer.status in (401, 403, 404), (path, answer.status)
    with httpx.Client(base_url=console_server.url) as client:
        assert client.get("/admin").status_code == 303  # no session: to the sign-in page


def test_main_pages_on_a_phone(console_server: MoorageServer, browse,
                               admin_password: str) -> None:
    b = browse(console_server, PHONE)
    page = b.new_page()
    b.sign_in(page, "admin", admin_password)
    for path, name in (("/", "overview"), ("/namespaces", "namespaces"),
                       ("/repositories", "repositories"), ("/rules", "rules"),
                       ("/jobs", "jobs"), ("/webhooks", "webhooks"), ("/audit", "audit"),
                       ("/admin", "admin")):
        page.goto(f"{b.base}{path}")
        screenshot(page, f"{name}-390")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"] + 1, (path, width)  # nothing wider than the phone
        assert not accessibility_violations(page), path


def test_the_dark_theme_is_as_readable(console_server: MoorageServer, browse,
                                       admin_password: str) -> None:
    """The browser asks for dark: the same pages pass the same checks (contrast included)."""
    b = browse(console_server, color_scheme="dark")
    page = b.new_page()
    b.sign_in(page, "admin", admin_password)
    for path, name in (("/", "overview"), ("/repositories", "repositories"),
                       ("/rules", "rules"), ("/audit", "audit")):
        page.goto(f"{b.base}{path}")
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(15, 20, 25)", background  # the dark palette is in force
        screenshot(page, f"{name}-dark-1280")
        assert not accessibility_violations(page), path
