"""The three payload formats and the signature, as pure functions."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime

import pytest

from moorage.events.payloads import (CONTENT_TYPES, FORMATS, Origin, event_type, headers,
                                     render, signature)
from moorage.registry.events import Event

ORIGIN = Origin("https://registry.example.com", "instance-1")
DIGEST = "sha256:" + "a" * 64
PUSH = Event("push", "team/app", DIGEST, "application/vnd.oci.image.manifest.v1+json", "v1",
             512, actor="alice", address="10.0.0.7", at=1_700_000_000.25)


def test_event_types() -> None:
    assert [event_type(a) for a in ("push", "pull", "delete", "quota")] == \
        ["push", "pull", "delete", "quota"]
    # Scans announce their families; nothing announces builds yet: none may ask for them.
    assert event_type("scan.completed") == "scan"
    assert event_type("vulnerability.new") == "vulnerability"
    assert event_type("build.failed") is None
    assert event_type("blob.push") is None and event_type("login") is None
    assert event_type("namespace.create") is None


def test_the_cli_offers_the_events_the_server_accepts() -> None:
    # the CLI keeps a copy (importing the events feature would slow every command)
    from moorage.cli.webhooks import EVENTS
    from moorage.events.payloads import EVENT_TYPES
    assert EVENTS == EVENT_TYPES


def test_moorage_format() -> None:
    body = json.loads(render("moorage", PUSH, "e1", ORIGIN))
    assert body == {"id": "e1", "type": "push", "time": "2023-11-14T22:13:20.250Z",
                    "actor": "alice", "address": "10.0.0.7", "repository": "team/app",
                    "tag": "v1", "digest": DIGEST,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 512,
                    "namespace": "team", "result": "success", "detail": {}}


def test_cloudevents_format() -> None:
    body = json.loads(render("cloudevents", PUSH, "e1", ORIGIN))
    assert body["specversion"] == "1.0"
    assert body["id"] == "e1" and body["type"] == "io.moorage.push"
    assert body["source"] == "https://registry.example.com/team/app"
    assert body["subject"] == f"team/app:v1@{DIGEST}"
    assert body["datacontenttype"] == "application/json"
    assert datetime.fromisoformat(body["time"].replace("Z", "+00:00")).timestamp() == \
        1_700_000_000.25
    assert body["data"]["digest"] == DIGEST and body["data"]["namespace"] == "team"


def test_distribution_format() -> None:
    envelope = json.loads(render("distribution", PUSH, "e1", ORIGIN))
    (event,) = envelope["events"]
    assert event["id"] == "e1" and event["action"] == "push"
    assert event["target"] == {
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 512,
        "digest": DIGEST, "repository": "team/app", "tag": "v1",
        "url": f"https://registry.example.com/v2/team/app/manifests/{DIGEST}"}
    assert event["request"]["method"] == "PUT" and event["request"]["addr"] == "10.0.0.7"
    assert event["request"]["host"] == "registry.example.com"
    assert event["actor"] == {"name": "alice"}
    assert event["source"] == {"addr": "registry.example.com", "instanceID": "instance-1"}


def test_repository_delete_has_no_digest() -> None:
    gone = Event("delete", "team/app", target="team/app", detail={"repository": True})
    (event,) = json.loads(render("distribution", gone, "e2", ORIGIN))["events"]
    assert event["target"] == {"repository": "team/app"}
    assert event["request"]["method"] == "DELETE"
    assert json.loads(render("cloudevents", gone, "e2", ORIGIN))["subject"] == "team/app"


@pytest.mark.parametrize("fmt", FORMATS)
def test_headers_and_signature(fmt: str) -> None:
    body = render(fmt, PUSH, "e1", ORIGIN).encode()
    sent = headers(fmt, "push", "d1", body, "s3cret")
    assert sent["Content-Type"] == CONTENT_TYPES[fmt]
    assert sent["X-Moorage-Event"] == "push" and sent["X-Moorage-Delivery"] == "d1"
    assert sent["X-Moorage-Signature"] == \
        "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert "X-Moorage-Signature" not in headers(fmt, "push", "d1", body, None)
    assert signature("s3cret", body) != signature("other", body)
