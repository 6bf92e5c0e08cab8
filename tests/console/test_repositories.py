"""The repository pages in a real browser: find an image pushed with skopeo, see its
platforms, size, lock and last pull, copy its pull command, open its manifest (layers,
config, referrers), and page through tags; what a user may not pull stays out of sight."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from moorage.web.console.filters import size as shown_size
from tests.clients.tools import copy_in
from tests.conftest import ADMIN_PASSWORD
from tests.console.test_signin import sign_in
from tests.support.browser import DESKTOP, PHONE, accessibility_violations, screenshot
from tests.support.images import layout_manifest, multiarch_image, random_image
from tests.support.server import MoorageServer
from tests.web.helpers import ADMIN, OCI_MANIFEST, api, grant, make_user, push_image
from tests.web.test_repository_browsing import artifact

CREDS = f"admin:{ADMIN_PASSWORD}"


@dataclass
class Shop:
    """What the module's server holds: shop/web with an image, an index and referrers."""

    image: str
    image_size: int
    index: str
    sbom: str
    signature: str
    outsider: tuple[str, str]
    guest: tuple[str, str]


def _manifest(server: MoorageServer, repo: str, reference: str) -> httpx.Response:
    return httpx.get(f"{server.url}/v2/{repo}/manifests/{reference}", auth=ADMIN,
                     headers={"Accept": f"{OCI_MANIFEST}, "
                                        "application/vnd.oci.image.index.v1+json"})


@pytest.fixture(scope="module")
def shop(console_server: MoorageServer, tmp_path_factory: pytest.TempPathFactory) -> Shop:
    server = console_server
    for name in ("shop", "other"):
        assert api(server, "POST", "/namespaces", json={"name": name}).status_code == 201
    layout = tmp_path_factory.mktemp("layout")
    random_image(layout, "1.0", layers=2, layer_size=256 * 1024, seed=7)
    index = multiarch_image(layout, "multi")
    copy_in(f"oci:{layout}:1.0", f"docker://{server.host}/shop/web:1.0", "--dest-creds", CREDS)
    copy_in(f"oci:{layout}:multi", f"docker://{server.host}/shop/web:multi", "--all",
            "--dest-creds", CREDS)
    image, manifest = layout_manifest(layout, "1.0")
    image_size = manifest["config"]["size"] + sum(x["size"] for x in manifest["layers"])
    push_image(server, "shop/api", "latest")
    push_image(server, "other/tools", "v1")

    pulled = _manifest(server, "shop/web", "1.0")  # a pull by tag: "last pulled" moves
    assert pulled.status_code == 200
    sbom = artifact(server, "shop/web", (image, len(pulled.content), OCI_MANIFEST),
                    "application/spdx+json", b'{"spdxVersion": "SPDX-2.3", "name": "web"}')
    sbom_size = len(_manifest(server, "shop/web", sbom).content)
    signature = artifact(server, "shop/web", (sbom, sbom_size, OCI_MANIFEST),
                         "application/vnd.cncf.notary.signature", b"signature bytes")
    assert api(server, "POST", "/immutability",
               json={"scope": "shop/**", "tag_pattern": "1.*"}).status_code == 201
    deadline = time.monotonic() + 60  # the last pull is written off the request path
    while time.monotonic() < deadline:
        tags = api(server, "GET", "/repositories/shop/web/tags", params={"q": "1.0"}).json()
        if tags[0]["pulled_at"]:
            break
        time.sleep(0.1)
    outsider, guest = make_user(server, "walker"), make_user(server, "guest")
    grant(server, "shop", guest[0], "guest")
    return Shop(image, image_size, index, sbom, signature, outsider, guest)


