"""The CVE allowlist on a namespace's console page, in headless Chromium: an owner accepts an
advisory (with an expiry), sees a refusal in the API's words on the form, removes it; a guest
sees the list and no control, and a form it forges is refused."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import ROOMY, SECURED
from tests.console.test_signin import csrf_of, sign_in
from tests.support.browser import accessibility_violations, browse, chromium  # noqa: F401
from tests.support.server import MoorageServer
from tests.web.helpers import USER_PASSWORD, api, make_namespace, make_user


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    server = MoorageServer(tmp_path_factory.mktemp("allowlist-console") / "data",
                           env={**SECURED, **ROOMY}).start()
    yield server
    server.stop()


def test_an_owner_accepts_and_removes_an_advisory(console_server: MoorageServer,
                                                  browse) -> None:  # noqa: F811
    owner = make_user(console_server, "owner")[0]
    name = make_namespace(console_server)
    assert api(console_server, "PUT", f"/namespaces/{name}/members/{owner}",
               json={"role": "owner"}).status_code == 200
    b = browse(console_server)
    page = b.new_page()
    b.sign_in(page, owner, USER_PASSWORD)
    page.goto(f"{b.base}/namespaces/{name}")
    section = page.locator("#cve-allowlist")
    expect(section.get_by_role("heading", name="CVE allowlist")).to_be_visible()
    expect(section).to_contain_text("No accepted advisories.")

    page.get_by_label("Advisory id").fill("not an id")
    page.get_by_label("Reason").fill("checked")
    page.get_by_role("button", name="Accept advisory").click()
    expect(page.locator("#allowlist-error")).to_contain_text("is not an advisory id")
    expect(page.get_by_label("Reason")).to_have_value("checked")  # the form is kept

    page.get_by_label("Advisory id").fill("CVE-2021-44228")
    page.get_by_label("Reason").fill("JNDI lookups are disabled")
    page.get_by_label("Expires on").fill("2999-06-30")
    page.get_by_role("button", name="Accept advisory").click()
    expect(page.get_by_role("status")).to_contain_text(f"CVE-2021-44228 is accepted in {name}.")
    row = page.get_by_role("row").filter(has_text="CVE-2021-44228")
    expect(row).to_contain_text("JNDI lookups are disabled")
    expect(row).to_contain_text(owner)
    [stored] = api(console_server, "GET", f"/namespaces/{name}/cve-allowlist").json()
    assert stored["expires_at"] == "2999-06-30T00:00:00Z" and not stored["expired"]
    assert not accessibility_violations(page)

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Remove CVE-2021-44228 from the allowlist").click()
    expect(page.get_by_role("status")).to_contain_text("CVE-2021-44228 is no longer accepted")
    assert api(console_server, "GET", f"/namespaces/{name}/cve-allowlist").json() == []
    assert b.log.foreign(b.host) == []


def test_a_guest_sees_the_list_without_controls(console_server: MoorageServer,
                                                browse) -> None:  # noqa: F811
    guest = make_user(console_server, "guest")[0]
    name = make_namespace(console_server)
    assert api(console_server, "PUT", f"/namespaces/{name}/members/{guest}",
               json={"role": "guest"}).status_code == 200
    assert api(console_server, "POST", f"/namespaces/{name}/cve-allowlist",
               json={"id": "CVE-2020-1747", "reason": "old", "expires_at": "2020-01-01T00:00:00Z"}
               ).status_code == 201
    b = browse(console_server)
    page = b.new_page()
    b.sign_in(page, guest, USER_PASSWORD)
    page.goto(f"{b.base}/namespaces/{name}")
    row = page.get_by_role("row").filter(has_text="CVE-2020-1747")
    expect(row).to_contain_text("(expired)")
    expect(page.get_by_role("button", name=re.compile("Accept advisory|Remove"))).to_have_count(0)
    with httpx.Client(base_url=console_server.url, timeout=120) as client:
        sign_in(client, guest, USER_PASSWORD)
        csrf = csrf_of(client.get(f"/namespaces/{name}").text)
        forged = client.post(f"/namespaces/{name}/cve-allowlist",
                             data={"csrf_token": csrf, "id": "CVE-2021-1", "reason": "x"})
        assert forged.status_code == 403, forged.text
        removed = client.post(f"/namespaces/{name}/cve-allowlist/CVE-2020-1747/remove",
                              data={"csrf_token": csrf})
        assert removed.status_code == 403, removed.text
    assert [e["id"] for e in api(console_server, "GET",
                                 f"/namespaces/{name}/cve-allowlist").json()] == ["CVE-2020-1747"]
