"""Request rate limits per client address, shared by replicas through Redis.

A fixed one-minute window per address: simple, one round trip, and fair enough to stop a
runaway client from starving the others. Off unless `rate_limit_per_minute` is set; the
limited client gets 429 TOOMANYREQUESTS with Retry-After.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from moorage.oci.errors import RegistryError


class RateLimiter:
    def __init__(self, per_minute: int, redis_client: Any = None,
                 prefix: str = "moorage:rate:") -> None:
        self.per_minute = per_minute
        self.redis = redis_client
        self.prefix = prefix
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def check(self, address: str) -> None:
        if self.per_minute <= 0:
            return
        window = int(time.time() // 60)
        if self.redis is not None:
            key = f"{self.prefix}{address}:{window}"
            pipe = self.redis.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, 120)
            count = int(pipe.execute()[0])
        else:
            with self._lock:
                count = self._counts.get((address, window), 0) + 1
                self._counts[(address, window)] = count
                if len(self._counts) > 100_000:
                    self._counts = {k: v for k, v in self._counts.items() if k[1] == window}
        if count > self.per_minute:
            retry = 60 - int(time.time() % 60)
            raise RegistryError("TOOMANYREQUESTS",
                                f"more than {self.per_minute} requests a minute from {address}",
                                headers={"retry-after": str(retry)})