def test_find_an_image_see_its_platforms_and_size_and_copy_its_pull_command(
        console_server: MoorageServer, shop: Shop, browse, admin_password: str) -> None:
    b = browse(console_server)
    b.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=b.base)
    page = b.new_page()
    b.sign_in(page, "admin", admin_password)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Repositories").click()
    expect(page.get_by_role("heading", name="Repositories", level=1)).to_be_visible()
    listed = page.locator("#repositories tbody tr")
    for name in ("shop/web", "shop/api", "other/tools"):
        expect(page.locator("#repositories")).to_contain_text(name)
    assert accessibility_violations(page) == []
    screenshot(page, "repositories-1280")

    page.get_by_label("Search by name").fill("web")  # htmx: the table alone, as one types
    expect(listed).to_have_count(1)
    expect(page.locator("#repo-count")).to_contain_text("of 1 matching")
    expect(page).to_have_url(re.compile(r"/repositories\?q=web"))
    page.get_by_role("link", name="shop/web").click()

    expect(page.get_by_role("heading", name="shop/web", level=1)).to_be_visible()
    multi = page.locator('#tags tr[data-tag="multi"]')
    expect(multi).to_contain_text("index")
    expect(multi).to_contain_text("linux/amd64")
    expect(multi).to_contain_text("linux/arm64/v8")
    release = page.locator('#tags tr[data-tag="1.0"]')
    expect(release).to_contain_text(shown_size(shop.image_size))
    expect(release).to_contain_text("immutable")
    expect(release.locator("td").nth(6)).not_to_contain_text("never")  # last pulled
    expect(release.locator("code")).to_have_text(shop.image[:19])
    digest_copy = release.get_by_role("button", name=re.compile("^Copy digest"))
    assert digest_copy.get_attribute("data-copy") == shop.image

    pull = page.get_by_role("region", name="Pull")
    copy = pull.get_by_role("button", name=re.compile("^Copy pull command"))
    command = f"podman pull {b.host}/shop/web:multi"  # the newest tag, at the browser's host
    assert copy.get_attribute("data-copy") == command
    assert accessibility_violations(page) == []
    screenshot(page, "repository-1280")
    copy = pull.locator(f'button[data-copy="{command}"]')  # its name says "Copied" a moment
    copy.click()
    expect(copy).to_have_attribute("data-copied", "true")
    assert page.evaluate("navigator.clipboard.readText()") == command

    page.locator("#tags").get_by_role("link", name="1.0", exact=True).click()
    expect(page.get_by_role("heading", name="shop/web:1.0", level=1)).to_be_visible()
    expect(page.locator("#layers tbody tr")).to_have_count(2)
    expect(page.locator("#total-size")).to_contain_text(shown_size(shop.image_size))
    expect(page.locator("#config")).to_contain_text("/bin/true")
    expect(page.locator("#config")).to_contain_text("linux/amd64")
    expect(page.locator("#env")).to_contain_text("PATH=/usr/local/sbin")
    expect(page.locator("#history tbody tr")).to_have_count(2)
    sbom = page.locator('li.referrer[data-kind="sbom"]')
    expect(sbom).to_contain_text("application/spdx+json")
    expect(sbom.locator('li.referrer[data-kind="signature"]')).to_contain_text(
        "application/vnd.cncf.notary.signature")
    manifest_pull = page.get_by_role("region", name="Pull")
    assert manifest_pull.get_by_role("button", name=re.compile("^Copy pull by digest")) \
        .get_attribute("data-copy") == f"podman pull {b.host}/shop/web@{shop.image}"
    assert accessibility_violations(page) == []
    screenshot(page, "manifest-1280")

    sbom.get_by_role("link").first.click()  # the SBOM's own page: it refers to the image
    expect(page.get_by_role("heading", level=1)).to_contain_text(shop.sbom[:19])
    expect(page.get_by_text("Refers to")).to_be_visible()
    assert accessibility_violations(page) == []

    page.goto(f"{b.base}/repositories/shop/web/-/manifests/multi")
    children = page.locator("#children tbody tr")
    expect(children).to_have_count(2)
    expect(children.nth(1)).to_contain_text("linux/arm64/v8")
    assert accessibility_violations(page) == []
    screenshot(page, "manifest-index-1280")
    children.nth(1).get_by_role("link").click()
    expect(page.locator("#config")).to_contain_text("linux/arm64/v8")
    expect(page.get_by_text("Part of")).to_be_visible()
    assert b.log.foreign(b.host) == []


