"""Installs OpenID Connect sign-in when `oidc_issuer` is set: called from app.py only.

It makes "oidc" a source an administrator may switch accounts to, tells a refused password
that single sign-on accounts use a CLI secret with clients, gives the Provisioner the
administrator groups, and (install_pages) adds the console's button and callback. Nothing
is fetched from the provider here: discovery happens on the first sign-in, so a provider
that is down does not stop Moorage from starting.
"""

from __future__ import annotations

from moorage.access.authentication import Authenticator
from moorage.access.identity import parse_admin_groups
from moorage.access.management import AccessManager
from moorage.settings import Settings
from moorage.sso.oidc import OidcClient, OidcConfig
from moorage.sso.oidc_console import OidcPages, OidcSignIn
from moorage.sso.oidc_state import StateSealer
from moorage.web.console.site import ConsoleSite

PASSWORD_HINT = ("; accounts that sign in with single sign-on use a CLI secret (a personal "
                 "access token from the console's Account page) as the password with "
                 "docker, podman and other clients")


def install(settings: Settings, authenticator: Authenticator, manager: AccessManager,
            state_key: bytes) -> OidcSignIn | None:
    if not settings.oidc_issuer:
        return None
    config = OidcConfig(
        issuer=settings.oidc_issuer, client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret, scopes=settings.oidc_scopes,
        username_claim=settings.oidc_username_claim or "preferred_username",
        groups_claim=settings.oidc_groups_claim or "groups", ca_file=settings.oidc_ca_file,
        timeout_seconds=float(settings.oidc_timeout_seconds),
        display_name=settings.oidc_display_name or "single sign-on")
    manager.sources.add("oidc")
    authenticator.password_hint = PASSWORD_HINT
    admins = parse_admin_groups(settings.oidc_admin_groups)
    if admins:
        authenticator.provisioner.admin_groups["oidc"] = admins
    return OidcSignIn(OidcClient(config), StateSealer(state_key), authenticator,
                      settings.public_url)


def install_pages(site: ConsoleSite, sign_in: OidcSignIn) -> None:
    OidcPages(sign_in, site).install()
