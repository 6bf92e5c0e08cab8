"""The web console's ASGI app: sessions, CSRF, security headers, pages, static assets.

Pages are server-rendered (Jinja2) and enhanced with htmx; every asset is served from this
package, so the console works on a network without internet. Each area of the console is a
module in `pages/` with an `install(site)` function that adds its routes and its entry in
the navigation; a feature adds its pages the same way (`ConsoleSite.install`).

Every page reads and changes the registry through the management API, in process, as the
signed-in user (apicall.py): what a page shows and what an action may do are the API's rules.

Requests are checked in this order before a page runs: the instance's network rules and
request rate limit, the session (a page needs one; `/login` and assets do not), then, for a
POST, the size of the form and its CSRF token, before the page reads a field of it.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from moorage import __version__
from moorage.access.errors import AccessError, Unauthenticated
from moorage.access.principal import Principal
from moorage.access.sessions import ConsoleSessions, Session, csrf_matches
from moorage.oci.errors import RegistryError
from moorage.web.auth import OPEN, RegistryAccess
from moorage.web.console import filters
from moorage.web.console.apicall import Answer, ApiCaller
from moorage.web.console.assets import StaticAssets
from moorage.web.http import FAILURE_KEY, Receive, Scope, Send, header, read_body

log = logging.getLogger("moorage.console")

SESSION_COOKIE = "moorage_session"
# Before sign-in: a random value whose keyed hash is the sign-in form's CSRF token.
PRE_COOKIE = "moorage_presession"
FLASH_COOKIE = "moorage_flash"
# Every form of the console is a few fields; 64 KiB bounds what a request can make us hold.
MAX_FORM_BYTES = 64 << 10
CSRF_FIELD = "csrf_token"
CSRF_HEADER = b"x-csrf-token"

# No inline script or style anywhere: the strictest policy the pages allow.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}

Handler = Callable[["Visit"], Awaitable[Response]]
# A page that answers before anyone has signed in (a single sign-on's start and callback).
PublicHandler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class SignInLink:
    """Another way to sign in, shown as a button on the sign-in page (single sign-on)."""

    label: str  # "Sign in with Example SSO"
    path: str  # where it starts, on this site; `next` is added to it


@dataclass(frozen=True)
class NavEntry:
    label: str
    path: str
    order: int
    admin_only: bool = False


@dataclass(frozen=True)
class PageRoute:
    path: str  # "/namespaces/{name}": segments in braces match one path segment
    method: str
    handler: Handler
    segments: tuple[str, ...] = ()

    def match(self, method: str, parts: list[str]) -> dict[str, str] | None:
        if method != self.method and not (method == "HEAD" and self.method == "GET"):
            return None
        params: dict[str, str] = {}
        pattern = self.segments
        if pattern and pattern[-1].startswith("{") and pattern[-1].endswith(":path}"):
            if len(parts) < len(pattern):
                return None
            tail = "/".join(parts[len(pattern) - 1:])
            parts = [*parts[:len(pattern) - 1], tail]
        if len(parts) != len(pattern):
            return None
        for want, got in zip(pattern, parts):
            if want.startswith("{") and want.endswith("}"):
                if not got:
                    return None
                params[want[1:-1].split(":")[0]] = got
            elif want != got:
                return None
        return params


@dataclass
class Visit:
    """One request to a console page: who is asking, the form they sent, and helpers to
    call the API as them and to answer."""

    site: "ConsoleSite"
    request: Request
    session: Session
    params: dict[str, str]
    form: dict[str, str] = field(default_factory=dict)
    flash: str = ""

    @property
    def principal(self) -> Principal:
        return self.session.principal

    @property
    def query(self) -> dict[str, str]:
        return {k: v for k, v in self.request.query_params.items()}

    async def api(self, method: str, path: str, body: Any = None,
                  query: dict[str, Any] | None = None) -> Answer:
        return await self.site.api(self.request.scope, self.principal, method, path, body, query)

    async def get(self, path: str, **query: Any) -> Answer:
        return await self.api("GET", path, query=query)

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        return self.site.render(self, template, status, **context)

    def redirect(self, path: str, flash: str = "") -> Response:
        response = RedirectResponse(path, status_code=303)
        if flash:
            response.set_cookie(FLASH_COOKIE, quote(flash[:300]), max_age=60, httponly=True,
                                samesite="strict", secure=self.site.secure(self.request.scope))
        return response

    def refused(self, answer: Answer, template: str = "error.html") -> HTMLResponse:
        """An API refusal as a page with the API's own status and words."""
        return self.render(template, status=answer.status if answer.status >= 400 else 502,
                           title=_TITLES.get(answer.status, "Request failed"),
                           message=answer.message)


