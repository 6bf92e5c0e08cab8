"""Rules pages: immutability and retention rules in a real browser against `moorage serve`;
a retention rule previewed (what would go and why the rest stays), then applied, checked on
the registry API; a guest sees no control and a forged post is refused by the API."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients.tools import copy_in, require_tool
from tests.console.test_signin import csrf_of, sign_in
from tests.support.browser import accessibility_violations, screenshot
from tests.support.images import random_image
from tests.support.server import MoorageServer

GUEST_PASSWORD = "guest-password-for-tests"


def admin_api(server: MoorageServer, password: str, method: str, path: str,
              **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{server.url}/api/v1{path}", auth=("admin", password),
                         timeout=60, **kwargs)


def new_namespace(server: MoorageServer, password: str, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    made = admin_api(server, password, "POST", "/namespaces", json={"name": name})
    assert made.status_code == 201, made.text
    return name


def push_tags(server: MoorageServer, password: str, tmp_path: Path, repo: str,
              tags: list[str]) -> None:
    """Each tag a different image, pushed one after the other with skopeo (so the last tag
    is the newest by push time)."""
    require_tool("skopeo")
    layout = tmp_path / "layout"
    for seed, tag in enumerate(tags):
        random_image(layout, tag, layers=1, layer_size=4096, seed=seed + 1)
        copy_in(f"oci:{layout}:{tag}", f"docker://{server.host}/{repo}:{tag}",
                "--dest-creds", f"admin:{password}")


def tags_of(server: MoorageServer, password: str, repo: str) -> list[str]:
    """The repository's tags as a registry client sees them (a bearer token, as clients do)."""
    token = httpx.get(f"{server.url}/auth/token", auth=("admin", password),
                      params={"service": "moorage", "scope": f"repository:{repo}:pull"})
    assert token.status_code == 200, token.text
    listed = httpx.get(f"{server.url}/v2/{repo}/tags/list",
                       headers={"Authorization": f"Bearer {token.json()['token']}"})
    assert listed.status_code == 200, listed.text
    return sorted(listed.json().get("tags") or [])


def rule_row(page: Any, table: str, rule_id: int) -> Any:
    return page.locator(f"#{table}-rules tr#{table}-{rule_id}")


def test_retention_rule_preview_says_why_and_apply_deletes(
        console_server: MoorageServer, browse, admin_password: str, tmp_path: Path) -> None:
    ns = new_namespace(console_server, admin_password, "keep")
    repo = f"{ns}/app"
    push_tags(console_server, admin_password, tmp_path, repo, ["one", "two", "three"])

    b = browse(console_server)
    page = b.new_page()
    b.sign_in(page, "admin", admin_password)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Rules").click()
    page.wait_for_url(re.compile(r".*/rules$"))
    form = page.locator("form[action='/rules/retention']")
    form.get_by_label("Namespace").select_option(ns)
    form.get_by_label("Keep last").fill("1")
    form.get_by_role("button", name="Add retention rule").click()
    page.wait_for_url(re.compile(r".*/rules$"))
    flash = page.get_by_role("status").filter(has_text="Added retention rule").inner_text()
    rule_id = int(re.search(r"Added retention rule (\d+)", flash).group(1))  # type: ignore[union-attr]
    row = rule_row(page, "retention", rule_id)
    assert "keep the newest 1" in row.inner_text()
    assert not accessibility_violations(page)
    screenshot(page, "rules-1280")

    row.get_by_role("button", name=f"Preview retention rule {rule_id}").click()
    page.wait_for_url(re.compile(rf".*/rules/retention/{rule_id}/runs/\d+$"))
    preview_url = page.url
    page.evaluate("window.notReloaded = true")  # gone if the page reloads
    page.wait_for_selector("#run-status >> text=succeeded")
    assert page.evaluate("window.notReloaded === true"), "the result came without a reload"
    going = {r.locator("code").inner_text(): r.inner_text()
             for r in page.locator("table.decisions tr.going").all()}
    staying = {r.locator("code").inner_text(): r.inner_text()
               for r in page.locator("table.decisions tr.staying").all()}
    assert set(going) == {"one", "two"} and set(staying) == {"three"}
    assert all("would go" in text and "beyond the newest 1" in text for text in going.values())
    assert "stays" in staying["three"] and "among the newest 1" in staying["three"]
    assert tags_of(console_server, admin_password, repo) == ["one", "three", "two"], \
        "a preview deletes nothing"
    assert not accessibility_violations(page)
    screenshot(page, "retention-preview-1280")

    page.get_by_role("button", name=re.compile(r"^Apply")).click()
    page.wait_for_url(re.compile(rf".*/rules/retention/{rule_id}/runs/\d+$"))
    assert page.url != preview_url
    page.wait_for_selector("#run-status >> text=succeeded")
    deleted = {r.locator("code").inner_text() for r in page.locator("table.decisions tr.going").all()}
    assert deleted == {"one", "two"}
    assert "deleted" in page.locator("table.decisions tr.going").first.inner_text()
    assert not accessibility_violations(page)
    assert tags_of(console_server, admin_password, repo) == ["three"]
    assert b.log.foreign(b.host) == []


