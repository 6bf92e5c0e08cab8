"""`/auth/token`: the Docker token endpoint (GET with Basic auth) and its OAuth2 form (POST).

Tokens carry the intersection of what was asked and what is held; asking for more than one may
have is not an error, it just yields a token without it, exactly as Docker clients expect.

A request asks for at most MAX_SCOPES scopes (a Docker client asks for one to three); more is
a 400, before anything is looked up. Everything after reading the request (the login, the
grant's lookups, signing) runs in the auth threads (web/auth.py), not on the event loop.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from urllib.parse import parse_qs

from moorage.access.authentication import parse_basic
from moorage.access.errors import Throttled, Unauthenticated
from moorage.access.principal import ANONYMOUS, Principal
from moorage.access.scopes import Scope as TokenScope
from moorage.access.scopes import parse_scopes
from moorage.oci.errors import RegistryError
from moorage.web.auth import RegistryAccess, throttled
from moorage.web.http import Receive, Scope, Send, header, read_body, respond, respond_error

_FORM_LIMIT = 64 << 10
MAX_SCOPES = 100
# Query parameters or form fields parsed at most: the scopes, and room for the others.
_MAX_FIELDS = MAX_SCOPES + 20

Answer = tuple[int, dict[str, object], dict[str, str]]


class TooManyScopes(ValueError):
    def __init__(self, count: int | None) -> None:
        super().__init__(f"at most {MAX_SCOPES} scopes per token request"
                         + (f", not {count}" if count is not None else ""))


def scopes_of(values: list[str]) -> list[TokenScope]:
    """Parse the requested scopes, refusing more than MAX_SCOPES (each space-separated scope
    in one value counts)."""
    count = sum(len(v.split()) for v in values)
    if count > MAX_SCOPES:
        raise TooManyScopes(count)
    return parse_scopes(values)


def _fields(raw: str) -> dict[str, list[str]]:
    try:
        return parse_qs(raw, max_num_fields=_MAX_FIELDS)
    except ValueError:
        raise TooManyScopes(None) from None


class TokenAPI:
    def __init__(self, access: RegistryAccess, refresh_ttl_seconds: int) -> None:
        self.access = access
        self.refresh_ttl = refresh_ttl_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.access.limit(scope)
            if scope["method"] == "GET":
                body = await self.access.run(self._get, scope)
                await _json(send, 200, body)
            elif scope["method"] == "POST":
                raw = await read_body(receive, _FORM_LIMIT)
                if raw is None:
                    await _json(send, 400, _oauth_error("invalid_request", "form too large"))
                    return
                status, body, headers = await self.access.run(self._post, scope, raw)
                await _json(send, status, body, headers)
            else:
                raise RegistryError("UNSUPPORTED", "use GET or POST", status=405,
                                    headers={"allow": "GET, POST"})
        except RegistryError as error:
            await respond_error(send, error)

    def _issue(self, principal: Principal, scopes: list[TokenScope],
               scope: Scope) -> dict[str, object]:
        address = self.access.address(scope)
        self.access.authorizer.check_instance_network(address)
        granted = self.access.authorizer.grant(principal, scopes, address)
        issued = self.access.issuer.issue(principal.username, granted, principal.id,
                                          principal.origin, principal.created_at)
        return {
            "token": issued.token, "access_token": issued.token,
            "expires_in": issued.expires_in,
            "issued_at": datetime.fromtimestamp(issued.issued_at, timezone.utc)
            .isoformat().replace("+00:00", "Z"),
            "scope": " ".join(f"{s.type}:{s.name}:{','.join(sorted(s.actions))}"
                              for s in granted if s.actions),
        }

    def _get(self, scope: Scope) -> dict[str, object]:
        """The Docker token flow (blocking: runs in an auth thread)."""
        try:
            query = _fields(scope.get("query_string", b"").decode("latin-1"))
            scopes = scopes_of(query.get("scope", []))
        except TooManyScopes as exc:
            raise RegistryError("UNSUPPORTED", str(exc), status=400) from None
        principal = ANONYMOUS
        raw = header(scope, b"authorization")
        if raw:
            kind, _, value = raw.partition(" ")
            creds = parse_basic(value) if kind.lower() == "basic" else None
            if creds is None:
                raise _unauthorized("the token endpoint takes Basic credentials")
            try:
                principal = self.access.login(scope, *creds)
            except Unauthenticated as exc:
                raise _unauthorized(exc.message) from None
            except Throttled as exc:
                raise throttled(exc) from None
        body = self._issue(principal, scopes, scope)
        if query.get("offline_token", [""])[0].lower() == "true" and not principal.anonymous:
            body["refresh_token"] = self.access.authenticator.issue_refresh_token(
                principal, self.refresh_ttl, _client_name(query.get("client_id", [""])[0]))
        self.access.issued(scope, principal, "password", str(body["scope"]),
                           "refresh_token" in body)
        return body

    def _post(self, scope: Scope, raw: bytes) -> Answer:
        """The OAuth2 password and refresh grants (blocking: runs in an auth thread)."""
        try:
            form = {k: v[0] for k, v in _fields(raw.decode("utf-8", "replace")).items()}
            scopes = scopes_of([form.get("scope", "")])
        except TooManyScopes as exc:
            return 400, _oauth_error("invalid_scope", str(exc)), {}
        grant = form.get("grant_type")
        try:
            if grant == "password":
                if not form.get("username") or "password" not in form:
                    return 400, _oauth_error("invalid_request",
                                             "username and password are required"), {}
                principal = self.access.login(scope, form["username"], form["password"])
            elif grant == "refresh_token":
                principal = self.access.authenticator.refresh(form.get("refresh_token", ""))
            else:
                return 400, _oauth_error("unsupported_grant_type",
                                         "grant_type must be password or refresh_token"), {}
        except Unauthenticated as exc:
            return 401, _oauth_error("invalid_grant", exc.message), {}
        except Throttled as exc:
            return 429, _oauth_error("temporarily_unavailable", exc.message), exc.headers
        body = self._issue(principal, scopes, scope)
        body.pop("token")
        body["token_type"] = "Bearer"
        if grant == "password" and form.get("access_type") == "offline":
            body["refresh_token"] = self.access.authenticator.issue_refresh_token(
                principal, self.refresh_ttl, _client_name(form.get("client_id", "")))
        elif grant == "refresh_token":
            body["refresh_token"] = form["refresh_token"]
        self.access.issued(scope, principal, str(grant), str(body["scope"]),
                           grant == "password" and "refresh_token" in body)
        return 200, body, {}


def _client_name(client_id: str) -> str:
    """What a refresh token is listed as: the client that asked for it (Docker sends
    `client_id`), so that its owner can tell which one to revoke."""
    return "".join(c for c in client_id if c.isprintable())[:100] or "oauth2 refresh"


def _oauth_error(error: str, description: str) -> dict[str, object]:
    return {"error": error, "error_description": description}


def _unauthorized(message: str) -> RegistryError:
    return RegistryError("UNAUTHORIZED", message,
                         headers={"www-authenticate": 'Basic realm="moorage"'})


async def _json(send: Send, status: int, body: dict[str, object],
                headers: dict[str, str] | None = None) -> None:
    await respond(send, status, json.dumps(body).encode(),
                  {"content-type": "application/json", "cache-control": "no-store",
                   **(headers or {})})
