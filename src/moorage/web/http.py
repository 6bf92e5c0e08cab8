"""Small ASGI helpers for the hot path: plain responses, files and body streams.

The registry API is answered with raw ASGI messages rather than a framework's response objects:
it keeps the per-request cost low and gives exact control of headers such as Content-Length.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any, Callable

from moorage.oci.errors import RegistryError

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]

API_VERSION = (b"docker-distribution-api-version", b"registry/2.0")
# Scope keys the handlers leave for the metrics wrapper (ops/metrics.py): the template of the
# route a request matched (never its raw path), and an unexpected exception a handler turned
# into a 500 itself (so that a database error is counted although nothing was raised).
ROUTE_KEY = "moorage.route"
FAILURE_KEY = "moorage.failure"


def encode_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [API_VERSION, *((k.lower().encode(), str(v).encode("latin-1")) for k, v in headers.items())]


async def respond(send: Send, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                  head: bool = False, content_length: int | None = None,
                  extra: list[tuple[str, str]] | None = None) -> None:
    """Send a whole response; `head` keeps the headers (including length) but drops the body.

    `extra` carries headers that may repeat (one `OCI-Tag` per tag).
    """
    raw = prepare_headers(headers or {}, len(body) if content_length is None else content_length)
    raw.extend((k.encode(), v.encode("latin-1")) for k, v in extra or ())
    await respond_prepared(send, status, body, raw, head)


async def respond_prepared(send: Send, status: int, body: bytes,
                           raw_headers: list[tuple[bytes, bytes]], head: bool = False) -> None:
    """respond() with headers already encoded (Content-Length included), for answers whose
    headers repeat: a manifest's are the same on every pull."""
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


def prepare_headers(headers: dict[str, str], content_length: int) -> list[tuple[bytes, bytes]]:
    raw = encode_headers(headers)
    raw.append((b"content-length", str(content_length).encode()))
    return raw


async def respond_error(send: Send, error: RegistryError, head: bool = False) -> None:
    headers = {"content-type": "application/json", **error.headers}
    await respond(send, error.status, error.body(), headers, head=head)


async def send_file(scope: Scope, send: Send, path: Path, status: int, headers: dict[str, str],
                    start: int, end: int, whole: bool) -> None:
    """Send bytes [start, end) of a file; a whole file goes zero-copy when the server can."""
    raw = prepare_headers(headers, end - start)
    await send({"type": "http.response.start", "status": status, "headers": raw})
    if whole and "http.response.pathsend" in scope.get("extensions", {}):
        await send({"type": "http.response.pathsend", "path": str(path)})
        return
    with open(path, "rb") as f:
        f.seek(start)
        remaining = end - start
        while remaining > 0:
            chunk = await asyncio.to_thread(f.read, min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": remaining > 0})
    if end - start == 0:
        await send({"type": "http.response.body", "body": b""})


async def send_stream(send: Send, status: int, headers: dict[str, str], chunks: Iterator[bytes],
                      length: int) -> None:
    """Stream bytes a store yields (S3, encrypted) without holding them all in memory.

    The first chunk is read before the headers go out, so a blob whose bytes are missing is
    still answered with a proper error; a failure later can only cut the response short.
    """
    end, empty = object(), object()
    # a store's read-ahead (S3's ReadAhead) hands over chunks it holds ready without a hop
    # to a thread; only a wait for one goes to a thread
    ready = getattr(chunks, "next_nowait", None)
    first = await asyncio.to_thread(next, chunks, end)
    raw = prepare_headers(headers, length)
    await send({"type": "http.response.start", "status": status, "headers": raw})
    chunk = first
    while chunk is not end:
        following = ready(end, empty) if ready is not None else empty
        if following is empty:
            following = await asyncio.to_thread(next, chunks, end)
        await send({"type": "http.response.body", "body": chunk, "more_body": following is not end})
        chunk = following
    if first is end:
        await send({"type": "http.response.body", "body": b""})


async def body_stream(receive: Receive) -> AsyncIterator[bytes]:
    """The request body as it arrives; a client that disconnects ends it with an error."""
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.disconnect":
            raise ConnectionAbortedError("client disconnected mid-request")
        if kind == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it exceeds `limit` bytes."""
    parts: list[bytes] = []
    size = 0
    async for chunk in body_stream(receive):
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


def header_values(scope: Scope, name: bytes) -> list[str]:
    return [v.decode("latin-1") for k, v in scope["headers"] if k.lower() == name]


def header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k.lower() == name:
            return v.decode("latin-1")
    return None


def first(values: Iterable[str] | None) -> str | None:
    for value in values or ():
        return value
    return None