def test_immutability_rule_added_edited_disabled_enabled_and_deleted(
        console_server: MoorageServer, browse, admin_password: str) -> None:
    ns = new_namespace(console_server, admin_password, "imm")
    b = browse(console_server)
    page = b.new_page()
    b.sign_in(page, "admin", admin_password)
    page.goto(f"{b.base}/rules?namespace={ns}")
    form = page.locator("form[action='/rules/immutability']")
    form.get_by_label("Namespace").select_option(ns)
    form.get_by_label("Repositories").fill("apps/*")
    form.get_by_label("Protected tags").fill("v*")
    form.get_by_role("button", name="Add immutability rule").click()
    page.wait_for_url(re.compile(r".*/rules$"))
    listed = admin_api(console_server, admin_password, "GET", "/immutability",
                       params={"namespace": ns}).json()
    assert [(r["scope"], r["tag_pattern"], r["enabled"]) for r in listed] == \
        [(f"{ns}/apps/*", "v*", True)]
    rule_id = listed[0]["id"]

    def state() -> dict[str, Any]:
        return next(r for r in admin_api(console_server, admin_password, "GET",
                                         "/immutability").json() if r["id"] == rule_id)

    row = rule_row(page, "immutability", rule_id)
    row.get_by_role("button", name=f"Disable immutability rule {rule_id}").click()
    page.get_by_role("status").filter(has_text="is disabled").wait_for()
    assert "disabled" in rule_row(page, "immutability", rule_id).inner_text()
    assert state()["enabled"] is False
    rule_row(page, "immutability", rule_id).get_by_role(
        "button", name=f"Enable immutability rule {rule_id}").click()
    page.get_by_role("status").filter(has_text="is enabled").wait_for()
    assert state()["enabled"] is True

    rule_row(page, "immutability", rule_id).get_by_role(
        "link", name=f"Edit immutability rule {rule_id}").click()
    page.wait_for_url(re.compile(rf".*/rules/immutability/{rule_id}$"))
    assert not accessibility_violations(page)
    page.get_by_label("Except").fill("*-dev")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r".*/rules$"))
    assert (state()["id"], state()["exclude_pattern"]) == (rule_id, "*-dev"), "edited in place"

    rule_row(page, "immutability", rule_id).get_by_role(
        "link", name=f"Delete immutability rule {rule_id}").click()
    page.wait_for_url(re.compile(rf".*/rules/immutability/{rule_id}/delete$"))
    assert not accessibility_violations(page)
    page.get_by_role("button", name="Delete the rule").click()
    page.wait_for_url(re.compile(r".*/rules$"))
    assert all(r["id"] != rule_id for r in admin_api(console_server, admin_password, "GET",
                                                     "/immutability").json())
    assert b.log.foreign(b.host) == []


