"""HTTP/1.1 requests over a plain socket, sent in pieces: for tests of requests in flight.

An HTTP client library sends a body whole; a race test needs two requests whose bodies are
half sent at the same moment, so that both handlers are mid-stream on the server at once. A
RawRequest sends its head and the first part of its body at construction, the rest when
asked, and reads the response only then.
"""

from __future__ import annotations

import select
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class RawRequest:
    def __init__(self, base_url: str, method: str, target: str,
                 headers: dict[str, str] | None = None, first: bytes = b"",
                 timeout: float = 60.0) -> None:
        url = urlsplit(base_url)
        self.sock = socket.create_connection((url.hostname, url.port), timeout=timeout)
        lines = [f"{method} {target} HTTP/1.1", f"Host: {url.netloc}", "Connection: close",
                 *(f"{k}: {v}" for k, v in (headers or {}).items())]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + first)

    def send(self, data: bytes) -> None:
        """Send more of the body. A server that answered the request (a refusal) before
        reading all of its body may have closed the connection: the rest is then not sent,
        and response() reads what the server answered."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def answered(self, wait: float) -> bool:
        """Whether the server has begun to answer within `wait` seconds (without reading)."""
        readable, _, _ = select.select([self.sock], [], [], wait)
        return bool(readable)

    def response(self) -> RawResponse:
        """Read the whole response (the server closes the connection after it)."""
        data = b""
        try:
            while chunk := self.sock.recv(1 << 16):
                data += chunk
        except ConnectionResetError:
            pass  # the server may drop a request it refused before reading its body
        finally:
            self.sock.close()
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if not lines or not lines[0].startswith("HTTP/"):
            return RawResponse(0, {}, data)
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return RawResponse(status, headers, body)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
