"""Managing webhook subscriptions, with who-may-do-what, and wiring the feature in.

Namespace subscriptions are for the namespace's owners and maintainers (the roles that
manage its rules); instance-wide ones, which see every namespace's events, for
administrators. A caller who may not see a subscription gets 404, as for namespaces. Every
operation needs an edition with webhooks, and says which one when it is missing.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass
import httpx

from moorage.access.editions import Edition
from moorage.access.errors import AlreadyExists, Forbidden, Invalid, NotFound
from moorage.access.management import AccessManager
from moorage.access.network import private_destination
from moorage.processes import FRONT_SECRET_ENV
from moorage.access.principal import Principal
from moorage.access.roles import ROLE_ACTIONS
from moorage.events.delivery import DeliveryJob, Sender
from moorage.events.dispatcher import JOB_TIMEOUT_SECONDS, JOB_TYPE, Dispatcher
from moorage.events.payloads import EVENT_TYPES, FORMATS, PING, Origin, render
from moorage.events.store import (AttemptRow, DeliveryRow, NewDelivery, SubscriptionRow,
                                  WebhookStore)
from moorage.jobs.worker import JobType, Worker
from moorage.registry.events import Event
from moorage.registry.service import Registry
from moorage.settings import Settings

MAX_URL = 2048
MAX_SECRET = 256
MAX_DESCRIPTION = 1000
DELIVERY_STATUSES = ("pending", "delivered", "failed")
UNCHANGED = object()  # `secret` not given in an update (None would mean "remove it")


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """A delivery with the history of its attempts, as the API shows it."""

    delivery: DeliveryRow
    attempts: list[AttemptRow]
    redelivery_of: str | None = None  # the event's first delivery, when this one repeats it


def check_url(url: str) -> str:
    url = url.strip()
    if not url or len(url) > MAX_URL:
        raise Invalid(f"a webhook URL is required, at most {MAX_URL} characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        raise Invalid("the webhook URL is not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise Invalid("the webhook URL must be an absolute http:// or https:// URL")
    return url


def check_destination(url: str, allow_private_networks: bool) -> None:
    """Refuse a URL that delivery would refuse (events/delivery.py applies the same rule to
    every attempt): a webhook that can never be sent is a mistake to report now, not a
    history of failures to find later. A name that resolves elsewhere later is still caught
    at delivery."""
    if allow_private_networks:
        return
    host = httpx.URL(url).host
    internal = private_destination(host)
    if internal is not None:
        raise Invalid(f"the webhook URL's host {host} is the internal address {internal}: "
                      f"webhooks are not sent to loopback or private networks unless the "
                      f"operator sets webhook_allow_private_networks")


def check_events(events: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The event types asked for, validated, in the canonical order."""
    wanted = {e.strip().lower() for e in events if e.strip()}
    unknown = sorted(wanted - set(EVENT_TYPES))
    if unknown:
        raise Invalid(f"unknown event type {', '.join(unknown)}; choose from "
                      f"{', '.join(EVENT_TYPES)}")
    if not wanted:
        raise Invalid(f"subscribe to at least one event: {', '.join(EVENT_TYPES)}")
    return tuple(e for e in EVENT_TYPES if e in wanted)


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise Invalid(f"format must be one of {', '.join(FORMATS)}")
    return fmt


def check_secret(secret: str | None) -> str | None:
    if secret is not None and len(secret) > MAX_SECRET:
        raise Invalid(f"a webhook secret has at most {MAX_SECRET} characters")
    return secret or None


def check_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise Invalid(f"a description has at most {MAX_DESCRIPTION} characters")
    return description


