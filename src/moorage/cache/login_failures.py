"""The counts behind login lockouts (access/throttle.py) in Redis, shared by replicas.

One hash per key (`failures`, `last`), updated by a script so that the stale check, the
increment and the expiry are one atomic step; Redis forgets a key `window` seconds after its
last failure, so nothing needs sweeping.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

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
