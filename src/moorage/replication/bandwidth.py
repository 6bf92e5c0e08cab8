"""A per-rule bandwidth limit: a token bucket that the streamed chunks of a copy pass through.

The bucket holds at most `burst` bytes of credit (one second's worth by default) and refills
at `rate` bytes a second. A chunk waits until the credit covers it, so over any window the
bytes let through are at most `rate * window + burst`. It keeps its own accounting (bytes
granted per whole second of its clock) so that a test, with an injected clock and sleep,
asserts on what the bucket let through rather than on wall time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from moorage.remote import BlobSource


class TokenBucket:
    def __init__(self, rate: int, burst: int | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if rate <= 0:
            raise ValueError("a bandwidth limit is a positive number of bytes per second")
        self.rate = rate
        self.burst = burst if burst is not None else rate
        self.clock, self.sleep = clock, sleep
        self._credit = float(self.burst)
        self._at = clock()
        self.granted: dict[int, int] = {}  # whole second of the clock -> bytes let through

    def _refill(self) -> None:
        now = self.clock()
        self._credit = min(float(self.burst), self._credit + (now - self._at) * self.rate)
        self._at = now

    async def take(self, amount: int) -> None:
        """Wait until `amount` bytes may pass. A chunk larger than the burst passes in
        burst-sized parts of credit, so it is never refused, only spread out."""
        left = amount
        while left > 0:
            self._refill()
            part = min(left, self.burst)
            if self._credit < part:
                await self.sleep((part - self._credit) / self.rate)
                continue
            self._credit -= part
            left -= part
            second = int(self.clock())
            self.granted[second] = self.granted.get(second, 0) + part


class LimitedSource:
    """A blob source whose chunks pass through a bucket (None: no limit), counting bytes."""

    def __init__(self, inner: BlobSource, bucket: TokenBucket | None,
                 counted: Callable[[int], None] | None = None) -> None:
        self.inner, self.bucket, self.counted = inner, bucket, counted
        self.size = inner.size

    async def open(self, offset: int) -> AsyncIterator[bytes]:
        stream = self.inner.open(offset)
        try:
            async for chunk in stream:
                if self.bucket is not None:
                    await self.bucket.take(len(chunk))
                if self.counted is not None:
                    self.counted(len(chunk))
                yield chunk
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
