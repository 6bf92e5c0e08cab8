"""Headless Chromium (Debian's, driven by Playwright) against a real `moorage serve`.

Never `playwright install`: the browser is /usr/bin/chromium. Every request a page makes is
logged, so a test can assert that no page asks a host other than the registry's own (the
console must work on a network without internet). Screenshots go to
tests/console/screenshots/ (test output, not committed); the accessibility check runs
axe-core, installed by `make test` from npm into .npm-packages/.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / ".npm-packages" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "tests" / "console" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Chromium's own background traffic is off (flags below); what is left is the page's.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage"]


@dataclass
class RequestLog:
    """Every URL pages asked for, through the whole test."""

    urls: list[str] = field(default_factory=list)

    def foreign(self, host: str) -> list[str]:
        """Requests to anything but `host` (data: URLs are the page's own)."""
        return [u for u in self.urls
                if not u.startswith(("data:", "blob:", "about:"))
                and urlsplit(u).netloc != host]


# Per module, not per session: Playwright's synchronous API runs an event loop in the test
# process's main thread while it is open, and a later module's in-process tests (asyncio.run,
# the argon2 off-the-loop guard) would find it there. With `--dist loadscope` a module runs
# whole on one xdist worker, so the browser is started once per console module.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it "
                    "(scripts/install-system-deps.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield browser
        browser.close()


@dataclass
class Browsing:
    """A browser context on one registry: its pages, the request log, helpers."""

    context: Any
    base: str
    log: RequestLog

    @property
    def host(self) -> str:
        return urlsplit(self.base).netloc

    def new_page(self) -> Any:
        page = self.context.new_page()
        page.set_default_timeout(30_000)
        return page

    def sign_in(self, page: Any, username: str, password: str) -> None:
        page.goto(f"{self.base}/login")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password or access token").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r"^(?!.*/login).*$"))


@pytest.fixture
def browse(chromium: Any) -> Iterator[Any]:
    """`browse(server)` opens a fresh context (its own cookies) on that server."""
    contexts: list[Any] = []

    def open_on(server: Any, viewport: dict[str, int] | None = None,
                color_scheme: str = "light") -> Browsing:
        context = chromium.new_context(viewport=viewport or DESKTOP, base_url=server.url,
                                       color_scheme=color_scheme)
        log = RequestLog()
        context.on("request", lambda request: log.urls.append(request.url))
        contexts.append(context)
        return Browsing(context, server.url, log)

    yield open_on
    for context in contexts:
        context.close()


def screenshot(page: Any, name: str) -> Path:
    """Write a full-page screenshot of `page` as tests/console/screenshots/NAME.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def accessibility_violations(page: Any, impacts: tuple[str, ...] = ("serious", "critical")
                             ) -> list[dict[str, Any]]:
    """axe-core's violations of the given impacts on the page as it is now."""
    if not AXE.exists():
        pytest.fail(f"axe-core is missing at {AXE}: `make test` installs it from npm")
    # Evaluated through the DevTools protocol: a <script> tag would be refused by the
    # console's Content-Security-Policy, as it should be.
    page.evaluate(AXE.read_text())
    result = page.evaluate("async () => JSON.stringify(await axe.run(document, "
                           "{resultTypes: ['violations']}))")
    violations = json.loads(result)["violations"]
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["target"] for n in v["nodes"]][:5]}
            for v in violations if v.get("impact") in impacts]