@pytest.mark.parametrize("viewport,width", [(DESKTOP, "1280"), (PHONE, "390")])
def test_the_pages_at_desktop_and_phone_widths(console_server: MoorageServer, shop: Shop,
                                               browse, admin_password: str, viewport: Any,
                                               width: str) -> None:
    b = browse(console_server, viewport)
    page = b.new_page()
    b.sign_in(page, "admin", admin_password)
    for path, name in (("/repositories", "repositories"),
                       ("/repositories/shop/web", "repository"),
                       (f"/repositories/shop/web/-/manifests/{shop.image}", "manifest")):
        page.goto(f"{b.base}{path}")
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        assert accessibility_violations(page) == [], path
        if width == "390":
            screenshot(page, f"{name}-390")
    assert b.log.foreign(b.host) == []


def test_tags_come_in_pages(console_server: MoorageServer, shop: Shop, browse,
                            admin_password: str) -> None:
    server = console_server
    push_image(server, "shop/many", "t-00")
    body = _manifest(server, "shop/many", "t-00").content
    for i in range(1, 53):  # the same manifest under 52 more tags
        put = httpx.put(f"{server.url}/v2/shop/many/manifests/t-{i:02d}", auth=ADMIN,
                        content=body, headers={"Content-Type": OCI_MANIFEST})
        assert put.status_code == 201, put.text
    b = browse(server)
    page = b.new_page()
    b.sign_in(page, "admin", admin_password)
    page.goto(f"{b.base}/repositories/shop/many?sort=name")
    rows = page.locator("#tags tbody tr")
    expect(rows).to_have_count(50)
    expect(page.locator("#tag-count")).to_contain_text("Tags 1–50 of 53")
    page.get_by_role("link", name="Next →").click()
    expect(rows).to_have_count(3)
    expect(rows.first).to_have_attribute("data-tag", "t-50")
    page.get_by_label("Search tags").fill("t-1")
    expect(rows).to_have_count(10)
    expect(page.locator("#tag-count")).to_contain_text("of 10 matching")


def test_what_a_user_may_not_pull_stays_out_of_sight(console_server: MoorageServer,
                                                     shop: Shop) -> None:
    with httpx.Client(base_url=console_server.url) as client:
        sign_in(client, *shop.outsider)
        listed = client.get("/repositories")
        assert listed.status_code == 200 and "shop/web" not in listed.text
        assert "shop/web" not in client.get("/repositories", params={"q": "web"}).text
        for path in ("/repositories/shop/web", "/repositories/shop/web/-/manifests/1.0",
                     f"/repositories/shop/web/-/manifests/{shop.image}"):
            refused = client.get(path)
            assert refused.status_code == 404, path
            assert shop.image not in refused.text
    with httpx.Client(base_url=console_server.url) as client:
        sign_in(client, *shop.guest)
        assert "shop/web" in client.get("/repositories").text
        assert "other/tools" not in client.get("/repositories").text
        shown = client.get("/repositories/shop/web")
        assert shown.status_code == 200 and shop.image in shown.text


def test_the_search_box_gets_the_table_alone(console_server: MoorageServer, shop: Shop,
                                             admin_password: str) -> None:
    with httpx.Client(base_url=console_server.url) as client:
        sign_in(client, "admin", admin_password)
        whole = client.get("/repositories", params={"q": "web"})
        alone = client.get("/repositories", params={"q": "web"}, headers={"HX-Request": "true"})
        assert "<html" in whole.text and "<html" not in alone.text
        assert 'id="repositories"' in alone.text and "shop/web" in alone.text
        assert "shop/api" not in alone.text
        assert re.fullmatch(r"page;dur=[0-9.]+", alone.headers["server-timing"])
        tags = client.get("/repositories/shop/web", params={"q": "mul"},
                          headers={"HX-Request": "true"})
        assert "<html" not in tags.text and 'data-tag="multi"' in tags.text
        assert 'data-tag="1.0"' not in tags.text
        missing = client.get("/repositories/shop/web/-/manifests/nope")
        assert missing.status_code == 404
        bad = client.get("/repositories/shop/web/-/manifests/")
        assert bad.status_code == 404

