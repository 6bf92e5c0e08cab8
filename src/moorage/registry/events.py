"""An in-process event bus: the core announces what happened; features subscribe.

This is how the core stays ignorant of features (audit, webhooks, replication): they register
a handler in app.py and the core only ever calls `publish`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
import time

log = logging.getLogger("moorage.events")


@dataclass(frozen=True, slots=True)
class RegistryEvent:
    action: str  # "push" | "pull" | "delete" | "mount"
    repository: str
    digest: str
    media_type: str | None = None
    tag: str | None = None
    size: int | None = None
    at: float = field(default_factory=time.time)


Handler = Callable[[RegistryEvent], None]


class EventBus:
    def __init__(self) -> None:
        self._handlers: list[Handler] = []

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def publish(self, event: RegistryEvent) -> None:
        for handler in self._handlers:
            try:
                handler(event)
            except Exception:  # a broken subscriber must never fail a push or a pull
                log.exception("event handler %r failed on %s", handler, event.action)
