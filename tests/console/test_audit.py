"""The audit log in the console: filter by actor and action, page through it, download the
export of the same selection, verify the chain; closed to non-administrators, and on an
edition without it, the API's words."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.conftest import ADMIN_PASSWORD, ROOMY, SECURED
from tests.console.test_signin import sign_in
from tests.support.browser import accessibility_violations, screenshot
from tests.support.server import MoorageServer

ADMIN = "admin"
CHANGES = 12  # namespaces the test's own administrator creates: more than a page of 10


def api(server: MoorageServer, auth: tuple[str, str], method: str, path: str,
        **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{server.url}/api/v1{path}", auth=auth, timeout=60, **kwargs)


def make_user(server: MoorageServer, password: str, is_admin: bool) -> tuple[str, str]:
    user = (f"auditor-{uuid.uuid4().hex[:8]}", "auditor-password-123")
    made = api(server, (ADMIN, password), "POST", "/users",
               json={"username": user[0], "password": user[1], "is_admin": is_admin})
    assert made.status_code == 201, made.text
    return user


def nav(page: Any, label: str) -> Any:
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=label,
                                                                    exact=True)


def column(page: Any, name: str) -> list[str]:
    return [t.strip() for t in page.locator(f"table.audit-entries tbody td.{name}")
            .all_inner_texts()]


def ids(page: Any) -> list[int]:
    return [int(i) for i in page.locator("table.audit-entries tbody tr")
            .evaluate_all("rows => rows.map(r => r.dataset.id)")]


def test_filter_page_export_and_verify(console_server: MoorageServer, browse: Any,
                                       admin_password: str) -> None:
    server = console_server
    actor = make_user(server, admin_password, is_admin=True)
    for _ in range(CHANGES):
        made = api(server, actor, "POST", "/namespaces",
                   json={"name": f"audited-{uuid.uuid4().hex[:8]}"})
        assert made.status_code == 201, made.text
    # A change of another kind by the same actor, which the action filter leaves out.
    assert api(server, actor, "POST", "/tokens",
               json={"name": "ci", "expires_in_days": 1}).status_code == 201

    b = browse(server)
    page = b.new_page()
    b.sign_in(page, ADMIN, admin_password)
    nav(page, "Audit log").click()
    expect(page.get_by_role("heading", name="Audit log", level=1)).to_be_visible()
    expect(page.locator("table.audit-entries tbody tr").first).to_be_visible()
    expect(page.get_by_text("complete", exact=True)).to_be_visible()
    assert accessibility_violations(page) == []
    screenshot(page, "audit-1280")

    # By actor: every entry is theirs, the token included.
    page.get_by_label("Actor").fill(actor[0])
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("table.audit-entries tbody tr")).to_have_count(CHANGES + 1)
    assert set(column(page, "actor")) == {actor[0]}
    assert "token.create" in column(page, "action")

    # And by action, a prefix: the namespace changes only, ten to a page.
    page.get_by_label("Action").fill("namespace.*")
    page.get_by_label("Per page").select_option("10")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("table.audit-entries tbody tr")).to_have_count(10)
    assert set(column(page, "action")) == {"namespace.create"}
    assert set(column(page, "actor")) == {actor[0]}
    first_page = ids(page)
    assert first_page == sorted(first_page, reverse=True)  # newest first
    assert accessibility_violations(page) == []

    page.get_by_role("link", name="Older →").click()
    expect(page.locator("table.audit-entries tbody tr")).to_have_count(CHANGES - 10)
    second_page = ids(page)
    assert max(second_page) < min(first_page)
    assert set(column(page, "action")) == {"namespace.create"}
    expect(page.get_by_role("link", name="Older →")).to_have_count(0)  # the last page
    assert page.get_by_label("Actor").input_value() == actor[0]  # the filters stay
    page.get_by_role("link", name="← Newer").click()
    expect(page.locator("table.audit-entries tbody tr")).to_have_count(10)
    assert ids(page) == first_page

    # The export: the same selection, every page of it, as JSON lines, oldest first.
    with page.expect_download() as waiting:
        page.get_by_role("link", name="Export as JSON lines").click()
    download = waiting.value
    assert re.fullmatch(r"moorage-audit-\d{8}-\d{6}\.jsonl", download.suggested_filename)
    lines = Path(download.path()).read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert [e["id"] for e in entries] == sorted(first_page + second_page)
    for entry in entries:
        assert entry["actor"] == actor[0] and entry["action"] == "namespace.create"
        assert entry["result"] == "success" and len(entry["hash"]) == 64
        assert {"prev_hash", "timestamp", "target", "detail"} <= set(entry)

    # An entry's actor is a link to their entries.
    page.get_by_label("Action").fill("")
    page.get_by_role("button", name="Apply filters").click()
    page.locator("table.audit-entries td.actor a").first.click()
    expect(page.get_by_label("Actor")).to_have_value(actor[0])

    # Verification of the chain, shown in the page.
    page.get_by_role("button", name="Verify the chain").click()
    result = page.locator("#verify-result")
    expect(result).to_contain_text("intact")
    expect(result).to_contain_text("The chain is intact")
    checked = int(re.search(r"(\d+) entries checked", result.inner_text()).group(1))
    assert checked >= CHANGES + 1
    last_hash = result.locator("button.copy").get_attribute("data-copy")
    assert last_hash and re.fullmatch(r"[0-9a-f]{64}", last_hash)
    assert accessibility_violations(page) == []
    # Without script, the verification is a page of its own.
    page.goto(f"{b.base}/audit/verify")
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit log verification")
    expect(page.locator("main")).to_contain_text("The chain is intact")
    assert accessibility_violations(page) == []
    assert b.log.foreign(b.host) == []


def test_a_filter_the_api_cannot_read_is_said_on_the_form(console_server: MoorageServer,
                                                          admin_password: str) -> None:
    with httpx.Client(base_url=console_server.url) as client:
        sign_in(client, ADMIN, admin_password)
        answer = client.get("/audit", params={"since": "last tuesday", "actor": "x"})
        assert answer.status_code == 400
        assert "since: expected epoch seconds" in answer.text
        assert 'value="last tuesday"' in answer.text  # kept for correcting
        refused = client.get("/audit/export", params={"until": "soon"})
        assert refused.status_code == 400 and "until:" in refused.text
        assert "attachment" not in refused.headers.get("content-disposition", "")


def test_only_administrators_read_it(console_server: MoorageServer,
                                     admin_password: str) -> None:
    user = make_user(console_server, admin_password, is_admin=False)
    with httpx.Client(base_url=console_server.url) as client:
        sign_in(client, *user)
        overview = client.get("/")
        assert 'href="/audit"' not in overview.text.split("</nav>")[0]
        for path in ("/audit", "/audit/export", "/audit/verify"):
            refused = client.get(path)
            assert refused.status_code == 403, path
            assert "open to administrators only" in refused.text


def test_an_edition_without_the_audit_log_says_so(tmp_path: Path) -> None:
    server = MoorageServer(tmp_path / "data", env={**SECURED, **ROOMY,
                                                   "MOORAGE_EDITION": "personal"}).start()
    try:
        with httpx.Client(base_url=server.url) as client:
            sign_in(client, ADMIN, ADMIN_PASSWORD)
            page = client.get("/audit")
            assert page.status_code == 403
            said = api(server, (ADMIN, ADMIN_PASSWORD), "GET", "/audit").json()["error"]
            assert said["code"] == "EDITION"
            assert said["message"] in page.text.replace("&#39;", "'")
    finally:
        server.stop()


def test_the_export_is_streamed_through_in_pieces() -> None:
    """The console reads the API's export as it is produced (ApiCaller.stream): every piece
    arrives, in order, while the API is still writing (it waits for the reader, so a log of
    millions of lines never sits in memory); a reader that stops early stops the API too."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    from moorage.access.principal import ANONYMOUS as nobody
    from moorage.web.console.apicall import ApiCaller

    produced: list[int] = []
    ended: list[bool] = []

    async def lines(count: int) -> Any:
        try:
            for i in range(count):
                produced.append(i)
                yield f"{i}\n".encode()
                await asyncio.sleep(0)
        finally:
            ended.append(True)

    async def export(request: Any) -> StreamingResponse:
        return StreamingResponse(lines(int(request.query_params["count"])),
                                 media_type="application/x-ndjson")

    caller = ApiCaller(Starlette(routes=[Route("/export", export)]))
    origin = {"type": "http", "headers": [], "client": ("127.0.0.1", 1)}

    async def read_all() -> bytes:
        answer, body = await caller.stream(origin, nobody, "GET", "/export",
                                           query={"count": 5000})
        assert answer.status == 200 and body is not None
        pieces = [piece async for piece in body]
        assert len(pieces) == 5000
        return b"".join(pieces)

    async def read_some() -> int:
        answer, body = await caller.stream(origin, nobody, "GET", "/export",
                                           query={"count": 100000})
        assert body is not None
        async for piece in body:
            if piece == b"10\n":
                break
        await body.aclose()  # type: ignore[attr-defined]
        assert ended == [True]  # the API's generator was closed, not left waiting
        return len(produced)

    def run(coroutine: Any) -> Any:
        # A thread of its own: Playwright's sync API may hold this thread's event loop.
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, coroutine).result()

    everything = run(read_all())
    assert everything == b"".join(f"{i}\n".encode() for i in range(5000))
    # A page's ordinary call gets such an answer whole too.
    whole = run(caller(origin, nobody, "GET", "/export", query={"count": 3000}))
    assert whole.body == b"".join(f"{i}\n".encode() for i in range(3000))
    produced.clear()
    ended.clear()
    made = run(read_some())
    assert made < 100  # the queue is bounded: the API got no further than a few pieces ahead
