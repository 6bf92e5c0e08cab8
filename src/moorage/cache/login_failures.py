"""The counts behind login lockouts (access/throttle.py) in Redis, shared by replicas.

One hash per key (`failures`, `last`), updated by a script so that the stale check, the
increment and the expiry are one atomic step; Redis forgets a key `window` seconds after its
last failure, so nothing needs sweeping.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from moorage.cache.outage import RedisDown, RedisHealth

_ADD = """
local counts = {}
for i, key in ipairs(KEYS) do
  local last = tonumber(redis.call('hget', key, 'last') or '0')
  if last < tonumber(ARGV[2]) then redis.call('hset', key, 'failures', 0) end
  counts[i] = redis.call('hincrby', key, 'failures', 1)
  redis.call('hset', key, 'last', ARGV[1])
  redis.call('expire', key, ARGV[3])
end
return counts
"""


class RedisLoginFailures:
    def __init__(self, client: Any, prefix: str = "moorage:login:") -> None:
        self.redis = client
        self.prefix = prefix
        self._add = client.register_script(_ADD)

    def failures(self, keys: Sequence[str], now: float,
                 window: float) -> dict[str, tuple[int, float]]:
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(self.prefix + key, "failures", "last")
        counts = {}
        for key, (failures, last) in zip(keys, pipe.execute()):
            if failures is not None and last is not None and float(last) >= now - window:
                counts[key] = (int(failures), float(last))
        return counts

    def add_failure(self, keys: Sequence[str], now: float,
                    window: float) -> dict[str, tuple[int, float]]:
        found = self._add(keys=[self.prefix + k for k in keys],
                          args=[repr(now), repr(now - window), math.ceil(window)])
        return {key: (int(n), now) for key, n in zip(keys, found)}

    def clear(self, key: str) -> None:
        self.redis.delete(self.prefix + key)


class FallbackFailures:
    """Redis counts while Redis answers, the database's while it does not.

    A lockout is a defence: it must not turn off because a cache is away, nor turn a login
    into a 500. While Redis is unavailable, failures are counted in the database (as on an
    instance without Redis), which every replica sees; when it is back, Redis counts again.
    A count begun on one side is not carried to the other: an outage at most restarts it.
    """

    def __init__(self, redis: RedisLoginFailures, database: Any, health: RedisHealth) -> None:
        self.redis = redis
        self.database = database
        self.health = health

    def failures(self, keys: Sequence[str], now: float,
                 window: float) -> dict[str, tuple[int, float]]:
        try:
            return self.health.call("a login failure count",
                                    lambda: self.redis.failures(keys, now, window))
        except RedisDown:
            return self.database.failures(keys, now, window)

    def add_failure(self, keys: Sequence[str], now: float,
                    window: float) -> dict[str, tuple[int, float]]:
        try:
            return self.health.call("a login failure count",
                                    lambda: self.redis.add_failure(keys, now, window))
        except RedisDown:
            return self.database.add_failure(keys, now, window)

    def clear(self, key: str) -> None:
        try:
            self.health.call("a login failure reset", lambda: self.redis.clear(key))
        except RedisDown:
            pass
        self.database.clear(key)
