"""The console reads and changes everything through the management API, in process.

Each call is an ASGI request to the same FastAPI app that serves `/api/v1`, made on behalf of
the signed-in user (the principal travels in a scope key that no outside request can set,
deps.ACTING_KEY). So a page shows exactly what the API would show that user, an action is
refused exactly where the API refuses it, validated by the same models, and recorded in the
audit log as the API records it: the console has no rules of its own to drift apart.

The client's address and forwarding headers are passed on, so network rules apply as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from moorage.access.principal import Principal
from moorage.web.api.deps import ACTING_KEY
from moorage.web.http import Receive, Scope, Send

# The original request's headers that say where it came from (network rules, the audit
# address) and what it asked for; nothing else, credentials least of all.
_PASSED_HEADERS = frozenset({b"host", b"x-forwarded-for", b"x-real-ip", b"forwarded",
                             b"x-forwarded-proto", b"user-agent", b"x-request-id"})


@dataclass
class Answer:
    """What the API answered: status, parsed JSON (or None), and the raw body."""

    status: int
    data: Any = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        """The API's own words for a refusal ({"error": {"message"}})."""
        if isinstance(self.data, dict) and isinstance(self.data.get("error"), dict):
            return str(self.data["error"].get("message", ""))
        return f"the request failed ({self.status})"

    @property
    def code(self) -> str:
        if isinstance(self.data, dict) and isinstance(self.data.get("error"), dict):
            return str(self.data["error"].get("code", ""))
        return ""


class ApiCaller:
    """Calls the management API app in process, as a given principal."""

    def __init__(self, api: Any) -> None:
        self.api = api

    async def __call__(self, origin: Scope, principal: Principal, method: str, path: str,
                       body: Any = None, query: dict[str, Any] | None = None) -> Answer:
        payload = b"" if body is None else json.dumps(body).encode()
        scope = _scope(origin, principal, method, path, payload if body is not None else None,
                       query)
        sent = False
        answered = asyncio.Event()

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": payload, "more_body": False}
            # Still "connected" until the whole answer is sent: a streaming response that
            # listens for a disconnect meanwhile (Starlette's does) would stop early.
            await answered.wait()
            return {"type": "http.disconnect"}

        status = 500
        answer_headers: dict[str, str] = {}
        chunks: list[bytes] = []

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                answer_headers.update(_headers(message))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    answered.set()

        await self.api(scope, receive, send)
        return _answer(status, answer_headers, b"".join(chunks))

    async def stream(self, origin: Scope, principal: Principal, method: str, path: str,
                     query: dict[str, Any] | None = None
                     ) -> tuple[Answer, AsyncIterator[bytes] | None]:
        """Like calling, but a successful answer's body arrives piece by piece as the API
        sends it (an export of millions of lines never sits in memory): returns the answer's
        status and headers with an iterator of its body. A refusal comes whole, as from a
        call, with no iterator. The API runs as a task that waits while the iterator's
        reader is behind (a bounded queue), and is cancelled if the reader stops early."""
        scope = _scope(origin, principal, method, path, None, query)
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=_STREAM_QUEUE)
        finished = asyncio.Event()
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            # Starlette's streaming responses listen for a disconnect while they send: the
            # reader is "connected" until it has read everything or given up.
            await finished.wait()
            return {"type": "http.disconnect"}

        async def run() -> None:
            try:
                await self.api(scope, receive, queue.put)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the reader raises it
                await queue.put(exc)
                return
            await queue.put(_END)

        task = asyncio.create_task(run())

        async def stop() -> None:
            finished.set()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        async def next_message() -> Any:
            item = await queue.get()
            if isinstance(item, Exception):
                raise item
            return item

        try:
            start = await next_message()
            while start is not _END and start["type"] != "http.response.start":
                start = await next_message()
        except BaseException:
            await stop()
            raise
        if start is _END:
            await stop()
            return Answer(500), None
        status, headers = int(start["status"]), dict(_headers(start))
        if not 200 <= status < 300:
            chunks = []
            try:
                while (item := await next_message()) is not _END:
                    if item["type"] == "http.response.body":
                        chunks.append(item.get("body", b""))
            finally:
                await stop()
            return _answer(status, headers, b"".join(chunks)), None

        async def body() -> AsyncIterator[bytes]:
            try:
                while (item := await next_message()) is not _END:
                    if item["type"] == "http.response.body" and item.get("body"):
                        yield item["body"]
            finally:
                await stop()

        return Answer(status, None, b"", headers), body()


_END = object()
_STREAM_QUEUE = 16


def _scope(origin: Scope, principal: Principal, method: str, path: str,
           payload: bytes | None, query: dict[str, Any] | None) -> Scope:
    """The in-process request: the origin's address headers, JSON, the acting principal."""
    headers = [(k, v) for k, v in origin.get("headers", ()) if k in _PASSED_HEADERS]
    headers.append((b"accept", b"application/json"))
    if payload is not None:
        headers += [(b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode())]
    params = {k: v for k, v in (query or {}).items() if v is not None and v != ""}
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": method, "scheme": origin.get("scheme", "http"),
        "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": urlencode(params, doseq=True).encode(),
        "headers": headers, "client": origin.get("client"), "server": origin.get("server"),
        ACTING_KEY: principal,
    }


def _headers(start: dict[str, Any]) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start.get("headers", ())]


def _answer(status: int, headers: dict[str, str], raw: bytes) -> Answer:
    data = None
    if raw and headers.get("content-type", "").startswith("application/json"):
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
    return Answer(status, data, raw, headers)


__all__ = ["Answer", "ApiCaller", "Receive", "Send"]
