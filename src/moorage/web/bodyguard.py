"""A deadline on request bodies that stop arriving, for every route.

A client that sends the head of a request and then trickles its body, or sends nothing more,
would otherwise hold its connection, its handler and (for an upload chunk) the upload's lock
for as long as it likes. Each wait for the next piece of a body is given
`body_read_timeout_seconds`, as nginx's `client_body_timeout` does. When it runs out, the
handler is told the client went away (an `http.disconnect`, which every handler already
cleans up after: an upload chunk is cut off, nothing half-written stays) and the client gets
a 408 in the error shape of the API it called.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from moorage.web.http import Receive, Scope, Send, respond

log = logging.getLogger("moorage.web")

# Requests that carry bodies; the others are never slowed by the guard.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

App = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyGuard:
    """The receive/send pair a handler gets: receive with a deadline per message, and send
    held back once the deadline passed (the 408 is then the only answer)."""

    __slots__ = ("_receive", "_send", "timeout", "finished", "timed_out", "started")

    def __init__(self, receive: Receive, send: Send, timeout: float) -> None:
        self._receive = receive
        self._send = send
        self.timeout = timeout
        self.finished = False  # the whole body has arrived: later waits are not bounded
        self.timed_out = False
        self.started = False  # a response has begun

    async def receive(self) -> dict[str, Any]:
        if self.timed_out:
            return {"type": "http.disconnect"}
        if self.finished:
            return await self._receive()  # type: ignore[no-any-return]
        try:
            async with asyncio.timeout(self.timeout):
                message: dict[str, Any] = await self._receive()
        except TimeoutError:
            self.timed_out = True
            return {"type": "http.disconnect"}
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.finished = True
        return message

    async def send(self, message: dict[str, Any]) -> None:
        if self.timed_out and not self.started:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


async def guarded(app: App, scope: Scope, receive: Receive, send: Send, timeout: float) -> None:
    """Run `app` on one request with a deadline on each wait for its body."""
    guard = BodyGuard(receive, send, timeout)
    try:
        await app(scope, guard.receive, guard.send)
    except Exception:
        if not guard.timed_out:
            raise
    if guard.timed_out and not guard.started:
        log.info("request body of %s %s stalled for %ss; answered 408", scope["method"],
                 scope["path"][:200], timeout)
        message = f"the request body stalled: nothing arrived for {timeout:g} s"
        if scope["path"].startswith("/api/"):
            body = {"error": {"code": "INVALID", "message": message}}
        else:
            body = {"errors": [{"code": "SIZE_INVALID", "message": message}]}
        await respond(send, 408, json.dumps(body).encode(),
                      {"content-type": "application/json", "connection": "close"})
