"""OpenID Connect sign-in against a real provider (npm `oidc-provider`), as a user does it:
the console's "Sign in with …" button in headless Chromium, the provider's own login and
consent pages, back to the console signed in; then a CLI secret (a personal access token
made in the console) with podman, since podman cannot follow a browser.

The group → namespace role mapping is made with the access store directly (the group-roles
API is another helper's work and not on main yet); everything else goes through Moorage's
API, console and clients.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.cli.conftest import Cli
from tests.clients.tools import ContainerStore, unique_repo
from tests.conftest import ADMIN_PASSWORD, ROOMY, SECURED
from tests.support.browser import (Browsing, accessibility_violations, browse,  # noqa: F401
                                   chromium, screenshot)
from tests.support.images import busybox_image, layout_manifest
from tests.support.oidc_provider import Account, OidcProvider
from tests.support.server import MoorageServer, free_port

ADMIN = ("admin", ADMIN_PASSWORD)
DISPLAY = "Example SSO"
NAMESPACE = "team-a"


@pytest.fixture(scope="module")
def provider_and_server(tmp_path_factory: pytest.TempPathFactory
                        ) -> Iterator[tuple[OidcProvider, MoorageServer]]:
    port = free_port()
    provider = OidcProvider(
        [f"http://127.0.0.1:{port}/sso/oidc/callback"],
        {"alice": Account("Alice Liddell", "alice@example.test", ["team-a-devs", "staff"]),
         "olga": Account("Olga Admin", "olga@example.test", ["moorage-admins"]),
         "admin": Account("Not the admin", "other@example.test", []),
         "carol": Account("Carol", "carol@example.test", [])}).start()
    server = MoorageServer(
        tmp_path_factory.mktemp("oidc") / "data", port=port,
        env={**SECURED, **ROOMY, **provider.settings(
            MOORAGE_OIDC_DISPLAY_NAME=DISPLAY, MOORAGE_OIDC_ADMIN_GROUPS="moorage-admins",
            MOORAGE_LOG_LEVEL="debug", MOORAGE_ACCESS_LOG="true")},
        extra_args=["--workers", "2"])
    try:
        server.start()
    except BaseException:
        provider.stop()
        raise
    created = api(server, "POST", "/namespaces", json={"name": NAMESPACE})
    assert created.status_code == 201, created.text
    mapped = api(server, "POST", "/sso/group-roles",
                 json={"group": "team-a-devs", "namespace": NAMESPACE, "role": "developer"})
    assert mapped.status_code == 201, mapped.text
    yield provider, server
    server.stop()
    provider.stop()


@pytest.fixture
def provider(provider_and_server: tuple[OidcProvider, MoorageServer]) -> OidcProvider:
    return provider_and_server[0]


@pytest.fixture
def server(provider_and_server: tuple[OidcProvider, MoorageServer]) -> MoorageServer:
    return provider_and_server[1]


def api(server: MoorageServer, method: str, path: str, auth: tuple[str, str] | None = ADMIN,
        **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{server.url}/api/v1{path}", auth=auth, timeout=60, **kwargs)


def loopback_only(browsing: Browsing) -> None:
    """The provider's development pages @import a web font; nothing leaves the machine."""
    def route(r: Any) -> None:
        if urlsplit(r.request.url).hostname in ("127.0.0.1", "localhost"):
            r.continue_()
        else:
            r.abort()
    browsing.context.route("**/*", route)


def sso_sign_in(page: Any, server: MoorageServer, login: str, next_path: str = "") -> None:
    """From the console's sign-in page, through the provider's login and consent pages."""
    page.goto(f"{server.url}/login" + (f"?next={next_path}" if next_path else ""))
    page.get_by_role("link", name=f"Sign in with {DISPLAY}").click()
    page.wait_for_url(re.compile(r"/interaction/"))
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any password the dev pages accept")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(rf"^{re.escape(server.url)}/(?!sso/|login)"))