def test_retention_rule_edited_disabled_and_enabled_in_place(
        console_server: MoorageServer, browse, admin_password: str) -> None:
    ns = new_namespace(console_server, admin_password, "edit")
    made = admin_api(console_server, admin_password, "POST", "/retention",
                     json={"scope": ns, "keep_last": 1, "older_than": "30d",
                           "schedule": "0 4 * * *"})
    assert made.status_code == 201, made.text
    rule_id = made.json()["id"]

    def state() -> dict[str, Any]:
        return admin_api(console_server, admin_password, "GET", "/retention",
                         params={"namespace": ns}).json()[0]

    b = browse(console_server)
    page = b.new_page()
    b.sign_in(page, "admin", admin_password)
    page.goto(f"{b.base}/rules?namespace={ns}")
    rule_row(page, "retention", rule_id).get_by_role(
        "link", name=f"Edit retention rule {rule_id}").click()
    page.wait_for_url(re.compile(rf".*/rules/retention/{rule_id}$"))
    assert page.get_by_label("Older than").input_value() == "30d", "as people write it"
    assert not accessibility_violations(page)
    page.get_by_label("Keep last").fill("2")
    page.get_by_label("Schedule (cron)").fill("")
    page.get_by_label("Untagged manifests go too").check()
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r".*/rules$"))
    rule = state()
    assert (rule["id"], rule["keep_last"], rule["older_than_seconds"], rule["schedule"],
            rule["untagged"]) == (rule_id, 2, 30 * 86400, None, True)

    page.goto(f"{b.base}/rules?namespace={ns}")
    rule_row(page, "retention", rule_id).get_by_role(
        "button", name=f"Disable retention rule {rule_id}").click()
    page.get_by_role("status").filter(has_text="is disabled").wait_for()
    assert page.locator("#filter-namespace").input_value() == ns, "the namespace shown stays"
    assert state()["enabled"] is False
    assert "disabled" in rule_row(page, "retention", rule_id).inner_text()
    rule_row(page, "retention", rule_id).get_by_role(
        "button", name=f"Enable retention rule {rule_id}").click()
    page.get_by_role("status").filter(has_text="is enabled").wait_for()
    assert state()["enabled"] is True

    rule_row(page, "retention", rule_id).get_by_role(
        "link", name=f"Edit retention rule {rule_id}").click()
    page.get_by_label("Older than").fill("soon")
    page.get_by_role("button", name="Save").click()
    assert "older_than" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("Older than").input_value() == "soon", "what was typed stays"
    assert state()["keep_last"] == 2, "a refused edit changes nothing"
    assert not accessibility_violations(page)


def test_an_invalid_rule_is_refused_on_the_form(console_server: MoorageServer, browse,
                                                admin_password: str) -> None:
    ns = new_namespace(console_server, admin_password, "bad")
    b = browse(console_server)
    page = b.new_page()
    b.sign_in(page, "admin", admin_password)
    page.goto(f"{b.base}/rules")
    form = page.locator("form[action='/rules/retention']")
    form.get_by_label("Namespace").select_option(ns)
    form.get_by_label("Schedule (cron)").fill("0 0 31 2 *")
    form.get_by_role("button", name="Add retention rule").click()
    alert = page.locator("form[action='/rules/retention']").get_by_role("alert")
    assert "invalid cron expression" in alert.inner_text()
    assert page.locator("form[action='/rules/retention']").get_by_label(
        "Schedule (cron)").input_value() == "0 0 31 2 *", "what was typed stays"
    assert admin_api(console_server, admin_password, "GET", "/retention",
                     params={"namespace": ns}).json() == []
    assert not accessibility_violations(page)


@pytest.fixture
def guest(console_server: MoorageServer, admin_password: str) -> tuple[str, str, dict[str, int]]:
    """A user who is a guest in a namespace with one rule of each kind."""
    ns = new_namespace(console_server, admin_password, "seen")
    name = f"guest-{uuid.uuid4().hex[:8]}"
    made = admin_api(console_server, admin_password, "POST", "/users",
                     json={"username": name, "password": GUEST_PASSWORD})
    assert made.status_code == 201, made.text
    role = admin_api(console_server, admin_password, "PUT", f"/namespaces/{ns}/members/{name}",
                     json={"role": "guest"})
    assert role.status_code == 200, role.text
    rules = {kind: admin_api(console_server, admin_password, "POST", f"/{kind}",
                             json={"scope": ns, "tag_pattern": "v*"}).json()["id"]
             for kind in ("immutability", "retention")}
    return name, ns, rules


