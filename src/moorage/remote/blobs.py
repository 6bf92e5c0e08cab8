"""Blob bytes in motion: a verified download stream, the sources an upload reads from, and
an upload session that can be resumed after an interruption.

Nothing here holds a blob whole: a download yields chunks of at most `Limits.read_chunk`
bytes, hashing each as it passes; an upload streams its source into PATCH or PUT bodies. A
download that turns out wrong (a digest mismatch, a short or overlong body) raises only when
its stream ends or overflows, after the last chunk it yielded: the caller writing the chunks
to its store then discards what it wrote, and stores nothing unverified.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import httpx

from moorage.oci.digest import Digest
from moorage.remote.errors import (DigestMismatch, RemoteError, RemoteTimeout, RemoteTooLarge,
                                   ShortBody)

class BlobReader:
    """An open blob download. Iterate `chunks()` once; `size` is the blob's whole length when
    the descriptor or the registry said it. With `offset`, the stream starts there (a Range
    request); its digest is then checked only if `hasher` carried the hash of the bytes
    before `offset` (the caller has them), and `verified` tells which."""

    def __init__(self, response: httpx.Response, digest: Digest, *, expected: int | None,
                 offset: int, hasher: "hashlib._Hash | None", chunk: int,
                 error: "ErrorFactory") -> None:
        self._response = response
        self.digest = digest
        self.offset = offset
        self._chunk = chunk
        self._error = error
        self._skip = 0
        announced = _total_length(response, offset)
        if response.status_code == 200 and offset:
            self._skip = offset  # the registry ignored the Range: drop the bytes we have
            self.offset = 0
        self.size = expected if expected is not None else announced
        if expected is not None and announced is not None and announced > expected:
            raise error(RemoteTooLarge, f"the registry announces {announced} bytes, the "
                        f"descriptor {expected}")
        if self.offset == 0:
            self._hasher: "hashlib._Hash | None" = digest.hasher()
        else:
            self._hasher = hasher
        self.verified = self._hasher is not None
        self.received = 0  # bytes yielded so far

    async def chunks(self) -> AsyncIterator[bytes]:
        position = self.offset
        hasher, size, skip = self._hasher, self.size, self._skip
        try:
            async for received in self._response.aiter_raw():
                # as the network gives them (no buffering: a broken stream has handed on
                # every byte that arrived), cut to the bound
                for start in range(0, len(received), self._chunk):
                    chunk = received[start:start + self._chunk]
                    if skip:
                        cut = min(skip, len(chunk))
                        skip -= cut
                        position += cut
                        if hasher is not None:
                            hasher.update(chunk[:cut])
                        chunk = chunk[cut:]
                        if not chunk:
                            continue
                    position += len(chunk)
                    if size is not None and position > size:
                        raise self._error(RemoteTooLarge, f"the blob is longer than its {size} "
                                          "bytes")
                    if hasher is not None:
                        hasher.update(chunk)
                    self.received += len(chunk)
                    yield chunk
        except httpx.TimeoutException:
            raise self._error(RemoteTimeout, f"the blob stalled after {position} bytes "
                              "(read timeout)") from None
        except httpx.TransportError:
            raise self._error(ShortBody, f"the connection ended after {position} of "
                              f"{size if size is not None else 'an unknown number of'} bytes"
                              ) from None
        if size is not None and position < size:
            raise self._error(ShortBody, f"the blob ended after {position} of {size} bytes")
        if hasher is not None and hasher.hexdigest() != self.digest.hex:
            raise self._error(DigestMismatch, f"the bytes hash to {self.digest.algorithm}:"
                              f"{hasher.hexdigest()}, not the digest asked for")


class ErrorFactory(Protocol):
    def __call__(self, kind: type[RemoteError], message: str) -> RemoteError: ...


def _total_length(response: httpx.Response, offset: int) -> int | None:
    """The blob's whole length from Content-Range (a 206) or Content-Length (a 200)."""
    if response.status_code == 206:
        total = response.headers.get("content-range", "").rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = response.headers.get("content-length", "")
    return int(length) if length.isdigit() else None


class BlobSource(Protocol):
    """Where an upload reads a blob from: its length, and a stream from any offset (to
    resume an interrupted upload where the registry says it stopped)."""

    size: int

    def open(self, offset: int) -> AsyncIterator[bytes]: ...


class BytesSource:
    """A blob already in memory (a config, a small manifest-sized artifact)."""

    def __init__(self, data: bytes, chunk: int = 1 << 20) -> None:
        self.data, self.size, self._chunk = data, len(data), chunk

    async def open(self, offset: int) -> AsyncIterator[bytes]:
        view = memoryview(self.data)
        for start in range(offset, self.size, self._chunk):
            yield bytes(view[start:start + self._chunk])


class FileSource:
    """A blob in a file; reads run in a worker thread, one chunk at a time."""

    def __init__(self, path: str | Path, chunk: int = 1 << 20) -> None:
        self.path, self._chunk = Path(path), chunk
        self.size = self.path.stat().st_size

    async def open(self, offset: int) -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(open, self.path, "rb")
        try:
            await asyncio.to_thread(handle.seek, offset, os.SEEK_SET)
            while chunk := await asyncio.to_thread(handle.read, self._chunk):
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)


class Cursor:
    """One source stream cut into consecutive pieces of given lengths (one per PATCH),
    keeping what a chunk had beyond a piece for the next one."""

    def __init__(self, stream: AsyncIterator[bytes]) -> None:
        self._stream = stream
        self._left = b""

    async def take(self, length: int) -> AsyncIterator[bytes]:
        while length > 0:
            if not self._left:
                try:
                    self._left = await anext(self._stream)
                except StopAsyncIteration:
                    raise ShortBody(f"the source ended {length} bytes early") from None
            piece, self._left = self._left[:length], self._left[length:]
            length -= len(piece)
            yield piece

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


def parse_range_end(value: str | None) -> int | None:
    """The offset after an upload's `Range: 0-N` (or `bytes=0-N`): N + 1. Distribution says
    `0-0` for an empty upload as well as for one byte; it is read as empty (an upload is
    never interrupted after exactly one byte by our chunk sizes, and a wrong guess costs a
    416 and a resume, never wrong bytes)."""
    if not value:
        return None
    value = value.strip().removeprefix("bytes=")
    start, sep, end = value.partition("-")
    if not sep or not start.isdigit() or not end.isdigit():
        return None
    if int(start) == 0 and int(end) == 0:
        return 0
    return int(end) + 1
