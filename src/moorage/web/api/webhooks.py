"""Event notifications: webhook subscriptions, their delivery history, and test pings.

The models live here rather than in models.py because they belong to the webhook feature
alone. A subscription's secret is write-only: it is accepted on creation and update, and
only `has_secret` ever comes back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, Field

from moorage.events.payloads import EVENT_TYPES
from moorage.events.service import UNCHANGED, DeliveryView, WebhookService
from moorage.events.store import SubscriptionRow
from moorage.web.api.deps import InstanceDep, User
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.models import IdPath, RequestBody, when

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"], responses=ERROR_RESPONSES)

# Only the events something emits (events/payloads.py), so the OpenAPI enum stays true.
EventName = Literal[EVENT_TYPES]  # type: ignore[valid-type]
Format = Literal["moorage", "cloudevents", "distribution"]
DeliveryStatus = Literal["pending", "delivered", "failed"]
DeliveryIdPath = Annotated[str, Path(pattern="^[0-9a-f]{32}$",
                                     description="a delivery's id (X-Moorage-Delivery)")]


class Webhook(BaseModel):
    id: int
    namespace: str | None = Field(description="null: instance-wide (every namespace's events)")
    url: str
    events: list[EventName]
    format: Format
    enabled: bool
    has_secret: bool = Field(description="whether deliveries carry X-Moorage-Signature; the "
                                         "secret itself is never returned")
    description: str
    created_by: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: SubscriptionRow) -> Webhook:
        # A subscription stored by an earlier version may name events nothing emits
        # (scan, build): they are not shown, as they will never be sent.
        return cls(id=row.id, namespace=row.namespace, url=row.url,
                   events=[e for e in row.events if e in EVENT_TYPES],
                   format=row.format,  # type: ignore[arg-type]
                   enabled=row.enabled, has_secret=bool(row.secret),
                   description=row.description, created_by=row.created_by,
                   created_at=when(row.created_at), updated_at=when(row.updated_at))


class WebhookCreate(RequestBody):
    namespace: str | None = Field(None, description="omit for an instance-wide webhook "
                                                    "(administrators only)")
    url: str = Field(examples=["https://ci.example.com/hooks/moorage"])
    events: list[EventName] = Field(min_length=1, examples=[["push", "delete"]])
    format: Format = Field("moorage", description="moorage: our JSON; cloudevents: "
                                                  "CloudEvents 1.0 structured mode; "
                                                  "distribution: Distribution's envelope")
    secret: str | None = Field(None, description="HMAC-SHA256 key for X-Moorage-Signature; "
                                                 "write-only")
    description: str = ""
    enabled: bool = True


class WebhookUpdate(RequestBody):
    url: str | None = None
    events: list[EventName] | None = Field(None, min_length=1)
    format: Format | None = None
    secret: str | None = Field(None, description="a new secret; \"\" or null removes it")
    description: str | None = None
    enabled: bool | None = None


class Attempt(BaseModel):
    attempt: int
    response_code: int | None = Field(description="null: no HTTP answer (refused, timeout)")
    error: str | None
    duration_ms: int
    at: datetime


class Delivery(BaseModel):
    id: str = Field(description="sent as X-Moorage-Delivery; receivers dedupe on it")
    event_id: str
    event: str = Field(description="the action: push, delete, pull, quota, ping, …")
    format: Format
    status: DeliveryStatus
    attempts: int
    response_code: int | None = Field(description="the last attempt's HTTP status")
    error: str | None
    response_excerpt: str | None = Field(description="the start of the last answer's body")
    created_at: datetime
    delivered_at: datetime | None
    redelivery_of: str | None = Field(None, description="the event's first delivery, when "
                                                        "this one is a redelivery of it")
    history: list[Attempt]

    @classmethod
    def of(cls, view: DeliveryView) -> Delivery:
        d = view.delivery
        return cls(id=d.id, event_id=d.event_id, event=d.event_type,
                   format=d.format, status=d.status,  # type: ignore[arg-type]
                   attempts=d.attempts, response_code=d.last_response_code,
                   error=d.last_error, response_excerpt=d.response_excerpt,
                   created_at=when(d.created_at), delivered_at=when(d.delivered_at),
                   redelivery_of=view.redelivery_of,
                   history=[Attempt(attempt=a.attempt, response_code=a.response_code,
                                    error=a.error, duration_ms=a.duration_ms, at=when(a.at))
                            for a in view.attempts])


def _service(instance: InstanceDep) -> WebhookService:
    if instance.webhooks is None:  # never in a normal build; kept for partial assemblies
        raise HTTPException(404, "webhooks are not installed on this instance")
    return instance.webhooks


@router.get("")
def list_webhooks(instance: InstanceDep, principal: User,
                  namespace: Annotated[str | None, Query()] = None) -> list[Webhook]:
    """The webhooks the caller may manage: an administrator's list has them all."""
    return [Webhook.of(s) for s in _service(instance).list(principal, namespace)]


@router.post("", status_code=status.HTTP_201_CREATED)
def create_webhook(body: WebhookCreate, instance: InstanceDep, principal: User) -> Webhook:
    """A namespace webhook needs the owner or maintainer role there; an instance-wide one,
    an administrator. Needs the basic edition or higher."""
    return Webhook.of(_service(instance).create(
        principal, body.namespace, body.url, list(body.events), body.format, body.secret,
        body.description, body.enabled))


@router.get("/{webhook_id}")
def get_webhook(webhook_id: IdPath, instance: InstanceDep, principal: User) -> Webhook:
    return Webhook.of(_service(instance).get(principal, webhook_id))


@router.patch("/{webhook_id}")
def update_webhook(webhook_id: IdPath, body: WebhookUpdate, instance: InstanceDep,
                   principal: User) -> Webhook:
    given = body.model_fields_set
    return Webhook.of(_service(instance).update(
        principal, webhook_id, url=body.url,
        events=list(body.events) if body.events is not None else None, fmt=body.format,
        secret=body.secret if "secret" in given else UNCHANGED,
        description=body.description, enabled=body.enabled))


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(webhook_id: IdPath, instance: InstanceDep, principal: User) -> None:
    _service(instance).delete(principal, webhook_id)


@router.get("/{webhook_id}/deliveries")
def list_deliveries(webhook_id: IdPath, instance: InstanceDep, principal: User,
                    status: Annotated[DeliveryStatus | None, Query()] = None,
                    limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[Delivery]:
    """Newest first, each with every attempt's response code."""
    return [Delivery.of(v) for v in
            _service(instance).deliveries(principal, webhook_id, status, limit)]


@router.post("/{webhook_id}/test")
def test_webhook(webhook_id: IdPath, instance: InstanceDep, principal: User) -> Delivery:
    """Send a `ping` event now and answer with its outcome (one attempt, no retries)."""
    return Delivery.of(_service(instance).test(principal, webhook_id))


@router.post("/{webhook_id}/deliveries/{delivery_id}/redeliver",
             status_code=status.HTTP_202_ACCEPTED)
def redeliver_webhook(webhook_id: IdPath, delivery_id: DeliveryIdPath, instance: InstanceDep,
                      principal: User) -> Delivery:
    """Send a delivered or failed delivery's body again: a new delivery of the same event
    (its own id, `redelivery_of` naming the first), queued through the durable job queue with
    the usual retries; the answer is the new delivery, usually still pending. 409 while a
    delivery of that event is pending, or while the webhook is disabled."""
    return Delivery.of(_service(instance).redeliver(principal, webhook_id, delivery_id))
