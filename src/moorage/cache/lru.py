"""A size-bounded in-process LRU, for immutable values such as manifest bytes by digest."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LRUCache(Generic[K, V]):
    """Evicts least recently used entries once the summed `cost` exceeds `capacity`."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: K, value: V, cost: int = 1) -> None:
        if cost > self.capacity:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self.used -= old[1]
        self._items[key] = (value, cost)
        self.used += cost
        while self.used > self.capacity:
            _, (_, evicted_cost) = self._items.popitem(last=False)
            self.used -= evicted_cost

    def discard(self, key: K) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.used -= old[1]

    def __len__(self) -> int:
        return len(self._items)
