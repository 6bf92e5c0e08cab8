"""Tag → digest lookups shared by replicas through Redis, invalidated on push and delete.

Each repository has a generation counter; cached entries live under the current generation,
and a change bumps it *after* its transaction commits. A reader that read the database before
the change can only store its stale answer under the old generation, which nobody reads any
more, so no replica ever serves a tag older than the last acknowledged push.
"""

from __future__ import annotations

from typing import Any, Protocol


class TagCache(Protocol):
    def get(self, repository: str, tag: str) -> tuple[str, str | None]:
        """(generation, cached digest or None)."""

    def put(self, repository: str, generation: str, tag: str, digest: str) -> None: ...

    def invalidate(self, repository: str) -> None: ...


class NoTagCache:
    """Without Redis every lookup is one indexed query, which is always current."""

    def get(self, repository: str, tag: str) -> tuple[str, str | None]:
        return "", None

    def put(self, repository: str, generation: str, tag: str, digest: str) -> None:
        return None

    def invalidate(self, repository: str) -> None:
        return None


class RedisTagCache:
    _GET = ("local g = redis.call('get', KEYS[1]) or '0' "
            "return {g, redis.call('hget', KEYS[1] .. ':' .. g, ARGV[1])}")

    def __init__(self, client: Any, ttl_seconds: int = 300, prefix: str = "moorage:tags:") -> None:
        self.client = client
        self.ttl = ttl_seconds
        self.prefix = prefix
        self._get = client.register_script(self._GET)

    def get(self, repository: str, tag: str) -> tuple[str, str | None]:
        generation, digest = self._get(keys=[self.prefix + repository], args=[tag])
        return (generation.decode() if isinstance(generation, bytes) else str(generation),
                digest.decode() if digest else None)

    def put(self, repository: str, generation: str, tag: str, digest: str) -> None:
        key = f"{self.prefix}{repository}:{generation}"
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(key, tag, digest)
        pipe.expire(key, self.ttl)
        pipe.execute()

    def invalidate(self, repository: str) -> None:
        self.client.incr(self.prefix + repository)
