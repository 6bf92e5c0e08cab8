"""The console's "Sign in with …" button: `/sso/oidc/start` sends the browser to the provider,
`/sso/oidc/callback` (the redirect URI registered at the provider) comes back with a code.

Both are served without a session (ConsoleSite.public_get). Whatever goes wrong (the
provider down or answering garbage, a denied consent, a forged or stale answer, an account
of the same name that signs in another way) ends on the sign-in page with a message that
says so, and the password form on that page keeps working. The callback makes the console
session exactly as a password sign-in does (ConsoleSite.start_session), then goes on to
where the user was going: a path of this site only.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from moorage.access.authentication import Authenticator, unusable
from moorage.access.errors import AccessError
from moorage.access.identity import SignInUnavailable
from moorage.access.network import address_text
from moorage.registry.events import Event
from moorage.sso.oidc import OidcClient, SignInRefused
from moorage.sso.oidc_state import COOKIE, LIFETIME_SECONDS, PendingSignIn, StateSealer
from moorage.web.auth import RegistryAccess
from moorage.web.console.site import ConsoleSite, SignInLink, safe_next

log = logging.getLogger("moorage.sso")

START_PATH = "/sso/oidc/start"
CALLBACK_PATH = "/sso/oidc/callback"
COOKIE_PATH = "/sso/oidc"
MAX_CODE_CHARS = 4096
MAX_STATE_CHARS = 512


@dataclass
class OidcSignIn:
    """The feature as installed: the provider's client, the state sealer, and where the
    provider sends browsers back to."""

    client: OidcClient
    sealer: StateSealer
    authenticator: Authenticator
    public_url: str = ""

    start_path = START_PATH

    @property
    def display_name(self) -> str:
        return self.client.config.display_name

    def redirect_uri(self, access: RegistryAccess, site: ConsoleSite, request: Request) -> str:
        """`<public_url>/sso/oidc/callback`, or the host and scheme the browser used."""
        if self.public_url:
            return self.public_url.rstrip("/") + CALLBACK_PATH
        base = access.realm(request.scope).removesuffix("/auth/token")
        if site.secure(request.scope) and base.startswith("http://"):
            base = "https://" + base[len("http://"):]
        return base + CALLBACK_PATH


class OidcPages:
    def __init__(self, sign_in: OidcSignIn, site: ConsoleSite) -> None:
        self.sign_in = sign_in
        self.site = site
        self.access = site.access

    def install(self) -> None:
        self.site.public_get(START_PATH, self._guarded(self.start))
        self.site.public_get(CALLBACK_PATH, self._guarded(self.callback))
        self.site.sign_in_links.append(
            SignInLink(f"Sign in with {self.sign_in.display_name}", START_PATH))

    async def start(self, request: Request) -> Response:
        target = safe_next(request.query_params.get("next", "/"))
        if not self.access.enabled:
            return RedirectResponse(target, 303)
        redirect_uri = self.sign_in.redirect_uri(self.access, self.site, request)
        pending = PendingSignIn.new(redirect_uri, target)
        try:
            url = await self.access.run(self.sign_in.client.authorization_url, pending)
        except SignInUnavailable as exc:
            return self._failed(request, target, f"Single sign-on is unavailable: {exc}.", 502)
        response = RedirectResponse(url, 303)
        response.set_cookie(COOKIE, self.sign_in.sealer.seal(pending), max_age=LIFETIME_SECONDS,
                            httponly=True, samesite="lax", path=COOKIE_PATH,
                            secure=self.site.secure(request.scope))
        return response

    async def callback(self, request: Request) -> Response:
        query = request.query_params
        pending = self.sign_in.sealer.open(request.cookies.get(COOKIE, ""))
        if pending is None:
            return self._failed(request, "/", "This single sign-on was not started in this "
                                "browser, or took longer than 10 minutes. Sign in again.", 400)
        state = query.get("state", "")[:MAX_STATE_CHARS]
        if not hmac.compare_digest(state.encode(), pending.state.encode()):
            return self._failed(request, pending.next, "The identity provider's answer does "
                                "not belong to this sign-in (its state differs). Sign in "
                                "again.", 400)
        if query.get("error"):
            said = _clean(query.get("error", ""))
            detail = _clean(query.get("error_description", ""))
            return self._failed(request, pending.next, "The identity provider did not sign "
                                f"you in ({said}{': ' + detail if detail else ''}).", 401)
        code = query.get("code", "")
        if not code or len(code) > MAX_CODE_CHARS:
            return self._failed(request, pending.next, "The identity provider's answer has "
                                "no usable authorization code. Sign in again.", 400)
        try:
            identity = await self.access.run(self.sign_in.client.finish, pending, code)
            user = await self.access.run(self.sign_in.authenticator.provisioner.provision,
                                         identity)
            refusal = unusable(user)
            if refusal:
                return self._failed(request, pending.next, f"{refusal[0].upper()}"
                                    f"{refusal[1:]}.", 403, user.username)
            principal = await self.access.run(self.sign_in.authenticator.principal_of_row,
                                              user)
        except SignInUnavailable as exc:
            return self._failed(request, pending.next, f"Single sign-on is unavailable: "
                                f"{exc}.", 502)
        except SignInRefused as exc:
            return self._failed(request, pending.next, f"Single sign-on failed: {exc}.", 401)
        except AccessError as exc:  # the Provisioner's refusals (LoginFailed)
            return self._failed(request, pending.next, f"Single sign-on failed: "
                                f"{exc.message}.", 403, getattr(exc, "actor", ""))
        response = await self.site.start_session(request, principal, pending.next)
        response.delete_cookie(COOKIE, path=COOKIE_PATH)
        self._record(request, principal.username, None)
        return response

    def _guarded(self, page: Callable[[Request], Awaitable[Response]]
                 ) -> Callable[[Request], Awaitable[Response]]:
        """A fault of ours (a database error while provisioning) is logged with its trace
        and still ends on the sign-in page, with the password form, never a bare 500."""
        async def run(request: Request) -> Response:
            try:
                return await page(request)
            except Exception:
                log.exception("single sign-on page %s failed", request.url.path)
                return self._failed(request, "/", "Single sign-on failed on this server; "
                                    "its log says why. Password sign-in still works.", 500)
        return run

    def _failed(self, request: Request, target: str, message: str, status: int,
                actor: str = "") -> Response:
        log.warning("single sign-on failed: %s", message)
        self._record(request, actor or "unknown:oidc", message)
        response = self.site.login_page(request, target, error=message, status=status)
        response.delete_cookie(COOKIE, path=COOKIE_PATH)
        return response

    def _record(self, request: Request, actor: str, failure: str | None) -> None:
        """The audit log's `login` row, as for a password sign-in to the console."""
        detail: dict[str, object] = {"grant": "oidc", "client": "console"}
        if failure:
            detail["reason"] = failure[:300]
        self.access.bus.publish(Event(
            "login", result="failure" if failure else "success", target="console",
            actor=actor[:255], address=address_text(self.access.address(request.scope)),
            detail=detail))


def _clean(text: str) -> str:
    """A provider's error words from the query string, short and printable."""
    cleaned = "".join(c if c.isprintable() else " " for c in text)
    return cleaned[:200]
