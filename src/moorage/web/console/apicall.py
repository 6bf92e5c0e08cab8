"""The console reads and changes everything through the management API, in process.

Each call is an ASGI request to the same FastAPI app that serves `/api/v1`, made on behalf of
the signed-in user (the principal travels in a scope key that no outside request can set,
deps.ACTING_KEY). So a page shows exactly what the API would show that user, an action is
refused exactly where the API refuses it, validated by the same models, and recorded in the
audit log as the API records it: the console has no rules of its own to drift apart.

The client's address and forwarding headers are passed on, so network rules apply as well.
"""

from __future__ import annotations

import json
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
        headers = [(k, v) for k, v in origin.get("headers", ()) if k in _PASSED_HEADERS]
        headers.append((b"accept", b"application/json"))
        if body is not None:
            headers += [(b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode())]
        params = {k: v for k, v in (query or {}).items() if v is not None and v != ""}
        scope: Scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": origin.get("scheme", "http"),
            "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": urlencode(params, doseq=True).encode(),
            "headers": headers, "client": origin.get("client"), "server": origin.get("server"),
            ACTING_KEY: principal,
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": payload, "more_body": False}
            return {"type": "http.disconnect"}

        status = 500
        answer_headers: dict[str, str] = {}
        chunks: list[bytes] = []

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                answer_headers.update((k.decode("latin-1"), v.decode("latin-1"))
                                      for k, v in message.get("headers", ()))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.api(scope, receive, send)
        raw = b"".join(chunks)
        data = None
        if raw and answer_headers.get("content-type", "").startswith("application/json"):
            try:
                data = json.loads(raw)
            except ValueError:
                data = None
        return Answer(status, data, raw, answer_headers)


__all__ = ["Answer", "ApiCaller", "Receive", "Send"]
