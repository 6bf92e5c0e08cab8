"""`/auth/token`: the Docker token endpoint (GET with Basic auth) and its OAuth2 form (POST).

Tokens carry the intersection of what was asked and what is held; asking for more than one may
have is not an error, it just yields a token without it, exactly as Docker clients expect.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from urllib.parse import parse_qs

from moorage.access.errors import Unauthenticated
from moorage.access.principal import ANONYMOUS, Principal
from moorage.access.scopes import Scope as TokenScope
from moorage.access.scopes import parse_scopes
from moorage.oci.errors import RegistryError
from moorage.web.auth import RegistryAccess
from moorage.web.http import Receive, Scope, Send, header, read_body, respond, respond_error
from moorage.access.authentication import parse_basic

_FORM_LIMIT = 64 << 10


class TokenAPI:
    def __init__(self, access: RegistryAccess, refresh_ttl_seconds: int) -> None:
        self.access = access
        self.refresh_ttl = refresh_ttl_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if scope["method"] == "GET":
                await self._get(scope, send)
            elif scope["method"] == "POST":
                await self._post(scope, receive, send)
            else:
                raise RegistryError("UNSUPPORTED", "use GET or POST", status=405,
                                    headers={"allow": "GET, POST"})
        except RegistryError as error:
            await respond_error(send, error)

    def _issue(self, principal: Principal, scopes: list[TokenScope], scope: Scope) -> dict[str, object]:
        address = self.access.address(scope)
        self.access.authorizer.check_instance_network(address)
        granted = self.access.authorizer.grant(principal, scopes, address)
        issued = self.access.issuer.issue(principal.username, granted)
        return {
            "token": issued.token, "access_token": issued.token,
            "expires_in": issued.expires_in,
            "issued_at": datetime.fromtimestamp(issued.issued_at, timezone.utc)
            .isoformat().replace("+00:00", "Z"),
            "scope": " ".join(f"{s.type}:{s.name}:{','.join(sorted(s.actions))}"
                              for s in granted if s.actions),
        }

    async def _get(self, scope: Scope, send: Send) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
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
        body = self._issue(principal, parse_scopes(query.get("scope", [])), scope)
        if query.get("offline_token", [""])[0].lower() == "true" and not principal.anonymous:
            body["refresh_token"] = self.access.authenticator.issue_refresh_token(
                principal, self.refresh_ttl)
        await _json(send, 200, body)

    async def _post(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = await read_body(receive, _FORM_LIMIT)
        if raw is None:
            await _json(send, 400, {"error": "invalid_request", "error_description": "form too large"})
            return
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        grant = form.get("grant_type")
        try:
            if grant == "password":
                if not form.get("username") or "password" not in form:
                    await _json(send, 400, {"error": "invalid_request",
                                            "error_description": "username and password are required"})
                    return
                principal = self.access.login(scope, form["username"], form["password"])
            elif grant == "refresh_token":
                principal = self.access.authenticator.refresh(form.get("refresh_token", ""))
            else:
                await _json(send, 400, {"error": "unsupported_grant_type",
                                        "error_description": "grant_type must be password or refresh_token"})
                return
        except Unauthenticated as exc:
            await _json(send, 401, {"error": "invalid_grant", "error_description": exc.message})
            return
        body = self._issue(principal, parse_scopes([form.get("scope", "")]), scope)
        body.pop("token")
        body["token_type"] = "Bearer"
        if grant == "password" and form.get("access_type") == "offline":
            body["refresh_token"] = self.access.authenticator.issue_refresh_token(
                principal, self.refresh_ttl)
        elif grant == "refresh_token":
            body["refresh_token"] = form["refresh_token"]
        await _json(send, 200, body)


def _unauthorized(message: str) -> RegistryError:
    return RegistryError("UNAUTHORIZED", message,
                         headers={"www-authenticate": 'Basic realm="moorage"'})


async def _json(send: Send, status: int, body: dict[str, object]) -> None:
    await respond(send, status, json.dumps(body).encode(),
                  {"content-type": "application/json", "cache-control": "no-store"})