def test_a_guest_sees_the_rules_without_controls_and_a_forged_post_is_refused(
        console_server: MoorageServer, browse, guest: tuple[str, str, dict[str, int]]) -> None:
    name, ns, rules = guest
    b = browse(console_server)
    page = b.new_page()
    b.sign_in(page, name, GUEST_PASSWORD)
    page.goto(f"{b.base}/rules?namespace={ns}")
    for kind, rule_id in rules.items():
        row = rule_row(page, kind, rule_id)
        assert "view only" in row.inner_text()
        assert row.get_by_role("button").count() == 0
    assert page.locator("form[action='/rules/retention']").count() == 0
    assert page.locator("form[action='/rules/immutability']").count() == 0
    assert not accessibility_violations(page)
    assert page.goto(f"{b.base}/rules/retention/{rules['retention']}").status == 403

    with httpx.Client(base_url=console_server.url) as client:
        sign_in(client, name, GUEST_PASSWORD)
        csrf = csrf_of(client.get("/rules").text)
        forged = {
            f"/rules/retention/{rules['retention']}/preview": {},
            f"/rules/retention/{rules['retention']}/apply": {},
            f"/rules/immutability/{rules['immutability']}/state": {"enabled": "false"},
            f"/rules/immutability/{rules['immutability']}/delete": {},
            f"/rules/retention/{rules['retention']}": {"keep_last": "0"},
            "/rules/immutability": {"namespace": ns, "tag_pattern": "*"},
        }
        for path, fields in forged.items():
            answer = client.post(path, data={"csrf_token": csrf, **fields})
            assert answer.status_code == 403, (path, answer.status_code)
    assert {r["id"] for r in httpx.get(f"{console_server.url}/api/v1/immutability",
                                       auth=(name, GUEST_PASSWORD)).json()} \
        == {rules["immutability"]}, "nothing changed"
    assert b.log.foreign(b.host) == []


def test_a_maintainer_manages_and_previews_the_rules_of_their_namespace(
        console_server: MoorageServer, browse, admin_password: str) -> None:
    """Not an administrator: the controls show for the namespace they maintain only, and
    the preview's result (a job, which the API lets rule managers read) is theirs to see."""
    mine = new_namespace(console_server, admin_password, "mine")
    other = new_namespace(console_server, admin_password, "other")
    name = f"maint-{uuid.uuid4().hex[:8]}"
    assert admin_api(console_server, admin_password, "POST", "/users",
                     json={"username": name, "password": GUEST_PASSWORD}).status_code == 201
    for ns, role in ((mine, "maintainer"), (other, "guest")):
        assert admin_api(console_server, admin_password, "PUT", f"/namespaces/{ns}/members/{name}",
                         json={"role": role}).status_code == 200
    theirs = admin_api(console_server, admin_password, "POST", "/retention",
                       json={"scope": other, "keep_last": 1}).json()["id"]

    b = browse(console_server)
    page = b.new_page()
    b.sign_in(page, name, GUEST_PASSWORD)
    page.goto(f"{b.base}/rules")
    form = page.locator("form[action='/rules/retention']")
    assert form.get_by_label("Namespace").locator("option").all_inner_texts() == [mine]
    assert "view only" in rule_row(page, "retention", theirs).inner_text()
    form.get_by_label("Keep last").fill("3")
    form.get_by_role("button", name="Add retention rule").click()
    page.wait_for_url(re.compile(r".*/rules$"))
    rule_id = admin_api(console_server, admin_password, "GET", "/retention",
                        params={"namespace": mine}).json()[0]["id"]
    rule_row(page, "retention", rule_id).get_by_role(
        "button", name=f"Preview retention rule {rule_id}").click()
    page.wait_for_selector("#run-status >> text=succeeded")
    assert "No repository is covered by the rule" in page.locator("#run-live").inner_text()
    assert not accessibility_violations(page)
    job_url = page.url.replace(f"/retention/{rule_id}/", f"/retention/{theirs}/")
    assert page.goto(job_url).status == 404, "a run is shown under its own rule only"
