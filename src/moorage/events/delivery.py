"""Sending one delivery: the `webhook` job, and the HTTP POST it makes.

The job is idempotent: it re-reads the delivery and sends nothing once it is delivered (or
failed), so a job run twice (a worker that died after the POST, say) costs at most one
duplicate request, which receivers can drop by its X-Moorage-Delivery id. Failures raise, so
the durable queue retries with its exponential backoff; the last failure marks the delivery
failed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from moorage.access.editions import Edition
from moorage.access.network import private_destination
from moorage.events.payloads import headers
from moorage.events.store import DeliveryRow, SubscriptionRow, WebhookStore
from moorage.jobs.worker import JobContext, JobFailed

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
EXCERPT_BYTES = 1024  # enough to show a receiver's error message; the rest is not read


class DeliveryFailed(JobFailed):
    """The receiver did not answer 2xx; raised so that the queue retries (logged in one
    line: an unreachable receiver is news, not a bug)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    code: int | None
    error: str | None
    excerpt: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.code is not None and 200 <= self.code < 300

    def describe(self) -> str:
        return f"HTTP {self.code}" if self.code is not None else (self.error or "no answer")


class Sender:
    """POSTs bodies with one shared connection pool (httpx.Client is thread-safe)."""

    def __init__(self, client: httpx.Client | None = None,
                 allow_private_networks: bool = False) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.allow_private_networks = allow_private_networks

    @property
    def client(self) -> httpx.Client:
        """Made on first use: loading the CA bundle costs ~70 ms, which processes that never
        deliver (the `serve` parent, CLI helpers) should not pay."""
        with self._lock:
            if self._client is None:
                # No redirects: a 3xx is an answer to show, not a hop for a signed body.
                self._client = httpx.Client(timeout=TIMEOUT, follow_redirects=False)
            return self._client

    def send(self, sub: SubscriptionRow, delivery: DeliveryRow) -> Outcome:
        body = delivery.payload.encode()
        sent_headers = headers(delivery.format, delivery.event_type, delivery.id, body,
                               sub.secret)
        started = time.monotonic()
        if not self.allow_private_networks:
            internal = private_destination(httpx.URL(sub.url).host)
            if internal is not None:
                return Outcome(None, f"refused: {endpoint(sub.url)} resolves to the internal "
                                     f"address {internal} (setting webhook_allow_private_networks)",
                               None, _ms(started))
        try:
            with self.client.stream("POST", sub.url, content=body,
                                    headers=sent_headers) as resp:
                excerpt = b""
                for chunk in resp.iter_bytes():
                    excerpt += chunk
                    if len(excerpt) >= EXCERPT_BYTES:
                        break
                code = resp.status_code
        except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
            # Every way of getting no answer is an outcome to record, never a crashed job.
            return Outcome(None, f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__,
                           None, _ms(started))
        text = excerpt[:EXCERPT_BYTES].decode("utf-8", errors="replace")
        error = None if 200 <= code < 300 else f"HTTP {code}"
        return Outcome(code, error, text or None, _ms(started))

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def endpoint(url: str) -> str:
    """scheme://host of a URL, for logs: paths and queries often carry tokens (Slack, …)."""
    parts = httpx.URL(url)
    return f"{parts.scheme}://{parts.netloc.decode(errors='replace').rpartition('@')[2]}"


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


class DeliveryJob:
    """The handler of the `webhook` job type (payload: {"delivery_id"})."""

    def __init__(self, store: WebhookStore, sender: Sender, edition: Edition) -> None:
        self.store = store
        self.sender = sender
        self.edition = edition
        # Told of each attempt's outcome: the delivery's status after it ("delivered",
        # "pending": to be retried, "failed": given up). Hooks for metrics; never raising.
        self.observers: list[Callable[[str], None]] = []

    def attempt(self, sub: SubscriptionRow, delivery: DeliveryRow, final: bool) -> Outcome:
        """Send once and record it; `final` turns a failure into the delivery's end."""
        outcome = self.sender.send(sub, delivery)
        status = "delivered" if outcome.ok else ("failed" if final else "pending")
        self.store.record_attempt(delivery.id, outcome.code, outcome.error, outcome.excerpt,
                                  outcome.duration_ms, status)
        for observe in self.observers:
            observe(status)
        return outcome

    def __call__(self, ctx: JobContext) -> dict[str, Any]:
        delivery_id = str(ctx.payload.get("delivery_id", ""))
        delivery = self.store.delivery(delivery_id)
        if delivery is None:
            return {"skipped": "delivery gone (its subscription was deleted)"}
        if delivery.status != "pending":
            return {"skipped": f"already {delivery.status}"}
        sub = self.store.subscription(delivery.subscription_id)
        if sub is None:
            return {"skipped": "subscription deleted"}
        if not self.edition.has("webhooks"):
            self.store.give_up(delivery.id, f"the {self.edition.name} edition has no webhooks")
            return {"skipped": "edition"}
        if not sub.enabled:
            self.store.give_up(delivery.id, "the subscription was disabled before delivery")
            return {"skipped": "subscription disabled"}
        final = ctx.job.attempts >= ctx.job.max_attempts
        outcome = self.attempt(sub, delivery, final)
        ctx.log(f"delivery {delivery.id} ({delivery.event_type}) to subscription {sub.id}: "
                f"{outcome.describe()} in {outcome.duration_ms} ms")
        if not outcome.ok:
            raise DeliveryFailed(f"{endpoint(sub.url)} answered {outcome.describe()}")
        return {"delivery": delivery.id, "response_code": outcome.code}
