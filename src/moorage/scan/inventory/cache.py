"""The per-layer cache: a layer's cataloguing result, kept under its digest.

A layer is immutable (its digest is its bytes), so its result is valid for as long as the
catalogers and limits that made it are the same: the cache key names both. A base layer
shared by a thousand images is then read once; combining cached results per image (whiteouts
of later layers applied afresh each time) costs no layer bytes at all.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Protocol

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from moorage.db.schema import scan_layer_cache
from moorage.scan.inventory.limits import Limits
from moorage.scan.inventory.records import FORMAT


def cache_key(limits: Limits) -> str:
    """What a cached result depends on besides the layer: the record format and the limits."""
    return hashlib.sha256(f"{FORMAT}|{limits.key()}".encode()).hexdigest()[:32]


class LayerCache(Protocol):
    def get(self, digest: str, key: str) -> bytes | None: ...

    def put(self, digest: str, key: str, data: bytes) -> None: ...


class MemoryLayerCache:
    """A cache for one process (tests, a one-off CLI run)."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()

    def get(self, digest: str, key: str) -> bytes | None:
        with self._lock:
            return self._items.get((digest, key))

    def put(self, digest: str, key: str, data: bytes) -> None:
        with self._lock:
            self._items[(digest, key)] = data


class SqlLayerCache:
    """The cache in the metadata database (`scan_layer_cache`), shared by every worker and
    replica: one row per layer digest, replaced when its key changes."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, digest: str, key: str) -> bytes | None:
        t = scan_layer_cache.c
        with self._engine.begin() as conn:
            row = conn.execute(select(t.result).where(t.digest == digest, t.cache_key == key)
                               ).first()
            if row is None:
                return None
            conn.execute(update(scan_layer_cache).where(t.digest == digest)
                         .values(used_at=time.time()))
            return bytes(row.result)

    def put(self, digest: str, key: str, data: bytes) -> None:
        now = time.time()
        values = {"digest": digest, "cache_key": key, "result": data, "created_at": now,
                  "used_at": now}
        try:
            with self._engine.begin() as conn:
                conn.execute(delete(scan_layer_cache).where(scan_layer_cache.c.digest == digest))
                conn.execute(insert(scan_layer_cache).values(**values))
        except IntegrityError:
            pass  # another worker cached the same layer at the same moment: same bytes

    def forget(self, digests: list[str]) -> int:
        """Drop the results of layers no longer stored (for garbage collection to call)."""
        with self._engine.begin() as conn:
            return conn.execute(delete(scan_layer_cache)
                                .where(scan_layer_cache.c.digest.in_(digests))).rowcount
