"""Webhooks in the console: create one to a real receiver, push with skopeo and watch the
delivery arrive without reloading, send tests, redeliver a failed delivery, edit, delete;
and what a user who manages no namespace sees."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.clients.tools import copy_in, require_tool
from tests.console.test_signin import csrf_of, sign_in
from tests.events.receiver import Receiver
from tests.support.browser import accessibility_violations, screenshot
from tests.support.images import random_image
from tests.support.server import MoorageServer

ADMIN = "admin"


def api(server: MoorageServer, password: str, method: str, path: str,
        auth: tuple[str, str] | None = None, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{server.url}/api/v1{path}",
                         auth=auth or (ADMIN, password), timeout=60, **kwargs)


def namespace(server: MoorageServer, password: str) -> str:
    name = f"hooks-{uuid.uuid4().hex[:8]}"
    made = api(server, password, "POST", "/namespaces", json={"name": name})
    assert made.status_code == 201, made.text
    return name


def push(server: MoorageServer, password: str, layout: Path, repo: str, tag: str,
         seed: int) -> None:
    random_image(layout, tag, layers=1, layer_size=4096, seed=seed)
    copy_in(f"oci:{layout}:{tag}", f"docker://{server.host}/{repo}:{tag}",
            "--dest-creds", f"{ADMIN}:{password}")


@pytest.fixture
def receiver() -> Any:
    hook = Receiver().start()
    yield hook
    hook.stop()


def nav(page: Any, label: str) -> Any:
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=label,
                                                                    exact=True)


def rows(page: Any, **where: str) -> Any:
    """Rows of the delivery history, by status and by text."""
    selector = "#deliveries tbody tr"
    if "status" in where:
        selector += f"[data-status={where['status']}]"
    found = page.locator(selector)
    if "text" in where:
        found = found.filter(has_text=where["text"])
    return found


def test_create_push_see_the_delivery_test_and_redeliver(
        console_server: MoorageServer, browse: Any, admin_password: str, receiver: Receiver,
        tmp_path: Path) -> None:
    require_tool("skopeo")
    server = console_server
    ns = namespace(server, admin_password)
    b = browse(server)
    page = b.new_page()
    b.sign_in(page, ADMIN, admin_password)

    nav(page, "Webhooks").click()
    expect(page.get_by_role("heading", name="Webhooks", level=1)).to_be_visible()
    assert nav(page, "Webhooks").get_attribute("aria-current") == "page"
    assert accessibility_violations(page) == []

    # Create: the form offers exactly the events and formats the API accepts.
    form = page.locator("form[action='/webhooks'][method='post']")
    assert sorted(form.locator("input[name='events[]']").evaluate_all(
        "els => els.map(e => e.value)")) == ["delete", "import", "pull", "pull.blocked", "push",
                                               "quota", "replication", "replication_rule",
                                               "scan", "signature", "signing_key",
                                               "subscription", "vulnerability"]
    form.get_by_label("Namespace", exact=True).select_option(ns)
    form.get_by_label("Receiver URL").fill(receiver.url)
    form.get_by_role("checkbox", name=re.compile("^delete")).check()
    form.get_by_label("Payload format").select_option("cloudevents")
    form.get_by_label("Signing secret (optional)").fill("console-secret")
    form.get_by_label("Description").fill("CI trigger")
    form.get_by_role("button", name="Create webhook").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"Webhook \d+"))
    hook_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    expect(page.get_by_role("status").first).to_contain_text(f"Webhook {hook_id} created")
    facts = page.locator("dl.facts").first
    expect(facts).to_contain_text("push, delete")
    expect(facts).to_contain_text("cloudevents")
    expect(facts).to_contain_text("yes (X-Moorage-Signature)")
    assert "console-secret" not in page.content()
    expect(rows(page)).to_have_text([re.compile("No delivery yet")])
    assert accessibility_violations(page) == []

    # A push from a terminal shows up in the open page, with the receiver's answer, without
    # a reload (a mark set in the window survives only if the page is the same).
    page.evaluate("window.moorageMark = 'same page'")
    push(server, admin_password, tmp_path / "layout", f"{ns}/app", "v1", seed=1)
    pushed = rows(page, status="delivered", text="push")
    expect(pushed).to_have_count(1, timeout=30_000)
    expect(pushed.locator("td.response")).to_have_text("HTTP 200")
    expect(pushed).to_contain_text("accepted")  # the start of the receiver's answer
    assert page.evaluate("window.moorageMark") == "same page"
    (got,) = receiver.received("push")
    assert got.signed_with("console-secret") and got.json()["type"] == "io.moorage.push"

    # A delivery that fails once stays pending, and the page follows it to delivered.
    receiver.answers = [500]
    push(server, admin_password, tmp_path / "layout", f"{ns}/app", "v2", seed=2)
    expect(rows(page, text="push")).to_have_count(2, timeout=30_000)
    retried = rows(page, status="delivered", text="push").first
    expect(retried.locator("td.num")).to_have_text("2", timeout=30_000)  # 500, then 200
    retried.locator("summary").click()
    expect(retried.locator("ol li")).to_have_count(2)
    expect(retried.locator("ol li").first).to_contain_text("HTTP 500")
    assert page.evaluate("window.moorageMark") == "same page"

    # Send test: delivered; then a receiver answering 500: not delivered, and why.
    page.get_by_role("button", name="Send test").click()
    expect(page.locator("#test-result")).to_contain_text("Delivered: HTTP 200")
    expect(rows(page, status="delivered", text="ping")).to_have_count(1)
    receiver.answers = [500]
    page.get_by_role("button", name="Send test").click()
    expect(page.locator("#test-result")).to_contain_text("Not delivered: HTTP 500")
    expect(page.locator("#test-result")).to_contain_text("receiver failure 500")
    failed = rows(page, status="failed", text="ping")
    expect(failed).to_have_count(1)
    expect(failed.locator("td.response")).to_have_text("HTTP 500")
    assert accessibility_violations(page) == []

    # The receiver is fixed (it answers 200 again): redeliver the failed ping.
    failed_id = failed.get_attribute("data-delivery")
    assert failed_id
    failed.get_by_role("button", name=re.compile("^Redeliver")).click()
    redelivered = rows(page, text=f"redelivery of {failed_id[:8]}")
    expect(redelivered).to_have_count(1)
    expect(redelivered).to_have_attribute("data-status", "delivered", timeout=30_000)
    expect(redelivered.locator("td.response")).to_have_text("HTTP 200")
    expect(rows(page, status="failed", text="ping")).to_have_count(1)  # the first stays failed
    pings = receiver.received("ping")
    assert pings[-1].body == pings[-2].body and pings[-1].delivery != pings[-2].delivery
    assert page.evaluate("window.moorageMark") == "same page"
    screenshot(page, "webhook-1280")

    # Edit: another URL check, events, off; the list says so.
    edit = page.locator(f"form[action='/webhooks/{hook_id}']")
    edit.get_by_role("checkbox", name=re.compile("^pull —")).check()
    edit.get_by_label("Enabled").uncheck()
    edit.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").first).to_have_text("Webhook saved.")
    facts = page.locator("dl.facts").first
    expect(facts).to_contain_text("push, delete, pull")
    expect(facts).to_contain_text("disabled")
    assert api(server, admin_password, "GET", f"/webhooks/{hook_id}").json()["enabled"] is False
    # Disabled: no redelivery is offered (the API would refuse it).
    expect(page.get_by_role("button", name=re.compile("^Redeliver"))).to_have_count(0)
    page.get_by_role("button", name="Enable", exact=True).click()
    expect(page.get_by_role("status").first).to_have_text(f"Webhook {hook_id} enabled.")

    nav(page, "Webhooks").click()
    listed = page.get_by_role("row").filter(has_text=receiver.url)
    expect(listed).to_contain_text(ns)
    expect(listed).to_contain_text("signed")
    screenshot(page, "webhooks-list-1280")

    # Delete, after a confirmation page.
    listed.get_by_role("link", name=f"Webhook {hook_id}").click()
    page.get_by_role("link", name="Delete…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Delete webhook {hook_id}?")
    assert accessibility_violations(page) == []
    page.get_by_role("button", name=f"Delete webhook {hook_id}").click()
    expect(page.get_by_role("status").first).to_contain_text(f"Webhook {hook_id} and its "
                                                             f"delivery history deleted")
    assert api(server, admin_password, "GET", f"/webhooks/{hook_id}").status_code == 404
    assert b.log.foreign(b.host) == []


def test_the_api_refusal_is_shown_on_the_form(console_server: MoorageServer, browse: Any,
                                              admin_password: str) -> None:
    ns = namespace(console_server, admin_password)
    b = browse(console_server)
    page = b.new_page()
    b.sign_in(page, ADMIN, admin_password)
    page.goto(f"{b.base}/webhooks")
    form = page.locator("form[action='/webhooks'][method='post']")
    form.get_by_label("Namespace", exact=True).select_option(ns)
    form.get_by_label("Receiver URL").fill("ftp://example.com/hook")
    form.get_by_label("Description").fill("kept")
    # The browser would refuse a non-http URL itself; the server must too.
    page.locator("#url").evaluate("el => el.type = 'text'")
    form.get_by_role("button", name="Create webhook").click()
    expect(page.get_by_role("alert")).to_contain_text("http:// or https://")
    assert page.get_by_label("Description").input_value() == "kept"
    assert page.get_by_label("Receiver URL").input_value() == "ftp://example.com/hook"
    assert accessibility_violations(page) == []
    assert b.log.foreign(b.host) == []


def test_a_developer_sees_no_webhook_and_cannot_forge_one(console_server: MoorageServer,
                                                         admin_password: str,
                                                         receiver: Receiver) -> None:
    ns = namespace(console_server, admin_password)
    user, password = f"dev-{uuid.uuid4().hex[:6]}", "developer-password-123"
    assert api(console_server, admin_password, "POST", "/users",
               json={"username": user, "password": password}).status_code == 201
    assert api(console_server, admin_password, "PUT", f"/namespaces/{ns}/members/{user}",
               json={"role": "developer"}).status_code in (200, 201)
    hook = api(console_server, admin_password, "POST", "/webhooks",
               json={"namespace": ns, "url": receiver.url, "events": ["push"]}).json()
    with httpx.Client(base_url=console_server.url) as client:
        sign_in(client, user, password)
        listing = client.get("/webhooks")
        assert listing.status_code == 200
        assert receiver.url not in listing.text
        assert "You manage no namespace" in listing.text
        csrf = csrf_of(listing.text)
        forged = client.post("/webhooks", data={"csrf_token": csrf, "namespace": ns,
                                                "url": receiver.url, "events[]": "push"})
        assert forged.status_code == 403
        assert client.get(f"/webhooks/{hook['id']}").status_code == 403
        assert client.post(f"/webhooks/{hook['id']}/test",
                           data={"csrf_token": csrf}).status_code == 403
        assert client.post(f"/webhooks/{hook['id']}/delete",
                           data={"csrf_token": csrf}).status_code == 403
    assert receiver.received() == []
    assert len(api(console_server, admin_password, "GET", "/webhooks",
                   params={"namespace": ns}).json()) == 1


def test_the_watch_for_new_deliveries_ends(console_server: MoorageServer, admin_password: str,
                                           receiver: Receiver) -> None:
    """While nothing is pending, the history only asks whether something new arrived (204:
    nothing), and stops asking a while after the user's last action, so that a tab left
    open does not keep its session alive; a button resumes the watch."""
    ns = namespace(console_server, admin_password)
    hook = api(console_server, admin_password, "POST", "/webhooks",
               json={"namespace": ns, "url": receiver.url, "events": ["push"]}).json()
    with httpx.Client(base_url=console_server.url, headers={"hx-request": "true"}) as client:
        sign_in(client, ADMIN, admin_password)
        page = client.get(f"/webhooks/{hook['id']}").text
        watch = re.search(r'hx-get="(/webhooks/\d+/deliveries\?known=none&amp;until=(\d+))"',
                          page)
        assert watch, page
        url = watch.group(1).replace("&amp;", "&")
        assert client.get(url).status_code == 204  # nothing new
        api(console_server, admin_password, "POST", f"/webhooks/{hook['id']}/test")
        news = client.get(url)  # the ping is new: the table comes back, watching on
        assert news.status_code == 200 and 'data-status="delivered"' in news.text
        assert 'hx-trigger="every 3s"' in news.text and "Watch again" not in news.text
        newest = re.search(r'data-delivery="([0-9a-f]+)"', news.text).group(1)
        ended = client.get(f"/webhooks/{hook['id']}/deliveries",
                           params={"known": newest, "until": "1000"})
        assert ended.status_code == 200
        assert "hx-trigger" not in ended.text and "Watch again" in ended.text
        resumed = client.get(f"/webhooks/{hook['id']}/deliveries")
        assert 'hx-trigger="every 3s"' in resumed.text
