"""Request rate limits per client address, shared by replicas through Redis.

A fixed one-minute window per address: simple, one round trip, and fair enough to stop a
runaway client from starving the others. Off unless `rate_limit_per_minute` is set; the
limited client gets 429 TOOMANYREQUESTS with Retry-After. It covers /v2, /auth/token and
/api/v1 with one budget per address.

The Redis round trip is made with redis-py's asyncio client, so that the event loop keeps
serving while it waits; each event loop (one per worker process) gets its own connection
pool. Without Redis the count is kept per process (with several workers, each allows the
limit), which is what a limit of requests, unlike a lockout, can afford.

While Redis is unavailable the count falls back to the same per-process count (logged, at
most once a minute, by cache/outage.py): the limit neither turns into a refusal of every
request nor into no limit at all, and Redis counts again as soon as it answers.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

from moorage.cache.outage import RedisHealth, redis_errors
from moorage.oci.errors import RegistryError
from moorage.web.http import Receive, Scope, Send, respond


class RateLimiter:
    def __init__(self, per_minute: int, redis_url: str = "",
                 prefix: str = "moorage:rate:", health: RedisHealth | None = None) -> None:
        self.per_minute = per_minute
        self.redis_url = redis_url
        self.prefix = prefix
        self.health = health or RedisHealth(redis_url)
        self._clients: dict[int, Any] = {}
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def _redis(self) -> Any:
        loop = id(asyncio.get_running_loop())
        client = self._clients.get(loop)
        if client is None:
            import redis.asyncio

            from redis.backoff import NoBackoff
            from redis.asyncio.retry import Retry

            client = self._clients[loop] = redis.asyncio.Redis.from_url(
                self.redis_url, socket_timeout=5, socket_connect_timeout=2,
                health_check_interval=30, retry=Retry(NoBackoff(), 1))
        return client

    async def _shared_count(self, key: str) -> int | None:
        """The count in Redis, or None when Redis is away (or was, a moment ago)."""
        if self.health.skipping():
            return None
        try:
            pipe = self._redis().pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, 120)
            count = int((await pipe.execute())[0])
        except redis_errors() as exc:
            self.health.failed("a rate limit count", exc)
            return None
        self.health.succeeded()
        return count

    def _local_count(self, address: str, window: int) -> int:
        with self._lock:
            count = self._counts.get((address, window), 0) + 1
            self._counts[(address, window)] = count
            if len(self._counts) > 100_000:
                self._counts = {k: v for k, v in self._counts.items() if k[1] == window}
        return count

    async def check(self, address: str) -> None:
        if self.per_minute <= 0:
            return
        window = int(time.time() // 60)
        count = None
        if self.redis_url:
            count = await self._shared_count(f"{self.prefix}{address}:{window}")
        if count is None:
            count = self._local_count(address, window)
        if count > self.per_minute:
            retry = 60 - int(time.time() % 60)
            raise RegistryError("TOOMANYREQUESTS",
                                f"more than {self.per_minute} requests a minute from {address}",
                                headers={"retry-after": str(retry)})


class RateLimited:
    """ASGI wrapper that applies the limit before an app (the management API) sees the
    request, and answers a refusal in that app's error shape."""

    def __init__(self, app: Any, limit: Any) -> None:
        self.app = app
        self.limit = limit  # async (scope) -> None, raising RegistryError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                await self.limit(scope)
            except RegistryError as exc:
                body = json.dumps({"error": {"code": "TOOMANYREQUESTS",
                                             "message": exc.message}}).encode()
                await respond(send, exc.status, body,
                              {"content-type": "application/json", **exc.headers})
                return
        await self.app(scope, receive, send)
