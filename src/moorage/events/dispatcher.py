"""From an event on the bus to delivery rows and queue jobs, in one transaction.

This runs inside the request that caused the event (after its own commit), so it must be
cheap: one query for the subscriptions, and when some match, one transaction that inserts a
delivery row and its job per subscription. The HTTP call happens later, in a worker. Because
the rows and the jobs commit together, a kill -9 right after the push loses no notification.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid

from moorage.cache.decisions import KeptUntilCommit
from moorage.db.changes import signal_of
from moorage.events.payloads import (PING, Origin, event_namespace, event_type, render)
from moorage.events.store import DeliveryRow, NewDelivery, SubscriptionRow, WebhookStore
from moorage.jobs.worker import Worker
from moorage.registry.events import Event

log = logging.getLogger("moorage.events")

JOB_TYPE = "webhook"
MAX_ATTEMPTS = 8  # the default of webhook_max_attempts: backoff 2, 4 … 128 s, about four minutes
JOB_TIMEOUT_SECONDS = 60
# Pulls are the hot path: their subscriber list is kept per process. On SQLite it is kept until
# the next commit by any process (the change signal, cache/decisions.py), so a subscription
# created or disabled anywhere applies to the very next pull; on PostgreSQL, by a request's
# reading of the shared commit signal (db/changes.py), and asked again outside requests;
# without any signal it is kept this long. Every other event asks the database.
PULL_CACHE_SECONDS = 2.0


class Dispatcher:
    def __init__(self, store: WebhookStore, worker: Worker, origin: Origin,
                 max_attempts: int = MAX_ATTEMPTS) -> None:
        self.store = store
        self.max_attempts = max_attempts
        self.worker = worker
        self.origin = origin
        self._pull: tuple[float, list[SubscriptionRow]] | None = None
        self._lock = threading.Lock()
        self._signal = signal_of(store.engine)
        self._kept: KeptUntilCommit[list[SubscriptionRow]] = KeptUntilCommit(self._signal, 4)

    def invalidate(self) -> None:
        """Subscriptions changed in this process: forget the cached pull subscribers."""
        with self._lock:
            self._pull = None
            self._kept = KeptUntilCommit(self._signal, 4)

    def _pull_subscribers(self) -> list[SubscriptionRow]:
        kept = self._kept
        if self._signal is not None:
            found = kept.get("pull")
            if found is None:
                version = kept.version()  # read before the query: a later commit replaces it
                found = self.store.enabled_with("pull")
                kept.put("pull", version, found)
            return found
        now = time.monotonic()
        cached = self._pull  # one attribute read is atomic: no lock on every pull
        if cached is not None and now - cached[0] < PULL_CACHE_SECONDS:
            return cached[1]
        found = self.store.enabled_with("pull")
        with self._lock:
            self._pull = (now, found)
        return found

    def matching(self, kind: str, namespace: str | None) -> list[SubscriptionRow]:
        if kind == "pull":
            candidates = self._pull_subscribers()
            if not candidates:
                return []
        else:
            candidates = self.store.enabled_for(namespace)
        return [s for s in candidates if s.wants(kind, namespace)]

    def __call__(self, event: Event) -> None:
        """The bus handler. Errors are logged by the bus and never fail the request."""
        if event.action == "pull" and not self._pull_subscribers():
            return  # every pull asks: no namespace worked out while nobody subscribes to pulls
        kind = event_type(event.action)
        if kind is None or kind == PING:
            return
        subscriptions = self.matching(kind, event_namespace(event))
        if subscriptions:
            self.enqueue(event, subscriptions)

    def enqueue(self, event: Event, subscriptions: list[SubscriptionRow]) -> list[str]:
        """Record one delivery per subscription and its job, atomically; returns their ids."""
        event_id = uuid.uuid4().hex
        now = time.time()
        ids: list[str] = []
        with self.store.engine.begin() as conn:
            for sub in subscriptions:
                delivery = NewDelivery(uuid.uuid4().hex, sub.id, event_id, event.action,
                                       sub.format, render(sub.format, event, event_id,
                                                          self.origin))
                self.store.add_delivery(conn, delivery, now)
                self.worker.queue.enqueue(JOB_TYPE, {"delivery_id": delivery.id},
                                          max_attempts=self.max_attempts,
                                          timeout_seconds=JOB_TIMEOUT_SECONDS, conn=conn)
                ids.append(delivery.id)
        _wake(self.worker)
        log.debug("event %s (%s): %d webhook deliveries queued", event_id, event.action,
                  len(ids))
        return ids


    def redeliver(self, delivery: DeliveryRow) -> str:
        """Queue the same body again as a new delivery of the same event (a new id, so that a
        receiver that dedupes on X-Moorage-Delivery takes it), with its job, atomically;
        returns its id. The body is the one rendered at event time, in its format."""
        new = NewDelivery(uuid.uuid4().hex, delivery.subscription_id, delivery.event_id,
                          delivery.event_type, delivery.format, delivery.payload)
        with self.store.engine.begin() as conn:
            self.store.add_delivery(conn, new, time.time())
            self.worker.queue.enqueue(JOB_TYPE, {"delivery_id": new.id},
                                      max_attempts=self.max_attempts,
                                      timeout_seconds=JOB_TIMEOUT_SECONDS, conn=conn)
        _wake(self.worker)
        log.debug("delivery %s queued again as %s", delivery.id, new.id)
        return new.id


def _wake(worker: Worker) -> None:
    """Wake this process's worker now, rather than at its next poll. asyncio.Event is not
    thread-safe, so only the event loop's own thread may set it; elsewhere (an event raised
    inside a job thread) the worker's poll picks the job up within half a second."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    worker.wake()
