"""What a webhook receiver gets: the body in one of three formats, and its signature.

Pure functions with no I/O, so that the formats can be checked on their own. The body is
rendered once, when the event happens, and stored: every retry then sends the same bytes,
which keeps signatures and receivers' deduplication simple.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from moorage import __version__
from moorage.oci.names import namespace_of
from moorage.registry.events import Event

# What a subscription may ask for: only what something in this version announces (the core
# announces all four). A feature that announces a family of actions ("scan.completed",
# "build.failed") adds the family to FEATURE_EVENT_FAMILIES and to EVENT_TYPES when it lands.
FEATURE_EVENT_FAMILIES: tuple[str, ...] = ("scan", "vulnerability", "signature", "signing_key",
                                           "pull.blocked", "replication", "replication_rule",
                                           "subscription", "import")
EVENT_TYPES: tuple[str, ...] = ("push", "delete", "pull", "quota", *FEATURE_EVENT_FAMILIES)
FORMATS = ("moorage", "cloudevents", "distribution")
PING = "ping"

CONTENT_TYPES = {
    "moorage": "application/json",
    "cloudevents": "application/cloudevents+json",
    "distribution": "application/vnd.docker.distribution.events.v1+json",
}
USER_AGENT = f"Moorage-Webhook/{__version__}"

# The HTTP request that caused an event, as Distribution's envelope names it.
_METHODS = {"push": "PUT", "quota": "PUT", "pull": "GET", "delete": "DELETE"}


@dataclass(frozen=True, slots=True)
class Origin:
    """Who sends the events: the registry's base URL and this process's instance id."""

    base_url: str
    instance_id: str

    @property
    def host(self) -> str:
        return self.base_url.split("://", 1)[-1].split("/", 1)[0]


def event_type(action: str) -> str | None:
    """The subscription event type an action belongs to, or None if none may subscribe to it.

    A feature's "family.verb" actions belong to their family once it is registered above;
    blob-level and login actions are internal and never leave the instance as webhooks.
    """
    if action in EVENT_TYPES or action == PING:
        return action
    prefix = action.split(".", 1)[0]
    return prefix if prefix in FEATURE_EVENT_FAMILIES else None


def event_namespace(event: Event) -> str | None:
    if event.repository:
        return namespace_of(event.repository)
    namespace = event.detail.get("namespace") if event.detail else None
    return namespace if isinstance(namespace, str) else None


def rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def _subject(event: Event) -> str:
    return event.describe_target() or event.action


def moorage_body(event: Event, event_id: str) -> dict[str, Any]:
    """Our own shape: flat, with every field the core knows about the event."""
    return {
        "id": event_id,
        "type": event.action,
        "time": rfc3339(event.at),
        "actor": event.actor or None,
        "address": event.address or None,
        "repository": event.repository,
        "tag": event.tag,
        "digest": event.digest,
        "mediaType": event.media_type,
        "size": event.size,
        "namespace": event_namespace(event),
        "result": event.result,
        "detail": dict(event.detail or {}),
    }


def cloudevents_body(event: Event, event_id: str, origin: Origin) -> dict[str, Any]:
    """CloudEvents 1.0, structured content mode (the whole event is the JSON body)."""
    data = moorage_body(event, event_id)
    for key in ("id", "type", "time"):
        data.pop(key)
    source = origin.base_url + (f"/{event.repository}" if event.repository else "")
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": f"io.moorage.{event.action}",
        "time": rfc3339(event.at),
        "datacontenttype": "application/json",
        "subject": _subject(event),
        "data": data,
    }


def distribution_body(event: Event, event_id: str, origin: Origin) -> dict[str, Any]:
    """CNCF Distribution's notification envelope, for receivers written against it."""
    target: dict[str, Any] = {"repository": event.repository}
    if event.media_type:
        target["mediaType"] = event.media_type
    if event.size is not None:
        target["size"] = event.size
    if event.digest:
        target["digest"] = event.digest
        if event.repository:
            target["url"] = f"{origin.base_url}/v2/{event.repository}/manifests/{event.digest}"
    if event.tag:
        target["tag"] = event.tag
    return {"events": [{
        "id": event_id,
        "timestamp": rfc3339(event.at),
        "action": event.action,
        "target": target,
        "request": {"addr": event.address, "host": origin.host,
                    "method": _METHODS.get(event.action, ""), "useragent": ""},
        "actor": {"name": event.actor},
        "source": {"addr": origin.host, "instanceID": origin.instance_id},
    }]}


def render(fmt: str, event: Event, event_id: str, origin: Origin) -> str:
    """The body to send, as text (stored as it is and sent as its UTF-8 bytes)."""
    if fmt == "moorage":
        body = moorage_body(event, event_id)
    elif fmt == "cloudevents":
        body = cloudevents_body(event, event_id, origin)
    elif fmt == "distribution":
        body = distribution_body(event, event_id, origin)
    else:
        raise ValueError(f"unknown webhook format {fmt!r}")
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of the exact body bytes, keyed with the secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers(fmt: str, event_type_name: str, delivery_id: str, body: bytes,
            secret: str | None) -> dict[str, str]:
    values = {
        "Content-Type": CONTENT_TYPES[fmt],
        "User-Agent": USER_AGENT,
        "X-Moorage-Event": event_type_name,
        "X-Moorage-Delivery": delivery_id,
    }
    if secret:
        values["X-Moorage-Signature"] = signature(secret, body)
    return values