_TITLES = {400: "Invalid request", 401: "Sign-in required", 403: "Not allowed",
           404: "Not found", 409: "Conflict", 422: "Invalid request",
           429: "Too many requests"}


class ConsoleSite:
    """The console: an ASGI app mounted at `/` for everything the registry and the
    management API do not answer."""

    def __init__(self, access: RegistryAccess, sessions: ConsoleSessions, api: Any,
                 settings_secure_cookies: bool = False) -> None:
        self.access = access
        self.sessions = sessions
        self.api = ApiCaller(api)
        self.always_secure = settings_secure_cookies
        self.routes: list[PageRoute] = []
        self.nav: list[NavEntry] = []
        self.public: dict[str, PublicHandler] = {}  # path -> page that needs no session
        self.sign_in_links: list[SignInLink] = []
        self.assets = StaticAssets()
        self.env = Environment(loader=PackageLoader("moorage.web.console", "templates"),
                               autoescape=select_autoescape(default=True),
                               trim_blocks=True, lstrip_blocks=True)
        filters.install(self.env)
        self.env.globals.update(version=__version__, asset=self.assets.url)

    # -- what pages register --------------------------------------------------------------
    def install(self, module: Any) -> None:
        """A pages module (or a feature's) adds its routes and navigation here."""
        module.install(self)

    def add_nav(self, label: str, path: str, order: int, admin_only: bool = False) -> None:
        self.nav.append(NavEntry(label, path, order, admin_only))
        self.nav.sort(key=lambda n: n.order)

    def public_get(self, path: str, handler: PublicHandler) -> None:
        """A GET page at exactly `path` that is served without a session (after the network
        rules and rate limit): for features that sign people in. HEAD is not routed to it:
        such a page acts (a link checker's HEAD must not spend a sign-in's code)."""
        self.public[path] = handler

    def get(self, path: str, handler: Handler) -> None:
        self._add(path, "GET", handler)

    def post(self, path: str, handler: Handler) -> None:
        self._add(path, "POST", handler)

    def _add(self, path: str, method: str, handler: Handler) -> None:
        segments = tuple(path.strip("/").split("/")) if path.strip("/") else ()
        self.routes.append(PageRoute(path, method, handler, segments))

    # -- serving --------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path.startswith("/static/"):
            await self.assets(scope, receive, send)
            return
        try:
            self.access.authorizer.check_instance_network(self.access.address(scope))
            await self.access.limit(scope)
        except (AccessError, RegistryError) as exc:
            await self._plain_refusal(scope, receive, send, exc)
            return
        request = Request(scope, receive)
        if path == "/login":
            response = await self._login(request)
        elif path == "/logout" and scope["method"] == "POST":
            response = await self._logout(request)
        elif path in self.public and scope["method"] == "GET":  # not HEAD: they act
            response = await self.public[path](request)
        else:
            response = await self._page(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        await response(scope, receive, send)

    async def _plain_refusal(self, scope: Scope, receive: Receive, send: Send,
                             exc: AccessError | RegistryError) -> None:
        status = getattr(exc, "status", 403)
        message = getattr(exc, "message", str(exc))
        response = HTMLResponse(self.env.get_template("bare_error.html").render(
            title=_TITLES.get(status, "Refused"), message=message), status_code=status,
            headers=getattr(exc, "headers", None) or None)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        await response(scope, receive, send)

    def secure(self, scope: Scope) -> bool:
        """Whether cookies get `Secure`: the request came over HTTPS, directly or through a
        trusted proxy that says so, or the operator asked for it."""
        if self.always_secure or scope.get("scheme") == "https":
            return True
        if self.access.trusted_proxies:
            client = scope.get("client")
            proto = header(scope, b"x-forwarded-proto")
            address = self.access.address(scope)
            return bool(proto == "https" and client and address is not None
                        and str(address) != client[0])
        return False

    async def _session(self, request: Request) -> Session | None:
        if not self.access.enabled:  # auth off: anyone may do anything, as on /v2
            return Session(OPEN, "", self.sessions.csrf_for(self._pre_value(request)))
        value = request.cookies.get(SESSION_COOKIE)
        if not value or len(value) > 512:
            return None
        try:
            return await self.access.run(self.sessions.resolve, value)
        except Unauthenticated:
            return None

    @staticmethod
    def _pre_value(request: Request) -> str:
        return request.cookies.get(PRE_COOKIE, "")[:128]

    async def _page(self, request: Request) -> Response:
        scope = request.scope
        parts = [p for p in scope["path"].split("/") if p != ""]
        method = scope["method"]
        found = None
        allowed: set[str] = set()
        for route in self.routes:
            params = route.match(method, parts)
            if params is not None:
                found = (route, params)
                break
            if route.match(route.method, parts) is not None:
                allowed.add(route.method)
        session = await self._session(request)
        if session is None:
            if header(scope, b"hx-request") == "true":
                # A fragment a page asked for (a live update): send the whole page to the
                # sign-in form, rather than the form into a corner of the page.
                page = header(scope, b"hx-current-url") or "/"
                where = urlsplit(page)
                target = where.path + (f"?{where.query}" if where.query else "")
                return Response(status_code=204, headers={
                    "hx-redirect": "/login?next=" + quote(safe_next(target), safe="")})
            if method in ("GET", "HEAD"):
                target = scope["path"] + (("?" + scope["query_string"].decode("latin-1"))
                                          if scope.get("query_string") else "")
                return RedirectResponse("/login?next=" + quote(target, safe=""), 303)
            return self._bare(401, "Sign-in required", "Sign in to continue.")
        if found is None:
            status, title = (405, "Method not allowed") if allowed else (404, "Not found")
            visit = Visit(self, request, session, {})
            page = visit.render("error.html", status=status, title=title,
                                message="There is no such page." if status == 404 else
                                "This page does not take that kind of request.")
            if allowed:
                page.headers["allow"] = ", ".join(sorted(allowed | (
                    {"HEAD"} if "GET" in allowed else set())))
            return page
        route, params = found
        visit = Visit(self, request, session, params, flash=self._flash(request))
        if method == "POST":
            form = await self._form(request)
            if form is None:
                return visit.render("error.html", status=413, title="Too large",
                                    message=f"A form may carry at most {MAX_FORM_BYTES} bytes.")
            given = form.get(CSRF_FIELD) or header(scope, CSRF_HEADER)
            if not csrf_matches(session.csrf, given):
                return visit.render("error.html", status=403, title="Not allowed",
                                    message="The form's security token is missing or out of "
                                            "date. Reload the page and try again.")
            visit.form = form
        try:
            response = await route.handler(visit)
        except Exception as exc:  # a page never answers with a stack trace
            scope[FAILURE_KEY] = exc  # for metrics (ops/metrics.py): a database error?
            log.exception("console page %s %s failed", method, scope["path"])
            return visit.render("error.html", status=500, title="Something went wrong",
                                message="The page could not be shown; the server log says why.")
        if visit.flash:
            response.delete_cookie(FLASH_COOKIE)
        return response

    @staticmethod
    def _flash(request: Request) -> str:
        from urllib.parse import unquote

        return unquote(request.cookies.get(FLASH_COOKIE, ""))[:300]

    async def _form(self, request: Request) -> dict[str, str] | None:
        """The urlencoded form of a POST, at most MAX_FORM_BYTES; the last value of a
        repeated field wins, except fields that are read with `getall` semantics by pages
        (they are joined with commas)."""
        length = header(request.scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_FORM_BYTES):
            return None
        body = await read_body(request.receive, MAX_FORM_BYTES)
        if body is None:
            return None
        form: dict[str, str] = {}
        for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            form[key] = f"{form[key]},{value}" if key in form and key.endswith("[]") else value
        return form

    def render(self, visit: Visit, template: str, status: int = 200, **context: Any
               ) -> HTMLResponse:
        principal = visit.principal
        nav = [n for n in self.nav if not n.admin_only or principal.is_admin]
        html = self.env.get_template(template).render(
            user=principal, csrf=visit.session.csrf, nav=nav, path=visit.request.url.path,
            flash=visit.flash, auth_enabled=self.access.enabled, now=time.time(), **context)
        return HTMLResponse(html, status_code=status)

    def _bare(self, status: int, title: str, message: str) -> HTMLResponse:
        return HTMLResponse(self.env.get_template("bare_error.html").render(
            title=title, message=message), status_code=status)

    # -- sign-in and sign-out ---------------------------------------------------------------
    async def _login(self, request: Request) -> Response:
        scope = request.scope
        target = safe_next(request.query_params.get("next", "/"))
        if not self.access.enabled:
            return RedirectResponse(target, 303)
        pre = self._pre_value(request)
        new_pre = None
        if len(pre) < 32:
            pre = new_pre = secrets.token_urlsafe(32)
        csrf = self.sessions.csrf_for(pre)
        error, status, username = "", 200, ""
        if scope["method"] == "POST":
            form = await self._form(request)
            if form is None:
                error, status = "The form is too large.", 413
            elif not csrf_matches(csrf, form.get(CSRF_FIELD)) or new_pre is not None:
                error, status = "The form's security token is out of date; try again.", 403
            else:
                username = form.get("username", "")[:255]
                target = safe_next(form.get("next", target))
                try:
                    principal = await self.access.run(self.access.login, scope, username,
                                                      form.get("password", ""), "console")
                    if principal.kind != "user":
                        raise Unauthenticated("robot accounts cannot sign in to the console")
                    response = await self.start_session(request, principal, target)
                except AccessError as exc:
                    error = exc.message
                    status = exc.status if exc.status in (401, 403, 429) else 401
                else:
                    self.access.signed_in(scope, principal)
                    return response
        elif scope["method"] not in ("GET", "HEAD"):
            return self._bare(405, "Method not allowed", "Use GET or POST.")
        return self.login_page(request, target, error, status, username, csrf, new_pre)

    async def start_session(self, request: Request, principal: Principal, target: str
                            ) -> Response:
        """A new console session for someone who has just proved who they are (with a
        password here, or through a single sign-on), and the way on to `target`."""
        cookie = await self.access.run(self.sessions.start, principal,
                                       header(request.scope, b"user-agent") or "")
        response = RedirectResponse(safe_next(target), 303)
        response.set_cookie(SESSION_COOKIE, cookie, max_age=self.sessions.lifetime,
                            httponly=True, samesite="lax", secure=self.secure(request.scope),
                            path="/")
        response.delete_cookie(PRE_COOKIE)
        return response

    def login_page(self, request: Request, target: str = "/", error: str = "", status: int = 200,
                   username: str = "", csrf: str = "", new_pre: str | None = None
                   ) -> HTMLResponse:
        """The sign-in page, with an error when a sign-in failed (here or elsewhere)."""
        if not csrf:
            pre = self._pre_value(request)
            if len(pre) < 32:
                pre = new_pre = secrets.token_urlsafe(32)
            csrf = self.sessions.csrf_for(pre)
        target = safe_next(target)
        links = [(link.label, f"{link.path}?next={quote(target, safe='')}")
                 for link in self.sign_in_links]
        html = self.env.get_template("login.html").render(
            csrf=csrf, next=target, error=error, username=username, version=__version__,
            sign_in_links=links)
        response = HTMLResponse(html, status_code=status)
        if new_pre is not None:
            response.set_cookie(PRE_COOKIE, new_pre, max_age=3600, httponly=True,
                                samesite="strict", secure=self.secure(request.scope),
                                path="/")
        return response

    async def _logout(self, request: Request) -> Response:
        value = request.cookies.get(SESSION_COOKIE, "")
        form = await self._form(request) or {}
        response = RedirectResponse("/login", 303)
        if value and len(value) <= 512 and csrf_matches(self.sessions.csrf_for(value),
                                                         form.get(CSRF_FIELD)):
            await self.access.run(self.sessions.end, value)
            response.delete_cookie(SESSION_COOKIE, path="/")
        elif value:
            return self._bare(403, "Not allowed", "The sign-out form's security token is "
                                                  "missing or out of date.")
        return response


def safe_next(target: str) -> str:
    """Only a path of this site: never another host (`//evil`, `https://…`, `/\\evil`)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target \
            or len(target) > 2000:
        return "/"
    return target
