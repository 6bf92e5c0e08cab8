"""Metadata queries of the webhook feature: subscriptions, deliveries and their attempts."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, or_, select, update

from moorage.db.schema import (namespaces, webhook_attempts, webhook_deliveries,
                               webhook_subscriptions)


@dataclass(frozen=True, slots=True)
class SubscriptionRow:
    id: int
    namespace: str | None  # None: instance-wide
    url: str
    events: tuple[str, ...]
    format: str
    secret: str | None
    enabled: bool
    description: str
    created_by: str
    created_at: float
    updated_at: float

    def wants(self, event_type: str, namespace: str | None) -> bool:
        return (self.enabled and event_type in self.events
                and (self.namespace is None or self.namespace == namespace))


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: str
    subscription_id: int
    event_id: str
    event_type: str
    format: str
    payload: str
    status: str  # pending | delivered | failed
    attempts: int
    last_response_code: int | None
    last_error: str | None
    response_excerpt: str | None
    created_at: float
    delivered_at: float | None


@dataclass(frozen=True, slots=True)
class AttemptRow:
    attempt: int
    response_code: int | None
    error: str | None
    duration_ms: int
    at: float


@dataclass(frozen=True, slots=True)
class NewDelivery:
    id: str
    subscription_id: int
    event_id: str
    event_type: str
    format: str
    payload: str


_S = webhook_subscriptions
_D = webhook_deliveries
_SUB_COLS = (_S.c.id, namespaces.c.name, _S.c.url, _S.c.events, _S.c.format, _S.c.secret,
             _S.c.enabled, _S.c.description, _S.c.created_by, _S.c.created_at, _S.c.updated_at)
_DEL_COLS = (_D.c.id, _D.c.subscription_id, _D.c.event_id, _D.c.event_type, _D.c.format,
             _D.c.payload, _D.c.status, _D.c.attempts, _D.c.last_response_code,
             _D.c.last_error, _D.c.response_excerpt, _D.c.created_at, _D.c.delivered_at)


def _subscription(row: Any) -> SubscriptionRow:
    values = list(row)
    values[3] = tuple(e for e in (values[3] or "").split(",") if e)
    values[6] = bool(values[6])
    return SubscriptionRow(*values)


def _select_subscriptions():  # type: ignore[no-untyped-def]
    return (select(*_SUB_COLS)
            .select_from(_S.outerjoin(namespaces, namespaces.c.id == _S.c.namespace_id))
            .order_by(_S.c.id))


class WebhookStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- subscriptions ------------------------------------------------------------------
    def create_subscription(self, namespace_id: int | None, url: str, events: Sequence[str],
                            fmt: str, secret: str | None, enabled: bool, description: str,
                            created_by: str) -> int:
        now = time.time()
        with self.engine.begin() as conn:
            return conn.execute(insert(_S).values(
                namespace_id=namespace_id, url=url, events=",".join(events), format=fmt,
                secret=secret or None, enabled=enabled, description=description,
                created_by=created_by, created_at=now, updated_at=now)
                .returning(_S.c.id)).scalar_one()

    def subscription(self, subscription_id: int) -> SubscriptionRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(_select_subscriptions().where(_S.c.id == subscription_id)).first()
        return _subscription(row) if row else None

    def subscriptions(self) -> list[SubscriptionRow]:
        with self.engine.connect() as conn:
            return [_subscription(r) for r in conn.execute(_select_subscriptions())]

    def enabled_for(self, namespace: str | None) -> list[SubscriptionRow]:
        """Enabled subscriptions that may want an event of this namespace (one indexed query)."""
        where = _S.c.namespace_id.is_(None)
        if namespace is not None:
            where = or_(where, namespaces.c.name == namespace)
        with self.engine.connect() as conn:
            return [_subscription(r) for r in conn.execute(
                _select_subscriptions().where(_S.c.enabled.is_(True), where))]

    def enabled_with(self, event_type: str) -> list[SubscriptionRow]:
        """Every enabled subscription to one event type, whatever its namespace."""
        with self.engine.connect() as conn:
            rows = [_subscription(r) for r in conn.execute(
                _select_subscriptions().where(_S.c.enabled.is_(True),
                                              _S.c.events.contains(event_type)))]
        return [r for r in rows if event_type in r.events]

    def update_subscription(self, subscription_id: int, **values: Any) -> None:
        if "events" in values:
            values["events"] = ",".join(values["events"])
        with self.engine.begin() as conn:
            conn.execute(update(_S).where(_S.c.id == subscription_id)
                         .values(updated_at=time.time(), **values))

    def delete_subscription(self, subscription_id: int) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(_S).where(_S.c.id == subscription_id)).rowcount > 0

    # -- deliveries ---------------------------------------------------------------------
    @staticmethod
    def add_delivery(conn: Connection, new: NewDelivery, at: float) -> None:
        """Insert in the caller's transaction (the one that also enqueues its job)."""
        conn.execute(insert(_D).values(
            id=new.id, subscription_id=new.subscription_id, event_id=new.event_id,
            event_type=new.event_type, format=new.format, payload=new.payload,
            status="pending", attempts=0, created_at=at))

    def delivery(self, delivery_id: str) -> DeliveryRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*_DEL_COLS).where(_D.c.id == delivery_id)).first()
        return DeliveryRow(*row) if row else None

    def deliveries(self, subscription_id: int, status: str | None = None,
                   limit: int = 50) -> list[DeliveryRow]:
        query = (select(*_DEL_COLS).where(_D.c.subscription_id == subscription_id)
                 .order_by(_D.c.created_at.desc(), _D.c.id).limit(limit))
        if status:
            query = query.where(_D.c.status == status)
        with self.engine.connect() as conn:
            return [DeliveryRow(*r) for r in conn.execute(query)]

    def pending_of_event(self, subscription_id: int, event_id: str) -> str | None:
        """A delivery of this event to this subscription still waiting to be sent, if any."""
        with self.engine.connect() as conn:
            return conn.execute(select(_D.c.id).where(
                _D.c.subscription_id == subscription_id, _D.c.event_id == event_id,
                _D.c.status == "pending").limit(1)).scalar()

    def first_deliveries(self, subscription_id: int,
                         event_ids: Iterable[str]) -> dict[str, str]:
        """The first delivery of each event to one subscription (event id → delivery id).

        A subscription gets one delivery per event; any later one of the same event is a
        redelivery of that first one (WebhookService.redeliver)."""
        ids = sorted(set(event_ids))
        if not ids:
            return {}
        query = (select(_D.c.event_id, _D.c.id)
                 .where(_D.c.subscription_id == subscription_id, _D.c.event_id.in_(ids))
                 .order_by(_D.c.created_at.desc(), _D.c.id.desc()))
        with self.engine.connect() as conn:
            # Newest first, so that the oldest of each event is the one that stays.
            return {event_id: delivery_id for event_id, delivery_id in conn.execute(query)}

    def attempts(self, delivery_ids: Iterable[str]) -> dict[str, list[AttemptRow]]:
        ids = list(delivery_ids)
        found: dict[str, list[AttemptRow]] = {i: [] for i in ids}
        if not ids:
            return found
        query = (select(webhook_attempts.c.delivery_id, webhook_attempts.c.attempt,
                        webhook_attempts.c.response_code, webhook_attempts.c.error,
                        webhook_attempts.c.duration_ms, webhook_attempts.c.at)
                 .where(webhook_attempts.c.delivery_id.in_(ids))
                 .order_by(webhook_attempts.c.id))
        with self.engine.connect() as conn:
            for delivery_id, *rest in conn.execute(query):
                found[delivery_id].append(AttemptRow(*rest))
        return found

    def record_attempt(self, delivery_id: str, code: int | None, error: str | None,
                       excerpt: str | None, duration_ms: int, status: str) -> int:
        """One attempt and its outcome; `status` is the delivery's status after it.

        Returns the attempt's number. A delivered row stays delivered whatever comes later.
        """
        now = time.time()
        with self.engine.begin() as conn:
            attempt = conn.execute(
                update(_D).where(_D.c.id == delivery_id, _D.c.status != "delivered")
                .values(attempts=_D.c.attempts + 1, status=status, last_response_code=code,
                        last_error=error, response_excerpt=excerpt,
                        delivered_at=now if status == "delivered" else None)
                .returning(_D.c.attempts)).scalar()
            if attempt is None:
                return 0
            conn.execute(insert(webhook_attempts).values(
                delivery_id=delivery_id, attempt=attempt, response_code=code, error=error,
                duration_ms=duration_ms, at=now))
            return int(attempt)

    def give_up(self, delivery_id: str, reason: str) -> None:
        """Mark a pending delivery failed without sending it (subscription off, edition)."""
        with self.engine.begin() as conn:
            conn.execute(update(_D).where(_D.c.id == delivery_id, _D.c.status == "pending")
                         .values(status="failed", last_error=reason))
