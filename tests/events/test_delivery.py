"""Events reach a real HTTP receiver: once each, signed, in every format, with retries."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

import pytest

from tests.events.helpers import (create_hook, delete_manifest, deliveries, get_manifest,
                                  wait_deliveries)
from tests.events.receiver import Receiver, Received
from tests.support.server import MoorageServer
from tests.web.helpers import api, make_namespace, push_image, server_log

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONTENT_TYPES = {"moorage": "application/json",
                 "cloudevents": "application/cloudevents+json",
                 "distribution": "application/vnd.docker.distribution.events.v1+json"}


def rfc3339(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, value
    return parsed


def check_moorage(got: Received, action: str, repo: str, digest: str, tag: str | None) -> str:
    body = got.json()
    assert set(body) >= {"id", "type", "time", "actor", "address", "repository", "tag",
                         "digest", "mediaType", "size", "namespace", "detail"}
    assert body["type"] == action and body["repository"] == repo
    assert body["digest"] == digest and body["tag"] == tag
    assert body["namespace"] == repo.split("/")[0] and body["actor"] == "admin"
    assert body["address"] == "127.0.0.1"
    if action == "push":
        assert body["mediaType"] == MANIFEST and body["size"] > 0
    rfc3339(body["time"])
    return str(body["id"])


def check_cloudevents(got: Received, action: str, repo: str, digest: str,
                      tag: str | None) -> str:
    body = got.json()
    assert set(body) >= {"specversion", "id", "source", "type", "time", "datacontenttype",
                         "subject", "data"}
    assert body["specversion"] == "1.0" and body["type"] == f"io.moorage.{action}"
    assert body["datacontenttype"] == "application/json"
    assert body["source"].endswith(f"/{repo}") and repo in body["subject"]
    rfc3339(body["time"])
    data = body["data"]
    assert data["repository"] == repo and data["digest"] == digest and data["tag"] == tag
    assert data["actor"] == "admin"
    return str(body["id"])


def check_distribution(got: Received, action: str, repo: str, digest: str,
                       tag: str | None) -> str:
    (event,) = got.json()["events"]
    assert set(event) >= {"id", "timestamp", "action", "target", "request", "actor", "source"}
    assert event["action"] == action
    target = event["target"]
    assert target["repository"] == repo and target["digest"] == digest
    assert target["url"].endswith(f"/v2/{repo}/manifests/{digest}")
    if action == "push":
        assert target["mediaType"] == MANIFEST and target["size"] > 0 and target["tag"] == tag
    assert event["request"]["addr"] == "127.0.0.1" and event["request"]["host"]
    assert event["request"]["method"] == {"push": "PUT", "delete": "DELETE"}[action]
    assert event["actor"] == {"name": "admin"}
    assert event["source"]["addr"] and event["source"]["instanceID"]
    rfc3339(event["timestamp"])
    return str(event["id"])


CHECKS = {"moorage": check_moorage, "cloudevents": check_cloudevents,
          "distribution": check_distribution}


@pytest.mark.parametrize("fmt", ["moorage", "cloudevents", "distribution"])
def test_push_and_delete_arrive_once_signed(secure_registry: MoorageServer, receiver: Receiver,
                                            fmt: str) -> None:
    ns = make_namespace(secure_registry)
    secret = f"secret-for-{fmt}"
    hook = create_hook(secure_registry, receiver.url, ["push", "delete"], ns, format=fmt,
                       secret=secret)
    repo = f"{ns}/app"
    digest = push_image(secure_registry, repo, "v1")
    get_manifest(secure_registry, repo, "v1")  # a pull: not subscribed, so not sent
    delete_manifest(secure_registry, repo, digest)

    history = wait_deliveries(secure_registry, hook["id"], 2)
    got = receiver.wait_for(2, settle=0.7)
    assert sorted(r.event for r in got) == ["delete", "push"]
    assert len({r.delivery for r in got}) == 2
    assert {d["id"] for d in history} == {r.delivery for r in got}
    event_ids = set()
    for request in got:
        assert request.path == "/hook"
        assert request.signed_with(secret), request.headers
        assert not request.signed_with(secret + "x")
        assert request.headers["content-type"] == CONTENT_TYPES[fmt]
        tag = "v1" if request.event == "push" else None
        event_ids.add(CHECKS[fmt](request, request.event, repo, digest, tag))
    assert len(event_ids) == 2
    assert all(d["status"] == "delivered" and d["attempts"] == 1 and d["response_code"] == 200
               and [a["response_code"] for a in d["history"]] == [200] for d in history)
    assert {d["event_id"] for d in history} == event_ids


def test_only_subscribed_events_of_the_namespace(secure_registry: MoorageServer,
                                                 receiver: Receiver) -> None:
    ns, other = make_namespace(secure_registry), make_namespace(secure_registry)
    hook = create_hook(secure_registry, receiver.url, ["pull"], ns)
    digest = push_image(secure_registry, f"{ns}/app", "v1")
    push_image(secure_registry, f"{other}/app", "v1")
    get_manifest(secure_registry, f"{other}/app", "v1")  # another namespace
    get_manifest(secure_registry, f"{ns}/app", "v1", head=True)  # HEAD is not a pull
    get_manifest(secure_registry, f"{ns}/app", digest)
    (pull,) = receiver.wait_for(1, settle=0.7)
    body = pull.json()
    assert pull.event == "pull" and body["repository"] == f"{ns}/app"
    assert body["digest"] == digest and body["tag"] is None
    assert "x-moorage-signature" not in pull.headers  # no secret, no signature
    assert len(deliveries(secure_registry, hook["id"])) == 1


def test_instance_wide_webhook_sees_every_namespace(secure_registry: MoorageServer,
                                                    receiver: Receiver) -> None:
    hook = create_hook(secure_registry, receiver.url, ["delete"])
    assert hook["namespace"] is None
    try:
        first, second = make_namespace(secure_registry), make_namespace(secure_registry)
        for ns in (first, second):
            push_image(secure_registry, f"{ns}/app", "v1")
            delete_manifest(secure_registry, f"{ns}/app", "v1")  # by tag
        got = receiver.wait_for(2, settle=0.5)
        assert sorted(r.json()["repository"] for r in got) == sorted(
            [f"{first}/app", f"{second}/app"])
        assert all(r.json()["tag"] == "v1" for r in got)
    finally:
        assert api(secure_registry, "DELETE", f"/webhooks/{hook['id']}").status_code == 204


def test_quota_refusal_is_announced(secure_registry: MoorageServer, receiver: Receiver) -> None:
    ns = make_namespace(secure_registry)
    create_hook(secure_registry, receiver.url, ["quota"], ns)
    # No API sets storage quotas yet; the column is what the push transaction checks.
    with sqlite3.connect(secure_registry.data_dir / "moorage.db", timeout=10) as db:
        db.execute("UPDATE namespaces SET storage_quota = 1 WHERE name = ?", (ns,))
    with pytest.raises(AssertionError):
        push_image(secure_registry, f"{ns}/app", "v1")
    (got,) = receiver.wait_for(1)
    body = got.json()
    assert got.event == "quota" and body["result"] == "failure"
    assert body["namespace"] == ns and body["detail"]["quota"] == 1


def test_retries_with_backoff_and_history(secure_registry: MoorageServer) -> None:
    receiver = Receiver(answers=[500, 503]).start()
    try:
        ns = make_namespace(secure_registry)
        hook = create_hook(secure_registry, receiver.url, ["push"], ns, secret="k")
        push_image(secure_registry, f"{ns}/app", "v1")
        got = receiver.wait_for(3, settle=0.7)
    finally:
        receiver.stop()
    assert len(got) == 3
    assert len({r.delivery for r in got}) == 1  # one delivery, attempted three times
    assert len({r.body for r in got}) == 1 and all(r.signed_with("k") for r in got)
    # The queue's backoff: 2 s before the second attempt, 4 s before the third.
    assert got[1].at - got[0].at >= 1.5
    assert got[2].at - got[1].at >= 3.5
    (delivery,) = deliveries(secure_registry, hook["id"])
    assert delivery["status"] == "delivered" and delivery["attempts"] == 3
    assert [a["response_code"] for a in delivery["history"]] == [500, 503, 200]
    assert [a["attempt"] for a in delivery["history"]] == [1, 2, 3]
    assert delivery["history"][0]["error"] == "HTTP 500"
    assert delivery["response_code"] == 200 and delivery["response_excerpt"] == "accepted"
    assert delivery["delivered_at"] is not None
    # A receiver's refusal is logged in one line each time, not as a traceback (a bug's sign)
    lines = server_log(secure_registry).splitlines()
    refusals = [n for n, line in enumerate(lines) if "(webhook) failed:" in line
                and "answered HTTP 50" in line and f"127.0.0.1:{receiver.port}" in line]
    assert len(refusals) == 2, "\n".join(lines[-40:])
    assert all(not lines[n + 1].startswith("Traceback") for n in refusals if n + 1 < len(lines))


def test_ping(secure_registry: MoorageServer, receiver: Receiver) -> None:
    ns = make_namespace(secure_registry)
    hook = create_hook(secure_registry, receiver.url, ["push"], ns, format="cloudevents",
                       secret="ping-secret", enabled=False)
    resp = api(secure_registry, "POST", f"/webhooks/{hook['id']}/test")
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert result["status"] == "delivered" and result["event"] == "ping"
    assert [a["response_code"] for a in result["history"]] == [200]
    (got,) = receiver.received()
    assert got.event == "ping" and got.signed_with("ping-secret")
    assert got.delivery == result["id"]
    assert got.json()["type"] == "io.moorage.ping"
    assert json.loads(got.body)["data"]["namespace"] == ns

    receiver.answers = [502]
    failed = api(secure_registry, "POST", f"/webhooks/{hook['id']}/test").json()
    assert failed["status"] == "failed" and failed["response_code"] == 502
    assert failed["response_excerpt"] == "receiver failure 502"
    assert [d["status"] for d in deliveries(secure_registry, hook["id"])] == \
        ["failed", "delivered"]


def test_internal_destinations_are_refused_by_default(make_registry, receiver, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A namespace owner must not make the registry probe its own network: by default a
    webhook to loopback or a private address is refused when it is created or pointed there
    (the same rule delivery applies), and one made while the setting allowed it is never
    sent once it does not, with the history saying why."""
    from tests.events.helpers import create_hook, deliveries
    from tests.access.helpers import api
    from tests.cli.conftest import Cli
    import time

    server = make_registry(env={"MOORAGE_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "false"})
    api(server, "POST", "/namespaces", json={"name": "guarded"})
    for url, address in ((receiver.url, "127.0.0.1"), ("http://localhost:9/hook", "127.0.0.1"),
                         ("https://10.1.2.3/hook", "10.1.2.3"), ("http://[::1]:8/", "::1")):
        refused = api(server, "POST", "/webhooks",
                      json={"namespace": "guarded", "url": url, "events": ["push"]})
        assert refused.status_code == 400, refused.text
        message = refused.json()["error"]["message"]
        assert f"internal address {address}" in message, message
        assert "webhook_allow_private_networks" in message, message
    cli = Cli(server, tmp_path / "cli")
    assert cli.login().code == 0
    said = cli("webhook", "create", "--namespace", "guarded", "--url", receiver.url,
               "--events", "push")
    assert said.code == 1 and "webhook_allow_private_networks" in said.stderr, said
    assert api(server, "GET", "/webhooks").json() == []

    # Made while the operator allowed it; then the setting is turned off again.
    server.stop()
    server.env["MOORAGE_WEBHOOK_ALLOW_PRIVATE_NETWORKS"] = "true"
    server.start(timeout=120)
    hook = create_hook(server, receiver.url, ["push"], namespace="guarded")
    server.stop()
    server.env["MOORAGE_WEBHOOK_ALLOW_PRIVATE_NETWORKS"] = "false"
    server.start(timeout=120)
    assert api(server, "PATCH", f"/webhooks/{hook['id']}",
               json={"description": "kept"}).status_code == 200
    assert api(server, "PATCH", f"/webhooks/{hook['id']}",
               json={"url": receiver.url + "2"}).status_code == 400
    from tests.access.helpers import admin_push

    admin_push(server, "guarded/app")
    deadline = time.monotonic() + 120  # bounds a hang only
    while time.monotonic() < deadline:
        found = deliveries(server, hook["id"])
        if found and found[0]["attempts"] >= 1:
            break
        time.sleep(0.2)
    assert found and found[0]["status"] != "delivered"
    assert "internal address 127.0.0.1" in (found[0]["error"] or "")
    assert receiver.received() == []