def test_sign_in_through_the_provider_provisions_the_account_with_its_groups_roles(
        server: MoorageServer, browse: Any) -> None:
    browsing = browse(server)
    loopback_only(browsing)
    page = browsing.new_page()
    page.goto(f"{server.url}/login")
    # the password form is still there, next to the button
    assert page.get_by_label("Password or access token").count() == 1
    screenshot(page, "oidc-sign-in")
    assert accessibility_violations(page) == []
    sso_sign_in(page, server, "alice", next_path="/namespaces")

    assert urlsplit(page.url).path == "/namespaces"
    assert page.locator(".who").inner_text().strip() == "alice"
    user = api(server, "GET", "/users/alice").json()
    assert user["source"] == "oidc"
    assert user["is_admin"] is False
    members = api(server, "GET", f"/namespaces/{NAMESPACE}/members").json()
    assert {"username": "alice", "kind": "user", "role": "developer"} in members

    # a member of the configured administrator group is made an administrator
    admin_page = browse(server)
    loopback_only(admin_page)
    olga = admin_page.new_page()
    sso_sign_in(olga, server, "olga")
    assert "admin" in olga.locator(".who").inner_text()
    assert api(server, "GET", "/users/olga").json()["is_admin"] is True


def test_cli_secret_from_the_console_works_with_podman_and_a_password_is_refused_with_the_hint(
        server: MoorageServer, browse: Any, tmp_path: Path) -> None:
    browsing = browse(server)
    loopback_only(browsing)
    page = browsing.new_page()
    sso_sign_in(page, server, "alice")
    page.goto(f"{server.url}/account/tokens")
    note = page.locator("#cli-secret-note")
    assert "CLI secret" in note.inner_text() and "podman" in note.inner_text()
    screenshot(page, "oidc-account-tokens")
    assert accessibility_violations(page) == []
    page.get_by_label("Token name").fill("laptop")
    page.get_by_role("button", name="Create token").click()
    secret = page.locator("#token-secret").inner_text().strip()
    assert secret.startswith("mrg_p_")

    store = ContainerStore("podman", tmp_path / "podman", "vfs")
    try:
        src = tmp_path / "src"
        busybox_image(src, "v1")
        _, manifest = layout_manifest(src, "v1")
        image_id = manifest["config"]["digest"].removeprefix("sha256:")
        ref = f"{server.host}/{NAMESPACE}/{unique_repo('sso')}:v1"
        authfile = tmp_path / "auth.json"
        store("pull", "--quiet", f"oci:{src}:v1")
        store("login", "--tls-verify=false", "--authfile", str(authfile), "-u", "alice",
              "--password-stdin", server.host, input=secret)
        store("push", "--quiet", "--tls-verify=false", "--authfile", str(authfile), image_id,
              f"docker://{ref}")
        store("rmi", "--force", image_id)
        store("pull", "--quiet", "--tls-verify=false", "--authfile", str(authfile), ref)
        assert image_id in store("images", "--format", "{{.ID}}", "--no-trunc").text

        refused = store("login", "--tls-verify=false", "--authfile", str(tmp_path / "b.json"),
                        "-u", "alice", "--password-stdin", server.host,
                        input="not-a-cli-secret", check=False)
        assert refused.returncode != 0
    finally:
        store.cleanup()
    # the console's password form says the same
    with httpx.Client(timeout=60) as client:
        form = client.get(f"{server.url}/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf is not None
        said = client.post(f"{server.url}/login", data={
            "csrf_token": csrf.group(1), "next": "/", "username": "alice",
            "password": "not-a-cli-secret"})
        assert said.status_code == 401 and "CLI secret" in said.text
    # what the registry says to that password: wrong, and what to use instead
    answer = httpx.get(f"{server.url}/auth/token", params={"service": "moorage"},
                       auth=("alice", "not-a-cli-secret"), timeout=60)
    assert answer.status_code == 401
    assert "CLI secret" in answer.text and "personal access token" in answer.text


def test_a_denied_consent_comes_back_as_a_clear_error(server: MoorageServer,
                                                      browse: Any) -> None:
    browsing = browse(server)
    loopback_only(browsing)
    page = browsing.new_page()
    page.goto(f"{server.url}/login")
    page.get_by_role("link", name=f"Sign in with {DISPLAY}").click()
    page.wait_for_url(re.compile(r"/interaction/"))
    page.get_by_role("link", name="[ Cancel ]").click()
    page.wait_for_url(re.compile(r"/sso/oidc/callback"))
    error = page.get_by_role("alert").inner_text()
    assert "did not sign you in" in error and "access_denied" in error
    # the password form on the same page still signs the local administrator in
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password or access token").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(re.compile(rf"^{re.escape(server.url)}/(?!sso/|login)"))
    assert "admin" in page.locator(".who").inner_text()


def test_a_local_account_of_the_same_name_is_not_taken_over_until_switched(
        server: MoorageServer, browse: Any) -> None:
    browsing = browse(server)
    loopback_only(browsing)
    page = browsing.new_page()
    page.goto(f"{server.url}/login")
    page.get_by_role("link", name=f"Sign in with {DISPLAY}").click()
    page.locator("input[name=login]").fill("admin")
    page.locator("input[name=password]").fill("whatever")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(r"/sso/oidc/callback"))
    error = page.get_by_role("alert").inner_text()
    assert "signs in with a local password" in error
    assert "moorage user source admin oidc" in error
    assert api(server, "GET", "/users/admin").json()["source"] == "local"

    # an administrator switches a local account to single sign-on in the console; then it
    # signs in so
    made = api(server, "POST", "/users", json={"username": "carol",
                                                "password": "carol-local-password-1"})
    assert made.status_code == 201, made.text
    admin = browse(server)
    admin_page = admin.new_page()
    admin.sign_in(admin_page, "admin", ADMIN_PASSWORD)
    admin_page.goto(f"{server.url}/admin/users/carol")
    assert admin_page.locator("#account-source").inner_text() == "local password"
    admin_page.get_by_label("Signs in with").select_option("oidc")
    admin_page.get_by_role("button", name="Switch source").click()
    admin_page.wait_for_url(re.compile(r"/admin/users/carol$"))
    assert admin_page.locator("#account-source").inner_text() == \
        "single sign-on (OpenID Connect)"
    assert accessibility_violations(admin_page) == []
    assert api(server, "GET", "/users/carol").json()["source"] == "oidc"
    carol = browse(server)
    loopback_only(carol)
    carol_page = carol.new_page()
    sso_sign_in(carol_page, server, "carol")
    assert carol_page.locator(".who").inner_text().strip() == "carol"


