"""Management changes, announced on the event bus like the core's pushes and pulls.

Every request to /api/v1 that is not a read (POST, PUT, PATCH, DELETE) becomes one Event after
it is answered: a readable action ("namespace.create", "member.set", "user.update"), the
target, who asked, from where, and whether it worked. Subscribers (the audit log, webhooks)
decide what to keep. A refused credential on any /api/v1 request, reads included, is
announced as a failed "login", as on /v2 and /auth/token, so that password guessing against
the API leaves a trace too.

Request bodies are never announced: they carry passwords and secrets. Only the names of the
fields a request set are, plus the values of a short list of fields that identify what
changed and are never secret (SAFE_FIELDS); a field that is not on the list, today's or one a
future endpoint adds, is named without its value. Query flags that change what a request
does (`force`) are recorded with their values.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Depends, Request

from moorage.access.authentication import parse_basic
from moorage.access.principal import Principal
from moorage.web.api.parts import ApiParts
from moorage.registry.events import Event, set_caller
from moorage.web.api.deps import CALLER_KEY, FAILED_ACTOR_KEY, caller, get_instance
from moorage.web.http import Receive, Scope, Send

log = logging.getLogger("moorage.api")

READS = frozenset({"GET", "HEAD", "OPTIONS"})
_BODY_LIMIT = 64 << 10
_MAX_FIELDS = 32

SAFE_FIELDS = frozenset({
    "name", "username", "namespace", "cidr", "kind", "role", "visibility", "is_admin",
    "credential_free_pull", "expires_in_days", "repository_pattern", "tag_pattern",
    "exclude_pattern", "keep_last", "older_than_seconds", "untagged", "always_keep",
    "schedule", "enabled", "dry_run", "type", "events", "disabled",
    "id", "expires_at",  # an advisory id on a CVE allowlist, and until when
    "severity", "block_unscanned", "block_unsigned",  # a pull policy's rules
    "mode", "propagate_deletes",  # a replication rule's
})
# Query flags recorded with a change (values are booleans, never secret).
QUERY_FLAGS = frozenset({"force"})
# Fields that name the thing a POST creates, so its target reads "namespaces/team".
_NAMING_FIELDS = ("name", "username", "cidr", "id")
# Where the endpoint's name ("create_rule") says less than its resource does.
_NOUNS = {"rule": "network_rule",
          # signing: one name for an operation on the instance's keys and a namespace's
          "signing_key_instance": "signing_key", "signing_key_namespace": "signing_key",
          "signing_identity_instance": "signing_identity",
          "signing_identity_namespace": "signing_identity"}


async def announce_caller(request: Request,
                          principal: Annotated[Principal, Depends(caller)],
                          instance: Annotated[ApiParts, Depends(get_instance)]) -> None:
    """Tell the event bus who is behind this request, as the registry API does for /v2, so
    that core events a management call causes (a repository deleted through the API) carry
    the actor too. (AnnounceChanges finds the principal where RequestGuard left it.)

    Async on purpose: a context variable set here is copied into the thread that runs the
    endpoint; one set in a sync dependency would stay in that dependency's own thread.
    """
    set_caller(principal.username or "anonymous",
               str(instance.access.address(request.scope) or ""))


def action_name(scope: Scope, method: str, path: str) -> str:
    """"create_namespace" → "namespace.create"; an unrouted request keeps its method and path."""
    endpoint = scope.get("endpoint")
    name = getattr(endpoint, "__name__", "")
    verb, _, noun = name.partition("_")
    if verb and noun:
        return f"{_NOUNS.get(noun, noun)}.{verb}"
    return f"{method} {path}"[:64]


def _body_fields(body: bytes) -> tuple[list[str], dict[str, Any]]:
    """The names of the fields a JSON body set, and the values of the safe ones. What a
    hostile body puts there (1e999, NaN, a NUL, a lone surrogate, a huge number) reaches
    subscribers as JSON parsed it; the audit log records it in its safe form
    (moorage.audit.chain)."""
    try:
        data = json.loads(body) if body else None
    except (ValueError, RecursionError):  # nested too deep for the parser: still a change
        return [], {}
    if not isinstance(data, dict):
        return [], {}
    names = [k for k in data if isinstance(k, str) and len(k) <= 64][:_MAX_FIELDS]
    values: dict[str, Any] = {}
    for key in names:
        value = data[key]
        if key in SAFE_FIELDS and (value is None or isinstance(value, (bool, int, float)) or
                                   (isinstance(value, str) and len(value) <= 255)):
            values[key] = value  # NaN, 1e999: the audit log records them in its safe form
    return sorted(names), values


def _query_flags(scope: Scope) -> dict[str, bool]:
    """The query flags of a change that alter what it does (`force`), as booleans the way
    FastAPI reads them; other query parameters are not recorded."""
    found: dict[str, bool] = {}
    for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
        if key in QUERY_FLAGS:
            found[key] = value.lower() in ("1", "true", "yes", "on")
    return found


def _credential(scope: Scope) -> tuple[str, str]:
    """The scheme of the request's credentials and the username a Basic one claims; the
    password or token itself is never looked at here."""
    for key, value in scope.get("headers", ()):
        if key == b"authorization":
            kind, _, rest = value.decode("latin-1").partition(" ")
            kind = kind.lower()[:16]
            creds = parse_basic(rest) if kind == "basic" else None
            return kind, (creds[0][:255] if creds else "")
    return "", ""


def _has_credentials(scope: Scope) -> bool:
    return any(key == b"authorization" for key, _ in scope.get("headers", ()))


class AnnounceChanges:
    """Pure ASGI middleware (no BaseHTTPMiddleware: that would run the app in another task
    and cost a copy of every response)."""

    def __init__(self, app: Any, instance: ApiParts) -> None:
        self.app = app
        self.instance = instance

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        is_change = method not in READS
        credentials = _has_credentials(scope)
        if not is_change and not credentials:
            await self.app(scope, receive, send)
            return

        status = 500
        body = bytearray()

        async def receive_copy() -> dict[str, Any]:
            message = await receive()
            if message["type"] == "http.request" and len(body) < _BODY_LIMIT:
                body.extend(message.get("body", b"")[:_BODY_LIMIT - len(body)])
            return message

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive_copy if is_change else receive, send_status)
        finally:
            try:
                self._announce(scope, method, status, bytes(body), credentials, is_change)
            except Exception:  # announcing must never turn an answered request into an error
                log.exception("could not announce %s %s", method, scope.get("path"))

    def _announce(self, scope: Scope, method: str, status: int, body: bytes,
                  credentials: bool, is_change: bool) -> None:
        path = scope["path"]
        action = action_name(scope, method, path)
        address = str(self.instance.access.address(scope) or "")
        principal: Principal | None = scope.get(CALLER_KEY)
        bus = self.instance.registry.bus
        scheme, claimed = _credential(scope)
        if status == 401 and credentials:
            # The username as deps.caller vouched for it: a name no account has may be a
            # password typed into the wrong field, and is recorded as a pseudonym.
            actor = scope.get(FAILED_ACTOR_KEY) or "anonymous"
            bus.publish(Event("login", result="failure", target="api",
                              actor=actor, address=address,
                              detail={"request": action, "status": status,
                                      "credential": scheme}))
            return
        if not is_change:
            return
        fields, values = _body_fields(body)
        target = path.removeprefix("/api/v1/").strip("/")
        if method == "POST":
            named = next((values[f] for f in _NAMING_FIELDS if isinstance(values.get(f), str)),
                         None)
            if named:
                target = f"{target}/{named}"
        params = scope.get("path_params") or {}
        repository = params.get("name") if path.startswith("/api/v1/repositories/") else None
        detail: dict[str, Any] = {"method": method, "path": path, "status": status}
        if isinstance(params.get("namespace"), str):  # whose change it is (webhook scopes)
            detail["namespace"] = params["namespace"]
        if fields:
            detail["fields"] = fields
        if values:
            detail["values"] = values
        params = _query_flags(scope)
        if params:
            detail["params"] = params
        # Without a principal the claimed name was never vouched for (a throttled login):
        # a pseudonym, as for failed logins.
        actor = (principal.username or "anonymous") if principal is not None else \
            scope.get(FAILED_ACTOR_KEY) or (
                self.instance.authenticator.actor_of(None, claimed) if claimed else "anonymous")
        bus.publish(Event(action, repository=repository, target=target,
                          result="success" if status < 400 else "failure", actor=actor,
                          address=address, detail=detail))
