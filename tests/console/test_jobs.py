"""Jobs pages: garbage collection from the console (a dry run that lists what would go, then
the real run), a job page that follows its job without reloading, the job list with its
filters and pages; a guest sees no GC control and a forged post is refused by the API."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.clients.tools import copy_in, require_tool
from tests.conftest import ROOMY, SECURED
from tests.console.test_rules import admin_api, new_namespace
from tests.console.test_signin import csrf_of, sign_in
from tests.support.browser import accessibility_violations, screenshot
from tests.support.images import random_image
from tests.support.server import MoorageServer

GUEST_PASSWORD = "guest-password-for-tests"


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    """The console's instance, without the nightly GC schedule: the collections here are the
    tests' own. The grace period stays the default (an hour): the tests give theirs, 0, in
    the form, as an operator would."""
    server = MoorageServer(tmp_path_factory.mktemp("console-jobs") / "data",
                           env={**SECURED, **ROOMY, "MOORAGE_GC_SCHEDULE": ""},
                           extra_args=["--workers", "2"]).start()
    yield server
    server.stop()


def blob_file(server: MoorageServer, digest: str) -> Path:
    hexpart = digest.partition(":")[2]
    return Path(server.data_dir) / "blobs" / "sha256" / hexpart[:2] / hexpart


def garbage(server: MoorageServer, password: str, tmp_path: Path) -> tuple[str, list[str]]:
    """Push an image with skopeo and delete its manifest: the manifest digest and its
    layer digests, which nothing references any more."""
    require_tool("skopeo")
    ns = new_namespace(server, password, "gc")
    layout = tmp_path / "layout"
    digest = random_image(layout, "doomed", layers=2, layer_size=32 * 1024,
                          seed=uuid.uuid4().int % 10_000)
    copy_in(f"oci:{layout}:doomed", f"docker://{server.host}/{ns}/app:doomed",
            "--dest-creds", f"admin:{password}")
    manifest = httpx.get(f"{server.url}/v2/{ns}/app/manifests/{digest}", auth=("admin", password),
                         headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert manifest.status_code == 200, manifest.text
    layers = [layer["digest"] for layer in manifest.json()["layers"]]
    gone = httpx.delete(f"{server.url}/v2/{ns}/app/manifests/{digest}", auth=("admin", password))
    assert gone.status_code == 202, gone.text
    return digest, layers


def test_gc_dry_run_then_real_run_followed_live(console_server: MoorageServer, browse,
                                                admin_password: str, tmp_path: Path) -> None:
    manifest, layers = garbage(console_server, admin_password, tmp_path)
    b = browse(console_server)
    page = b.new_page()
    b.sign_in(page, "admin", admin_password)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Jobs").click()
    page.wait_for_url(re.compile(r".*/jobs$"))
    page.get_by_label("Grace period").fill("0")
    page.get_by_role("button", name="Start GC dry run").click()
    page.wait_for_url(re.compile(r".*/jobs/\d+$"))
    dry_url = page.url
    page.evaluate("window.notReloaded = true")  # gone if the page reloads
    page.wait_for_selector("#job-status >> text=succeeded")
    assert page.evaluate("window.notReloaded === true"), "followed without a reload"
    result = page.locator("#job-live").inner_text()
    assert "Would delete" in result and manifest in result
    for layer in layers:
        row = page.locator("#gc-blobs tr", has_text=layer)
        assert re.search(r"\d+(\.\d)? KiB", row.inner_text()), "each blob with its size"
        assert "/app" in page.locator("#gc-links tr", has_text=layer).inner_text()
        assert blob_file(console_server, layer).exists(), "a dry run deletes nothing"
    assert not accessibility_violations(page)
    screenshot(page, "job-1280")

    page.get_by_role("button", name="Collect for real").click()
    page.wait_for_url(re.compile(r".*/jobs/\d+$"))
    assert page.url != dry_url
    page.evaluate("window.notReloaded = true")
    page.wait_for_selector("#job-status >> text=succeeded")
    assert page.evaluate("window.notReloaded === true")
    assert "Deleted" in page.locator("#job-live").inner_text()
    for layer in layers:
        assert not blob_file(console_server, layer).exists(), "the real run freed the bytes"
    assert page.get_by_role("button", name="Collect for real").count() == 0
    assert not accessibility_violations(page)

    page.goto(f"{b.base}/jobs")
    rows = page.locator("table#jobs tbody tr")
    assert rows.count() >= 2 and "gc" in rows.first.inner_text()
    assert "succeeded" in rows.first.inner_text()
    assert not accessibility_violations(page)
    screenshot(page, "jobs-1280")
    assert b.log.foreign(b.host) == []


def test_job_list_filters_and_pages(console_server: MoorageServer, browse,
                                    admin_password: str) -> None:
    ns = new_namespace(console_server, admin_password, "many")
    rule = admin_api(console_server, admin_password, "POST", "/retention",
                     json={"scope": ns, "keep_last": 5})
    assert rule.status_code == 201, rule.text
    queued = [admin_api(console_server, admin_password, "POST",
                        f"/retention/{rule.json()['id']}/run", json={"dry_run": True})
              for _ in range(51)]
    assert all(q.status_code == 202 for q in queued)
    ids = sorted((q.json()["id"] for q in queued), reverse=True)

    b = browse(console_server)
    page = b.new_page()
    b.sign_in(page, "admin", admin_password)
    page.goto(f"{b.base}/jobs")
    page.get_by_label("Type").select_option("retention")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r".*/jobs\?.*type=retention"))
    links = page.locator("table#jobs tbody tr td:first-child a")
    first_page = [int(t) for t in links.all_inner_texts()]
    assert first_page == ids[:50]
    assert all("retention" in t for t in page.locator("table#jobs tbody tr td:nth-child(2)")
               .all_inner_texts())
    page.get_by_role("link", name="Older →").click()
    page.wait_for_url(re.compile(r".*before=\d+"))
    assert [int(t) for t in links.all_inner_texts()] == ids[50:]
    assert page.get_by_role("link", name="← Newest").is_visible()
    assert page.get_by_label("Type").input_value() == "retention", "the filter stays"
    assert not accessibility_violations(page)

    page.goto(f"{b.base}/jobs?status=failed&type=retention")
    assert "No job matches the filter" in page.locator("table#jobs").inner_text()

    page.goto(f"{b.base}/jobs/{ids[0]}")
    page.wait_for_selector("#job-status >> text=succeeded")
    assert page.locator("table.decisions").count() == 0, "no repository: no table"
    assert "No repository is covered by the rule" in page.locator("#job-live").inner_text()
    assert not accessibility_violations(page)


def test_a_guest_sees_no_gc_control_and_a_forged_post_is_refused(
        console_server: MoorageServer, browse, admin_password: str) -> None:
    name = f"guest-{uuid.uuid4().hex[:8]}"
    made = admin_api(console_server, admin_password, "POST", "/users",
                     json={"username": name, "password": GUEST_PASSWORD})
    assert made.status_code == 201, made.text
    gc_jobs = lambda: admin_api(console_server, admin_password, "GET", "/jobs",  # noqa: E731
                                params={"type": "gc"}).json()
    before = gc_jobs()
    b = browse(console_server)
    page = b.new_page()
    b.sign_in(page, name, GUEST_PASSWORD)
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Jobs").count() == 0
    answer = page.goto(f"{b.base}/jobs")
    assert answer is not None and answer.status == 403
    assert page.get_by_role("button", name=re.compile("GC|Collect")).count() == 0
    assert not accessibility_violations(page)

    with httpx.Client(base_url=console_server.url) as client:
        sign_in(client, name, GUEST_PASSWORD)
        csrf = csrf_of(client.get("/rules").text)
        for dry_run in ("true", "false"):
            forged = client.post("/jobs/gc", data={"csrf_token": csrf, "dry_run": dry_run,
                                                   "grace": "0"})
            assert forged.status_code == 403, forged.text
        assert client.get("/jobs/1").status_code == 403
    assert gc_jobs() == before, "no collection was queued"
    assert b.log.foreign(b.host) == []