def test_next_to_another_host_is_not_followed(server: MoorageServer, browse: Any) -> None:
    browsing = browse(server)
    loopback_only(browsing)
    page = browsing.new_page()
    page.goto(f"{server.url}/sso/oidc/start?next=//evil.example/steal")
    page.wait_for_url(re.compile(r"/interaction/"))
    page.locator("input[name=login]").fill("alice")
    page.locator("input[name=password]").fill("x")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(rf"^{re.escape(server.url)}/(?!sso/|login)"))
    assert urlsplit(page.url).netloc == server.host
    assert urlsplit(page.url).path == "/"
    assert not [u for u in browsing.log.urls if "evil.example" in urlsplit(u).netloc]


def test_info_advertises_the_sign_in_and_no_secret_reaches_the_log(
        server: MoorageServer, provider: OidcProvider, browse: Any, tmp_path: Path) -> None:
    info = httpx.get(f"{server.url}/api/v1/info", timeout=60).json()
    assert info["single_sign_on"] == [{"kind": "oidc", "display_name": DISPLAY,
                                "url": "/sso/oidc/start"}]
    document = httpx.get(f"{server.url}/api/v1/openapi.json", auth=ADMIN, timeout=60).json()
    assert "SignInMethod" in document["components"]["schemas"]
    cli = Cli(server, tmp_path / "config")
    assert cli.login().code == 0
    shown = cli.ok("info")
    assert "single sign-on" in shown and DISPLAY in shown

    browsing = browse(server)
    loopback_only(browsing)
    page = browsing.new_page()
    sso_sign_in(page, server, "alice")
    codes = [parse_qs(urlsplit(u).query)["code"][0] for u in browsing.log.urls
             if urlsplit(u).path == "/sso/oidc/callback" and "code=" in u]
    assert codes
    cookies = {c["name"]: c["value"] for c in browsing.context.cookies()}
    log = server.log_path.read_text(errors="replace")
    for secret in (provider.client_secret, *codes, cookies["moorage_session"]):
        assert secret not in log