class WebhookService:
    def __init__(self, store: WebhookStore, access: AccessManager, edition: Edition,
                 dispatcher: Dispatcher, job: DeliveryJob) -> None:
        self.store = store
        self.access = access
        self.edition = edition
        self.dispatcher = dispatcher
        self.job = job

    # -- who may -------------------------------------------------------------------------
    def _scope(self, principal: Principal, namespace: str | None) -> int | None:
        """May the principal manage webhooks there? Returns the namespace id (None: instance)."""
        if namespace is None:
            if not principal.is_admin:
                raise Forbidden("only instance administrators may manage instance-wide "
                                "webhooks; give a namespace")
            return None
        ns = self.access._namespace(namespace)
        self.access._require(principal, namespace, "manage_rules")
        return ns.id

    def _visible(self, principal: Principal, sub: SubscriptionRow) -> bool:
        if principal.is_admin:
            return True
        return sub.namespace is not None and self.access._role(principal, sub.namespace) \
            is not None

    def _subscription(self, principal: Principal, subscription_id: int) -> SubscriptionRow:
        sub = self.store.subscription(subscription_id)
        if sub is None or not self._visible(principal, sub):
            raise NotFound(f"webhook {subscription_id} does not exist")
        self._scope(principal, sub.namespace)
        return sub

    # -- subscriptions -------------------------------------------------------------------
    def create(self, principal: Principal, namespace: str | None, url: str,
               events: list[str] | tuple[str, ...], fmt: str = "moorage",
               secret: str | None = None, description: str = "",
               enabled: bool = True) -> SubscriptionRow:
        self.edition.require("webhooks")
        namespace_id = self._scope(principal, namespace)
        url = check_url(url)
        check_destination(url, self.job.sender.allow_private_networks)
        sub_id = self.store.create_subscription(
            namespace_id, url, check_events(events), check_format(fmt),
            check_secret(secret), enabled, check_description(description), principal.username)
        self.dispatcher.invalidate()
        return self._subscription(principal, sub_id)

    def list(self, principal: Principal, namespace: str | None = None) -> list[SubscriptionRow]:
        """The subscriptions the caller may manage (an admin: all of them)."""
        self.edition.require("webhooks")
        found = []
        for sub in self.store.subscriptions():
            if namespace is not None and sub.namespace != namespace:
                continue
            if principal.is_admin:
                found.append(sub)
            elif sub.namespace is not None:
                role = self.access._role(principal, sub.namespace)
                if role is not None and "manage_rules" in ROLE_ACTIONS[role]:
                    found.append(sub)
        return found

    def get(self, principal: Principal, subscription_id: int) -> SubscriptionRow:
        self.edition.require("webhooks")
        return self._subscription(principal, subscription_id)

    def update(self, principal: Principal, subscription_id: int, *, url: str | None = None,
               events: list[str] | None = None, fmt: str | None = None,
               secret: object = UNCHANGED, description: str | None = None,
               enabled: bool | None = None) -> SubscriptionRow:
        """Change what is given; `secret` "" or None removes it. Deliveries already queued
        keep the body they were rendered with, but go to the new URL with the new secret."""
        self.edition.require("webhooks")
        self._subscription(principal, subscription_id)
        values: dict[str, object] = {}
        if url is not None:
            values["url"] = url = check_url(url)
            check_destination(url, self.job.sender.allow_private_networks)
        if events is not None:
            values["events"] = check_events(events)
        if fmt is not None:
            values["format"] = check_format(fmt)
        if secret is not UNCHANGED:
            values["secret"] = check_secret(secret if isinstance(secret, str) else None)
        if description is not None:
            values["description"] = check_description(description)
        if enabled is not None:
            values["enabled"] = enabled
        if values:
            self.store.update_subscription(subscription_id, **values)
            self.dispatcher.invalidate()
        return self._subscription(principal, subscription_id)

    def delete(self, principal: Principal, subscription_id: int) -> None:
        """Its delivery history goes with it; queued jobs find nothing and end."""
        self.edition.require("webhooks")
        self._subscription(principal, subscription_id)
        self.store.delete_subscription(subscription_id)
        self.dispatcher.invalidate()

    # -- deliveries ----------------------------------------------------------------------
    def deliveries(self, principal: Principal, subscription_id: int, status: str | None = None,
                   limit: int = 50) -> list[DeliveryView]:
        self.edition.require("webhooks")
        self._subscription(principal, subscription_id)
        if status is not None and status not in DELIVERY_STATUSES:
            raise Invalid(f"status must be one of {', '.join(DELIVERY_STATUSES)}")
        if not 1 <= limit <= 500:
            raise Invalid("limit must be between 1 and 500")
        rows = self.store.deliveries(subscription_id, status, limit)
        return self._views(subscription_id, rows)

    def _views(self, subscription_id: int, rows: list[DeliveryRow]) -> list[DeliveryView]:
        attempts = self.store.attempts(r.id for r in rows)
        first = self.store.first_deliveries(subscription_id, (r.event_id for r in rows))
        return [DeliveryView(r, attempts[r.id],
                             first.get(r.event_id) if first.get(r.event_id) != r.id else None)
                for r in rows]

    def redeliver(self, principal: Principal, subscription_id: int,
                  delivery_id: str) -> DeliveryView:
        """Queue a delivered or failed delivery's body again, as a new delivery of the same
        event through the durable queue (with the usual retries); answers with it, pending.

        Refused while a delivery of that event is still pending (its retries would send it
        as well), and while the webhook is disabled (the job would only give up)."""
        self.edition.require("webhooks")
        sub = self._subscription(principal, subscription_id)
        delivery = self.store.delivery(delivery_id)
        if delivery is None or delivery.subscription_id != sub.id:
            raise NotFound(f"webhook {subscription_id} has no delivery {delivery_id}")
        if not sub.enabled:
            raise AlreadyExists(f"webhook {sub.id} is disabled: enable it to redeliver")
        pending = self.store.pending_of_event(sub.id, delivery.event_id)
        if pending is not None:
            raise AlreadyExists(f"delivery {pending} of the same event is still pending; "
                                f"it is retried with backoff until it is delivered or fails")
        new_id = self.dispatcher.redeliver(delivery)
        new = self.store.delivery(new_id)
        assert new is not None
        return self._views(sub.id, [new])[0]

    def test(self, principal: Principal, subscription_id: int) -> DeliveryView:
        """Send a `ping` now, once, even to a disabled subscription, and show what came back.

        It is recorded in the history like any delivery but never retried: it answers "does
        my receiver work?" while the caller waits.
        """
        self.edition.require("webhooks")
        sub = self._subscription(principal, subscription_id)
        event = Event(PING, actor=principal.username,
                      detail={"subscription": sub.id, "namespace": sub.namespace,
                              "message": "a test event sent from Moorage"})
        event_id = uuid.uuid4().hex
        new = NewDelivery(uuid.uuid4().hex, sub.id, event_id, PING, sub.format,
                          render(sub.format, event, event_id, self.dispatcher.origin))
        with self.store.engine.begin() as conn:
            self.store.add_delivery(conn, new, time.time())
        delivery = self.store.delivery(new.id)
        assert delivery is not None
        self.job.attempt(sub, delivery, final=True)
        done = self.store.delivery(new.id)
        assert done is not None
        return DeliveryView(done, self.store.attempts([new.id])[new.id])


