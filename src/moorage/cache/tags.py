"""Tag → digest lookups shared by replicas through Redis, invalidated on push and delete.

Each repository has a generation counter; cached entries live under the current generation,
and a change bumps it *after* its transaction commits. A reader that read the database before
the change can only store its stale answer under the old generation, which nobody reads any
more, so no replica ever serves a tag older than the last acknowledged push.

When Redis is away (cache/outage.py) a read is a miss and a store is skipped, so tags are
read from the database; a change must bump the generation *before* it commits too
(`before_change`), and is refused with 503 when it cannot: a change committed while Redis
could not be told would leave the old answer current there when Redis comes back. A bump
after the commit that fails (Redis went away in between) is retried before this process next
uses the cache.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from moorage.cache.outage import RedisDown, RedisHealth, Unavailable


class TagCache(Protocol):
    def get(self, repository: str, tag: str) -> tuple[str, str | None]:
        """(generation, cached digest or None)."""

    def put(self, repository: str, generation: str, tag: str, digest: str) -> None: ...

    def before_change(self, repository: str) -> None:
        """Called before a change of the repository's tags commits; raises Unavailable
        when the cache cannot be told (so the change must not go ahead)."""

    def invalidate(self, repository: str) -> None:
        """Called after the change committed; never raises."""


class NoTagCache:
    """Without Redis every lookup is one indexed query, which is always current."""

    def get(self, repository: str, tag: str) -> tuple[str, str | None]:
        return "", None

    def put(self, repository: str, generation: str, tag: str, digest: str) -> None:
        return None

    def before_change(self, repository: str) -> None:
        return None

    def invalidate(self, repository: str) -> None:
        return None


class RedisTagCache:
    _GET = ("local g = redis.call('get', KEYS[1]) or '0' "
            "return {g, redis.call('hget', KEYS[1] .. ':' .. g, ARGV[1])}")

    def __init__(self, client: Any, ttl_seconds: int = 300, prefix: str = "moorage:tags:",
                 health: RedisHealth | None = None) -> None:
        self.client = client
        self.ttl = ttl_seconds
        self.prefix = prefix
        self.health = health or RedisHealth()
        self._get = client.register_script(self._GET)
        self._pending: set[str] = set()  # repositories whose bump after a change failed
        self._pending_lock = threading.Lock()

    def _flush_pending(self, may_skip: bool) -> None:
        """Bump what a failed bump left behind, before the cache is trusted again."""
        if not self._pending:
            return
        with self._pending_lock:
            pending, self._pending = self._pending, set()
        try:
            for repository in list(pending):
                self.health.call("a tag cache invalidation",
                                 lambda r=repository: self.client.incr(self.prefix + r),
                                 may_skip)
                pending.discard(repository)
        finally:
            with self._pending_lock:
                self._pending |= pending

    def get(self, repository: str, tag: str) -> tuple[str, str | None]:
        try:
            self._flush_pending(may_skip=True)
            generation, digest = self.health.call(
                "a tag cache read",
                lambda: self._get(keys=[self.prefix + repository], args=[tag]))
        except RedisDown:
            return "", None  # a miss: the database answers, and nothing is stored
        return (generation.decode() if isinstance(generation, bytes) else str(generation),
                digest.decode() if digest else None)

    def put(self, repository: str, generation: str, tag: str, digest: str) -> None:
        if not generation:  # the read was not answered by Redis: store nothing
            return
        key = f"{self.prefix}{repository}:{generation}"

        def store() -> None:
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(key, tag, digest)
            pipe.expire(key, self.ttl)
            pipe.execute()
        try:
            self.health.call("a tag cache write", store)
        except RedisDown:
            pass

    def before_change(self, repository: str) -> None:
        try:
            self._flush_pending(may_skip=False)
            self.health.call("a tag change",
                             lambda: self.client.incr(self.prefix + repository),
                             may_skip=False)
        except RedisDown:
            raise Unavailable(f"the tag cache (Redis at {self.health.where}) is unavailable; "
                              "tags cannot change until it is back, try again later") from None

    def invalidate(self, repository: str) -> None:
        try:
            self.health.call("a tag cache invalidation",
                             lambda: self.client.incr(self.prefix + repository),
                             may_skip=False)
        except RedisDown:
            with self._pending_lock:
                self._pending.add(repository)
