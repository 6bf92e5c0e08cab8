"""A small keep-alive HTTP/1.1 client on asyncio streams, for seeding and for the pull load.

httpx costs ~0.5 ms of client CPU per request; on a two-core machine that client would eat the
cores the servers under test need. This one does only what a registry client needs: one
request at a time per connection, Content-Length or chunked bodies, HEAD, `Connection: close`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import urlsplit

BODY_WRITE = 1 << 20  # a request body is handed to the transport this many bytes at a time


class HTTPError(Exception):
    """A malformed response or a dropped connection."""


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    length: int = 0  # bytes of body received (also when the body was discarded)

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)


def path_of(location: str) -> str:
    """The path and query of a Location header (absolute or relative)."""
    if location.startswith(("http://", "https://")):
        parts = urlsplit(location)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return location


class Connection:
    """One keep-alive connection to HOST:PORT; reconnects when the server closed it."""

    def __init__(self, host: str, port: int, base_headers: dict[str, str] | None = None) -> None:
        self.host, self.port = host, port
        self.base = {"host": f"{host}:{port}", **(base_headers or {})}
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port,
                                                                 limit=1 << 20)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None

    async def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                      body: bytes | memoryview = b"", keep_body: bool = True) -> Response:
        """Send one request and read its whole response (the body is dropped unless kept)."""
        for attempt in (0, 1):
            fresh = self.writer is None
            if fresh:
                await self._connect()
            try:
                return await self._exchange(method, path, headers, body, keep_body)
            except (ConnectionError, asyncio.IncompleteReadError, HTTPError) as exc:
                await self.close()
                # a keep-alive connection the server had already closed: retry once, fresh
                if fresh or attempt == 1 or not isinstance(
                        exc, (ConnectionError, asyncio.IncompleteReadError)):
                    raise HTTPError(f"{method} {path}: {exc!r}") from exc
        raise AssertionError("unreachable")

    async def _exchange(self, method: str, path: str, headers: dict[str, str] | None,
                        body: bytes | memoryview, keep_body: bool) -> Response:
        assert self.reader is not None and self.writer is not None
        lines = [f"{method} {path} HTTP/1.1"]
        merged = {**self.base, **(headers or {})}
        if body or method in ("POST", "PUT", "PATCH"):
            merged["content-length"] = str(len(body))
        lines.extend(f"{k}: {v}" for k, v in merged.items())
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if body and len(body) < 65536:
            self.writer.write(head + bytes(body))
        else:
            self.writer.write(head)
            # A big body goes in 1 MiB writes, each drained: handed to asyncio at once, a
            # 256 MiB body was copied into the transport's buffer and sent 3-4× slower than
            # curl sends it (13-15 s against 4.4 s to the same server, same minute).
            view = memoryview(body)
            for at in range(0, len(view), BODY_WRITE):
                self.writer.write(view[at:at + BODY_WRITE])
                await self.writer.drain()
        await self.writer.drain()
        reader = self.reader
        raw = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = raw[:-4].decode("latin-1").split("\r\n")
        try:
            status = int(status_line.split(" ", 2)[1])
        except (IndexError, ValueError):
            raise HTTPError(f"bad status line {status_line!r}") from None
        hdrs: dict[str, str] = {}
        for line in header_lines:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        resp = Response(status, hdrs)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            pass
        elif "content-length" in hdrs:
            remaining = int(hdrs["content-length"])
            resp.length = remaining
            if keep_body:
                resp.body = await reader.readexactly(remaining)
            else:
                while remaining:
                    chunk = await reader.read(min(remaining, 1 << 20))
                    if not chunk:
                        raise asyncio.IncompleteReadError(b"", remaining)
                    remaining -= len(chunk)
        elif hdrs.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                chunk = await reader.readexactly(size + 2)
                resp.length += size
                if keep_body:
                    parts.append(chunk[:-2])
            resp.body = b"".join(parts)
        else:  # body until close
            resp.body = await reader.read()
            resp.length = len(resp.body)
            await self.close()
            return resp
        if hdrs.get("connection", "").lower() == "close":
            await self.close()
        return resp
