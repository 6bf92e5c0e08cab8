"""The pull policy on a namespace's console page, in headless Chromium: an owner turns rules
on and exempts a robot, sees the API's refusal on the form (the unsigned rule without a
signing service), and the next pull follows; a developer sees no pull policy section."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.conftest import ROOMY, SECURED
from tests.support.browser import accessibility_violations, browse, chromium  # noqa: F401
from tests.support.server import MoorageServer
from tests.web.helpers import USER_PASSWORD, api, make_namespace, make_user


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    server = MoorageServer(tmp_path_factory.mktemp("pull-policy-console") / "data",
                           env={**SECURED, **ROOMY}).start()
    yield server
    server.stop()


def test_an_owner_sets_the_pull_policy(console_server: MoorageServer,
                                       browse) -> None:  # noqa: F811
    owner = make_user(console_server, "owner")[0]
    name = make_namespace(console_server)
    assert api(console_server, "PUT", f"/namespaces/{name}/members/{owner}",
               json={"role": "owner"}).status_code == 200
    assert api(console_server, "POST", f"/namespaces/{name}/robots",
               json={"name": "deployer"}).status_code == 201
    b = browse(console_server)
    page = b.new_page()
    b.sign_in(page, owner, USER_PASSWORD)
    page.goto(f"{b.base}/namespaces/{name}")
    section = page.locator("#pull-policy")
    expect(section.get_by_role("heading", name="Pull policy")).to_be_visible()
    expect(page.locator("#pull-policy-state")).to_contain_text("State: off")

    page.get_by_label("Block vulnerabilities at or above").select_option("high")
    page.get_by_label("Block images not scanned yet").check()
    section.get_by_label("deployer").check()
    if not api(console_server, "GET", f"/namespaces/{name}/pull-policy").json()[
            "signing_available"]:  # the API's refusal, on the form that asked, values kept
        page.get_by_label("Block images without a signature from a trusted key").check()
        page.get_by_role("button", name="Save pull policy").click()
        expect(page.locator("#pull-policy-error")).to_contain_text("needs the signing service")
        expect(page.get_by_label("Block vulnerabilities at or above")).to_have_value("high")
        page.get_by_label("Block images without a signature from a trusted key").uncheck()
    page.get_by_role("button", name="Save pull policy").click()
    expect(page.get_by_role("status")).to_contain_text(f"Pull policy of {name} saved.")
    expect(page.locator("#pull-policy-state")).to_contain_text("State: on")
    stored = api(console_server, "GET", f"/namespaces/{name}/pull-policy").json()
    assert stored["severity"] == "high" and stored["block_unscanned"]
    assert not stored["block_unsigned"] and stored["exempt_robots"] == ["deployer"]
    assert stored["updated_by"] == owner
    expect(page.get_by_label("Block vulnerabilities at or above")).to_have_value("high")
    expect(section.get_by_label("deployer")).to_be_checked()
    assert not accessibility_violations(page)

    page.get_by_label("Block vulnerabilities at or above").select_option("")
    page.get_by_label("Block images not scanned yet").uncheck()
    page.get_by_role("button", name="Save pull policy").click()
    expect(page.locator("#pull-policy-state")).to_contain_text("State: off")
    assert b.log.foreign(b.host) == []


def test_a_developer_sees_no_pull_policy(console_server: MoorageServer,
                                         browse) -> None:  # noqa: F811
    dev = make_user(console_server, "dev")[0]
    name = make_namespace(console_server)
    assert api(console_server, "PUT", f"/namespaces/{name}/members/{dev}",
               json={"role": "developer"}).status_code == 200
    b = browse(console_server)
    page = b.new_page()
    b.sign_in(page, dev, USER_PASSWORD)
    page.goto(f"{b.base}/namespaces/{name}")
    expect(page.get_by_role("heading", name=f"Namespace {name}")).to_be_visible()
    expect(page.locator("#pull-policy")).to_have_count(0)