def base_url(settings: Settings) -> str:
    """The registry's address as receivers should see it (CloudEvents `source`,
    Distribution's target URLs): the public_url setting. Without it, the listen address
    stands in (https when this server speaks TLS, itself or through its front), with a
    wildcard host replaced by this machine's name. A delivery is made after the request that
    caused it, by any replica, so the host a client asked for is not at hand: set public_url
    when clients reach the registry by a name."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host, port = settings.host, settings.port
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    elif ":" in host:
        host = f"[{host}]"
    scheme = "https" if settings.tls_cert or os.environ.get(FRONT_SECRET_ENV) else "http"
    return f"{scheme}://{host}:{port}"


def install(settings: Settings, registry: Registry, worker: Worker, edition: Edition,
            manager: AccessManager) -> WebhookService:
    """Wire webhooks in, from the parts they use (app.py hands them over): the job type always
    (so that deliveries queued before an edition change still end cleanly), the bus
    subscription only when the edition has webhooks."""
    store = WebhookStore(registry.db.engine)
    # Distribution's instanceID changes with each start; ours does too, per process.
    dispatcher = Dispatcher(store, worker, Origin(base_url(settings), uuid.uuid4().hex),
                            settings.webhook_max_attempts)
    job = DeliveryJob(store, Sender(allow_private_networks=settings.webhook_allow_private_networks),
                      edition)
    worker.register(JobType(JOB_TYPE, job, concurrency=8, timeout_seconds=JOB_TIMEOUT_SECONDS,
                            max_attempts=settings.webhook_max_attempts))
    if edition.has("webhooks"):
        registry.bus.subscribe(dispatcher)
    return WebhookService(store, manager, edition, dispatcher, job)
