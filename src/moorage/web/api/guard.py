"""RequestGuard: who is calling, and how large the body is, settled before the body is read.

FastAPI reads and parses a JSON body before it solves dependencies, so an authentication
dependency comes too late: an anonymous client could make the server hold as much of a body
as it cared to send. This pure ASGI middleware sits in front of the routes and

- refuses a declared Content-Length above the limit with 413 at once;
- for a request that reaches an endpoint, establishes the caller (deps.resolve_caller, in a
  worker thread: argon2 is slow) before reading a byte of the body, answers a refusal without
  reading it, and refuses a body from an anonymous caller (no endpoint takes one) with 401;
- reads what a known caller sends up to the limit, and stops with 413 there, however the
  body is sent (Content-Length or chunked), so no request holds more than the limit.

The endpoints then take the principal from the scope (deps.caller). Requests that match no
endpoint (404, 405, redirects, the OpenAPI document) pass untouched: the router answers them
without reading a body.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.routing import Match

from moorage.access.errors import AccessError
from moorage.web.api.parts import ApiParts
from moorage.oci.errors import RegistryError
from moorage.web.api.deps import (ACTING_KEY, CALLER_KEY, REFUSAL_KEY, require_user,
                                  resolve_caller)
from moorage.web.api.docs import DOCS_URL
from moorage.web.api.errors import error, refusal
from moorage.web.http import Receive, Scope, Send, header, header_values, read_body

# Every body the API takes is small (names, rules, a webhook); a MiB leaves room for long
# descriptions and bounds what one request can make the server hold.
MAX_BODY_BYTES = 1 << 20
# Methods whose requests carry no body unless they say so (Content-Length, Transfer-Encoding).
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
_DECIMAL = re.compile(r"[0-9]{1,20}")


class TooLarge(AccessError):
    status, code = 413, "TOO_LARGE"


class RequestGuard:
    def __init__(self, app: Any, instance: ApiParts, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.instance = instance
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        lengths = {v.strip() for v in header_values(scope, b"content-length")}
        if len(lengths) > 1 or any(not _DECIMAL.fullmatch(v) for v in lengths):
            await error(400, "INVALID", "Content-Length must be one decimal number")(
                scope, receive, send)
            return
        length = int(lengths.pop()) if lengths else None
        if not _reaches_endpoint(scope):
            if length is not None and length > self.limit:
                await refusal(self._too_large())(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        try:
            body = await self._admit(scope, receive, length)
        except (AccessError, RegistryError) as exc:
            # The endpoint still runs its dependencies, so that the refusal is answered and
            # announced as that endpoint's (changes.py); it sees an empty body, and `caller`
            # raises what is kept here before anything would look at one.
            scope[REFUSAL_KEY] = exc
            receive = _replay(b"", _nothing_more)
        except ConnectionAbortedError:
            return  # the client went away mid-body; nobody to answer
        else:
            if body is not None:
                receive = _replay(body, receive)
        await self.app(scope, receive, send)

    async def _admit(self, scope: Scope, receive: Receive, length: int | None) -> bytes | None:
        """The body (None when the request has none), once the caller is known and may send
        it; raises the refusal otherwise."""
        if length is not None and length > self.limit:
            raise self._too_large()
        principal = scope.get(ACTING_KEY)
        if principal is None:
            principal = await run_in_threadpool(resolve_caller, self.instance, scope)
        else:  # an in-process call on behalf of a console session (web/console/apicall.py)
            access = self.instance.access
            access.authorizer.check_instance_network(access.address(scope))
        scope[CALLER_KEY] = principal
        if not _may_have_body(scope, length):
            return None
        require_user(principal)  # no endpoint takes a body from an anonymous caller
        body = await read_body(receive, self.limit)
        if body is None:
            raise self._too_large()
        return body

    def _too_large(self) -> TooLarge:
        return TooLarge(f"the request body exceeds the limit of {self.limit} bytes")


def _reaches_endpoint(scope: Scope) -> bool:
    """Whether the request matches one of the API's endpoints, path and method (the
    documentation pages are FastAPI's own, open to all)."""
    api = scope["app"]
    if scope["path"] in (api.openapi_url, DOCS_URL, api.redoc_url,
                         api.swagger_ui_oauth2_redirect_url):
        return False
    return any(route.matches(scope)[0] is Match.FULL for route in api.router.routes)


def _may_have_body(scope: Scope, length: int | None) -> bool:
    if length is not None:
        return length > 0
    return header(scope, b"transfer-encoding") is not None or scope["method"] not in _BODYLESS


async def _nothing_more() -> dict[str, Any]:
    """What the app reads of a refused request after its (empty) body: the end of it."""
    return {"type": "http.disconnect"}


def _replay(body: bytes, then: Receive) -> Receive:
    """The body already read, as one message; then `then` (the client's own messages)."""
    pending = True

    async def replay() -> dict[str, Any]:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await then()

    return replay


__all__ = ["RequestGuard", "MAX_BODY_BYTES", "TooLarge"]
