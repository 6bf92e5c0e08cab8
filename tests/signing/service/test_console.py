"""The console's signing pages (headless Chromium against the real server): a namespace's
Signing keys page (add a public key, generate a server-held one, a bad key said on the form,
revoke), the instance's under Administration, and the manifest page's Signatures section
with **Sign with server key**, accessible like every other page."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import ADMIN_PASSWORD
from tests.signing.service.helpers import COSIGN, namespace, push_image, signatures
from tests.support.browser import accessibility_violations, browse, chromium  # noqa: F401
from tests.support.server import MoorageServer

pytestmark = [pytest.mark.slow]


def test_a_namespace_signing_keys_page_adds_generates_and_revokes(
        server: MoorageServer, browse) -> None:  # noqa: F811
    ns = namespace(server)
    b = browse(server)
    page = b.new_page()
    b.sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"{b.base}/namespaces/{ns}")
    page.locator("#signing-link a").click()
    expect(page.get_by_role("heading", name=f"Signing keys of {ns}", level=1)).to_be_visible()
    assert accessibility_violations(page) == []

    page.fill("#key-name", "upstream")
    page.fill("#key-pem", "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----")
    page.click("#add-key")
    expect(page.locator("#key-error")).to_contain_text("PEM")

    page.fill("#key-name", "upstream")
    page.fill("#key-pem", (COSIGN / "cosign.pub").read_text())
    page.click("#add-key")
    expect(page.locator('tr[data-key="upstream"]')).to_contain_text("trusted")

    page.fill("#key-name", "console-ci")
    page.check("#kind-generate")
    page.click("#add-key")
    expect(page.locator('tr[data-key="console-ci"]')).to_contain_text("held by the server")

    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke the key upstream").click()
    expect(page.locator('tr[data-key="upstream"] .key-status')).to_contain_text("revoked")


def test_the_instance_keys_page_is_in_administration(server: MoorageServer,
                                                     browse) -> None:  # noqa: F811
    b = browse(server)
    page = b.new_page()
    b.sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"{b.base}/admin")
    page.get_by_role("navigation", name="Administration").get_by_role(
        "link", name="Signing keys").click()
    expect(page.get_by_role("heading", name="Signing keys", level=1)).to_be_visible()
    expect(page.locator("#add-key")).to_be_visible()
    assert accessibility_violations(page) == []


def test_the_manifest_page_signs_with_a_server_key_and_shows_the_verification(
        server: MoorageServer, browse, tmp_path: Path) -> None:  # noqa: F811
    ns = namespace(server)
    repo = f"{ns}/web"
    digest = push_image(server, tmp_path, f"{repo}:1")
    b = browse(server)
    page = b.new_page()
    b.sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"{b.base}/namespaces/{ns}/signing")
    page.fill("#key-name", "release")
    page.check("#kind-generate")
    page.click("#add-key")
    expect(page.locator('tr[data-key="release"]')).to_be_visible()

    page.goto(f"{b.base}/repositories/{repo}/-/manifests/1")
    expect(page.get_by_role("heading", name="Signatures", level=2)).to_be_visible()
    expect(page.locator("#signature-status")).to_contain_text("Unsigned")
    page.select_option("#sign-key", f"{ns}/release")
    page.click("#sign-now")
    expect(page.locator("#signature-status")).to_contain_text("verified by release")
    expect(page.locator("#verdicts tbody tr")).to_have_count(2)
    assert signatures(server, repo, digest)["signers"] == ["release"]
    assert accessibility_violations(page) == []

    page.goto(f"{b.base}/repositories/{repo}")
    expect(page.locator('tr[data-tag="1"] td.signature')).to_contain_text("verified")


def test_keyless_identities_are_trusted_and_removed_on_the_keys_page(
        server: MoorageServer, browse) -> None:  # noqa: F811
    ns = namespace(server)
    subject, issuer = "release@example.org", "https://accounts.example.org"
    b = browse(server)
    page = b.new_page()
    b.sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"{b.base}/namespaces/{ns}/signing")
    expect(page.get_by_role("heading", name="Keyless identities", level=2)).to_be_visible()
    page.fill("#identity-subject", subject)
    page.fill("#identity-issuer", issuer)
    page.click("#add-identity")
    row = page.locator("#signing-identities tbody tr", has_text=subject)
    expect(row).to_contain_text(issuer)
    assert accessibility_violations(page) == []

    page.fill("#identity-subject", subject)  # the same identity twice: said on the form
    page.fill("#identity-issuer", issuer)
    page.click("#add-identity")
    expect(page.locator("#identity-error")).to_be_visible()
    expect(page.locator("#identity-subject")).to_have_value(subject)

    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Remove the identity {subject}").first.click()
    expect(page.locator("#signing-identities")).to_contain_text("No keyless identities yet.")
