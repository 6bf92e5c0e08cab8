"""The custom domains page in a real browser: an administrator pastes a pair and sees the
domain listed with its certificate's subject, names and expiry; a pair that does not name
the host is refused on the form in the API's words; a domain is removed."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from tests.support.browser import accessibility_violations, screenshot
from tests.support.certs import Authority
from tests.support.server import MoorageServer
from tests.web.helpers import api


def test_an_administrator_adds_lists_and_removes_a_domain(
        console_server: MoorageServer, browse, admin_password: str, tmp_path: Path) -> None:
    ca = Authority.make(tmp_path / "ca")
    host = "console.moorage.test"
    cert, key, _ = ca.issue("console", [host, f"www.{host}"])
    other_cert, other_key, _ = ca.issue("other", ["other.moorage.test"])
    b = browse(console_server)
    page = b.new_page()
    b.sign_in(page, "admin", admin_password)
    page.goto(f"{b.base}/admin")
    page.get_by_role("navigation", name="Administration").get_by_role("link",
                                                                      name="Domains").click()
    expect(page.get_by_role("heading", name="Custom domains")).to_be_visible()

    def add(cert_file: Path, key_file: Path) -> None:
        page.get_by_label("Host name").fill(host)
        page.get_by_label("Certificate (PEM").fill(cert_file.read_text())
        page.get_by_label("Private key (PEM").fill(key_file.read_text())
        page.get_by_role("button", name="Save domain").click()

    add(other_cert, other_key)
    expect(page.get_by_role("alert")).to_contain_text(f"the certificate does not name {host}")
    expect(page.get_by_label("Host name")).to_have_value(host)
    expect(page.get_by_label("Private key (PEM")).to_have_value("")  # never sent back
    assert not accessibility_violations(page)
    add(cert, key)
    expect(page.get_by_role("status")).to_contain_text(f"Domain {host} added")
    row = page.get_by_role("row").filter(has_text=host)
    expect(row).to_contain_text(f"www.{host}")
    expect(row).to_contain_text(ca_expiry(cert))
    assert [d["host"] for d in api(console_server, "GET", "/domains").json()] == [host]
    assert not accessibility_violations(page)
    screenshot(page, "domains-1280")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=f"Remove the domain {host}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Domain {host} removed.")
    assert api(console_server, "GET", "/domains").json() == []


def ca_expiry(cert: Path) -> str:
    """The certificate's last day, as the page shows it (YYYY-MM-DD, UTC)."""
    from cryptography import x509

    return f"{x509.load_pem_x509_certificate(cert.read_bytes()).not_valid_after_utc:%Y-%m-%d}"
