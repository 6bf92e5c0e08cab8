"""A real HTTP receiver for webhook tests: records every request, answers as it is told.

It runs http.server in a thread on a loopback port. `answers` scripts the status codes of
the first requests (then 200), so that a test can make Moorage retry; a receiver that is
not started yet (or stopped) refuses connections, as a receiver that is down does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.server import free_port


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float  # time.monotonic()

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def event(self) -> str:
        return self.headers.get("x-moorage-event", "")

    @property
    def delivery(self) -> str:
        return self.headers.get("x-moorage-delivery", "")

    def signed_with(self, secret: str) -> bool:
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers.get("x-moorage-signature", ""), expected)


class Receiver:
    def __init__(self, port: int | None = None, answers: list[int] | None = None) -> None:
        self.port = port or free_port()
        self.answers = list(answers or [])
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with owner._lock:
                    owner.requests.append(Received(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                        time.monotonic()))
                    code = owner.answers.pop(0) if owner.answers else 200
                reply = b"accepted" if code < 300 else f"receiver failure {code}".encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def received(self, event: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if event is None or r.event == event]

    def wait_for(self, count: int, timeout: float = 120.0, event: str | None = None,
                 settle: float = 0.0) -> list[Received]:
        """Wait until `count` requests (of one event type) arrived; then, with `settle`, wait
        that much longer so that a duplicate would have time to show up too."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.received(event)
            if len(found) >= count:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"{len(self.received(event))} of {count} webhook requests "
                                 f"arrived within {timeout}s: {self.received()}")
        if settle:
            time.sleep(settle)
        return self.received(event)
