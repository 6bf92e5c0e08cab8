"""The webhook API and CLI: who may manage which webhooks, write-only secrets, editions."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.cli.conftest import Cli
from tests.events.helpers import create_hook, wait_deliveries
from tests.events.receiver import Receiver
from tests.support.server import MoorageServer
from tests.web.conftest import People
from tests.web.helpers import api, error, grant, make_namespace, push_image

SECRET = "do-not-echo-this-secret-4711"


def test_secret_is_never_returned(secure_registry: MoorageServer, receiver: Receiver) -> None:
    ns = make_namespace(secure_registry)
    created = api(secure_registry, "POST", "/webhooks",
                  json={"namespace": ns, "url": receiver.url, "events": ["push"],
                        "secret": SECRET, "description": "ci"})
    assert created.status_code == 201
    hook = created.json()
    assert hook["has_secret"] is True and "secret" not in hook
    hook_id = hook["id"]
    push_image(secure_registry, f"{ns}/app", "v1")
    wait_deliveries(secure_registry, hook_id, 1)
    answers = [created,
               api(secure_registry, "GET", f"/webhooks/{hook_id}"),
               api(secure_registry, "GET", "/webhooks"),
               api(secure_registry, "GET", f"/webhooks/{hook_id}/deliveries"),
               api(secure_registry, "POST", f"/webhooks/{hook_id}/test"),
               api(secure_registry, "PATCH", f"/webhooks/{hook_id}",
                   json={"description": "still ci"}),
               api(secure_registry, "PATCH", f"/webhooks/{hook_id}",
                   json={"secret": SECRET + "-new"})]
    for resp in answers:
        assert resp.status_code in (200, 201), resp.text
        assert SECRET not in resp.text
    assert answers[-1].json()["has_secret"] is True
    # The job log would be the other place for it to leak.
    assert SECRET not in secure_registry.log_path.read_text(errors="replace")

    removed = api(secure_registry, "PATCH", f"/webhooks/{hook_id}", json={"secret": ""})
    assert removed.json()["has_secret"] is False
    assert api(secure_registry, "PATCH", f"/webhooks/{hook_id}",
               json={"description": "x"}).json()["has_secret"] is False


def test_update_and_delete(secure_registry: MoorageServer, receiver: Receiver) -> None:
    ns = make_namespace(secure_registry)
    hook = create_hook(secure_registry, receiver.url, ["push"], ns)
    assert hook["format"] == "moorage" and hook["enabled"] is True
    changed = api(secure_registry, "PATCH", f"/webhooks/{hook['id']}",
                  json={"events": ["delete", "push"], "format": "distribution",
                        "enabled": False})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["events"] == ["push", "delete"] and body["format"] == "distribution"
    assert body["enabled"] is False
    push_image(secure_registry, f"{ns}/app", "v1")  # disabled: nothing is sent
    assert api(secure_registry, "DELETE", f"/webhooks/{hook['id']}").status_code == 204
    gone = api(secure_registry, "GET", f"/webhooks/{hook['id']}")
    assert gone.status_code == 404 and error(gone)[0] == "NOT_FOUND"
    assert api(secure_registry, "GET", f"/webhooks/{hook['id']}/deliveries").status_code == 404
    assert receiver.received() == []


def test_validation(secure_registry: MoorageServer) -> None:
    ns = make_namespace(secure_registry)
    cases = [({"url": "ftp://example.com/x", "events": ["push"]}, 400, "http"),
             ({"url": "not a url", "events": ["push"]}, 400, "URL"),
             ({"url": "https://example.com/x", "events": ["bogus"]}, 422, "events"),
             ({"url": "https://example.com/x", "events": []}, 422, "events"),
             ({"url": "https://example.com/x", "events": ["push"], "format": "xml"}, 422,
              "format"),
             ({"url": "https://example.com/x", "events": ["push"], "secret": "s" * 300}, 400,
              "secret"),
             ({"url": "https://example.com/x", "events": ["push"], "colour": "red"}, 422,
              "colour")]
    for body, status, word in cases:
        resp = api(secure_registry, "POST", "/webhooks", json={"namespace": ns, **body})
        assert resp.status_code == status, (body, resp.text)
        assert word in error(resp)[1], (body, resp.text)
    missing = api(secure_registry, "POST", "/webhooks",
                  json={"namespace": "no-such-namespace", "url": "https://example.com/x",
                        "events": ["push"]})
    assert missing.status_code == 404


def test_who_may_manage_webhooks(secure_registry: MoorageServer, people: People,
                                 receiver: Receiver) -> None:
    ns = make_namespace(secure_registry)
    alice, bob, carol = people.alice, people.bob, people.carol
    grant(secure_registry, ns, alice[0], "maintainer")
    grant(secure_registry, ns, bob[0], "developer")

    own = create_hook(secure_registry, receiver.url, ["push"], ns, auth=alice)
    assert own["created_by"] == alice[0]
    body = {"namespace": ns, "url": receiver.url, "events": ["push"]}
    refused = api(secure_registry, "POST", "/webhooks", auth=bob, json=body)
    assert refused.status_code == 403 and "maintainer" in error(refused)[1]
    instance_wide = api(secure_registry, "POST", "/webhooks", auth=alice,
                        json={**body, "namespace": None})
    assert instance_wide.status_code == 403 and "administrators" in error(instance_wide)[1]

    # A developer sees that it exists but may not touch it; a stranger does not see it.
    assert api(secure_registry, "GET", f"/webhooks/{own['id']}", auth=bob).status_code == 403
    assert api(secure_registry, "GET", f"/webhooks/{own['id']}", auth=carol).status_code == 404
    assert api(secure_registry, "DELETE", f"/webhooks/{own['id']}",
               auth=carol).status_code == 404
    assert [h["id"] for h in api(secure_registry, "GET", "/webhooks", auth=alice,
                                 params={"namespace": ns}).json()] == [own["id"]]
    assert api(secure_registry, "GET", "/webhooks", auth=bob,
               params={"namespace": ns}).json() == []
    admin_view = api(secure_registry, "GET", "/webhooks", params={"namespace": ns}).json()
    assert [h["id"] for h in admin_view] == [own["id"]]
    assert api(secure_registry, "GET", "/webhooks", auth=None).status_code == 401
    assert api(secure_registry, "DELETE", f"/webhooks/{own['id']}",
               auth=alice).status_code == 204


def test_personal_edition_refuses_webhooks(make_registry: Callable[..., MoorageServer]) -> None:
    server = make_registry("personal", env={"MOORAGE_EDITION": "personal"})
    # The edition is checked before anything else, so no namespace needs to exist.
    for method, path, body in (("POST", "/webhooks", {"namespace": "team", "events": ["push"],
                                                      "url": "https://example.com/hook"}),
                               ("GET", "/webhooks", None), ("GET", "/webhooks/1", None)):
        resp = api(server, method, path, json=body)
        assert resp.status_code == 403, resp.text
        code, message = error(resp)
        assert code == "EDITION"
        assert "basic edition" in message and "personal edition" in message
        assert "webhooks" in message
    info = api(server, "GET", "/info").json()
    assert info["features"]["webhooks"] is False


def test_cli(admin_cli: Cli, receiver: Receiver) -> None:
    server = admin_cli.server
    ns = make_namespace(server)
    out = admin_cli.ok("webhook", "create", "--namespace", ns, "--url", receiver.url,
                       "--events", "push,delete", "--format", "cloudevents",
                       "--secret", SECRET)
    assert f"for {ns}: push,delete" in out and "signed" in out and SECRET not in out
    (hook,) = api(server, "GET", "/webhooks", params={"namespace": ns}).json()
    assert hook["format"] == "cloudevents" and hook["has_secret"] is True

    table = admin_cli.ok("webhook", "list", "--namespace", ns)
    assert table.splitlines()[0].split() == ["ID", "NAMESPACE", "EVENTS", "FORMAT", "ENABLED",
                                             "SIGNED", "URL"]
    assert table.splitlines()[1].split()[:6] == [str(hook["id"]), ns, "push,delete",
                                                 "cloudevents", "yes", "yes"]
    shown = admin_cli.ok("webhook", "show", str(hook["id"]))
    assert receiver.url in shown and SECRET not in shown

    push_image(server, f"{ns}/app", "v1")
    receiver.wait_for(1)
    wait_deliveries(server, hook["id"], 1)
    history = admin_cli.ok("webhook", "deliveries", str(hook["id"]))
    assert history.splitlines()[0].split()[:5] == ["DELIVERY", "EVENT", "STATUS", "ATTEMPTS",
                                                   "CODES"]
    assert history.splitlines()[1].split()[1:5] == ["push", "delivered", "1", "200"]

    bad = admin_cli("webhook", "create", "--namespace", ns, "--url", receiver.url,
                    "--events", "push,explode")
    assert bad.code == 2 and "--events" in bad.stderr
    assert json.loads(admin_cli.ok("webhook", "delete", str(hook["id"]), "--json")) == \
        {"deleted": hook["id"]}
    gone = api(server, "GET", f"/webhooks/{hook['id']}")
    assert gone.status_code == 404
    assert error(gone)[1] == f"webhook {hook['id']} does not exist"


def test_events_nothing_emits_are_refused(admin_cli: Cli, receiver: Receiver) -> None:
    """Nothing in this version builds: a webhook for `build` would never fire, so it is
    refused, by the API (with the events one may choose) and by the CLI. Scans do run, so
    `scan` and `vulnerability` are events one may choose, and so are `pull.blocked` (threat
    blocking's refusals) and replication's."""
    server = admin_cli.server
    ns = make_namespace(server)
    choices = ("'push', 'delete', 'pull', 'quota', 'scan', 'vulnerability', 'signature', "
               "'signing_key', 'pull.blocked', 'replication', 'replication_rule', 'subscription' or 'import'")
    refused = api(server, "POST", "/webhooks",
                  json={"namespace": ns, "url": receiver.url, "events": ["push", "build"]})
    assert refused.status_code in (400, 422), refused.text
    # The API never echoes input; it names the field and the events one may choose.
    assert error(refused)[1] == f"events.1: Input should be {choices}"
    hook = create_hook(server, receiver.url, ["push"], ns)
    changed = api(server, "PATCH", f"/webhooks/{hook['id']}", json={"events": ["build"]})
    assert changed.status_code in (400, 422) and "'vulnerability'" in error(changed)[1]
    cli = admin_cli("webhook", "create", "--namespace", ns, "--url", receiver.url,
                    "--events", "push,build")
    assert cli.code == 2 and "push, delete, pull, quota, scan, vulnerability" in cli.stderr, cli
    assert "build" not in admin_cli.ok("webhook", "create", "--help")
    assert api(server, "GET", "/webhooks", params={"namespace": ns}).json()[0]["events"] == \
        ["push"]
    scans = api(server, "POST", "/webhooks",
                json={"namespace": ns, "url": receiver.url, "events": ["scan", "vulnerability"]})
    assert scans.status_code == 201, scans.text


def test_webhook_test_fails_when_the_ping_is_not_delivered(admin_cli: Cli) -> None:
    """`moorage webhook test` is how one checks a receiver: a ping that was not delivered is
    a failure (exit 1) that says why, in both output modes; a delivered one exits 0."""
    server = admin_cli.server
    ns = make_namespace(server)
    failing = Receiver(answers=[503, 503]).start()
    try:
        hook = create_hook(server, failing.url, ["push"], ns)
        said = admin_cli("webhook", "test", str(hook["id"]))
        assert said.code == 1, said
        assert "failed (HTTP 503" in said.stdout
        assert said.stderr == (f"moorage: the ping to webhook {hook['id']} was not delivered: "
                               f"HTTP 503 (the receiver said: receiver failure 503)\n")
        as_json = admin_cli("webhook", "test", str(hook["id"]), "--json")
        assert as_json.code == 1
        assert json.loads(as_json.stdout)["status"] == "failed"
        assert "HTTP 503" in json.loads(as_json.stderr)["error"]
        delivered = admin_cli("webhook", "test", str(hook["id"]))
        assert delivered.code == 0 and "delivered (HTTP 200" in delivered.stdout, delivered
    finally:
        failing.stop()
    down = admin_cli("webhook", "test", str(hook["id"]))  # nothing listens there any more
    assert down.code == 1 and "ConnectError" in down.stderr, down


def test_redeliver(secure_registry: MoorageServer, people: People) -> None:
    """A failed delivery is sent again, after the receiver is fixed, as a new delivery of the
    same event with the same body; the queue delivers it; the history links the two."""
    server = secure_registry
    ns = make_namespace(server)
    receiver = Receiver(answers=[500]).start()
    try:
        hook = create_hook(server, receiver.url, ["push"], ns, secret="k")
        failed = api(server, "POST", f"/webhooks/{hook['id']}/test").json()
        assert failed["status"] == "failed" and failed["response_code"] == 500
        assert failed["redelivery_of"] is None

        again = api(server, "POST",
                    f"/webhooks/{hook['id']}/deliveries/{failed['id']}/redeliver")
        assert again.status_code == 202, again.text
        redelivery = again.json()
        assert redelivery["id"] != failed["id"] and redelivery["event_id"] == failed["event_id"]
        assert redelivery["redelivery_of"] == failed["id"] and redelivery["event"] == "ping"
        assert redelivery["status"] in ("pending", "delivered")
        found = wait_deliveries(server, hook["id"], 1)
        by_id = {d["id"]: d for d in found}
        assert by_id[redelivery["id"]]["status"] == "delivered"
        assert by_id[redelivery["id"]]["response_code"] == 200
        assert by_id[redelivery["id"]]["redelivery_of"] == failed["id"]
        assert by_id[failed["id"]]["status"] == "failed"  # its own history stays as it was
        first, second = receiver.wait_for(2)
        assert first.body == second.body and second.signed_with("k")
        assert (first.delivery, second.delivery) == (failed["id"], redelivery["id"])

        # A delivered one may be sent again too (a receiver that lost what it got).
        twice = api(server, "POST",
                    f"/webhooks/{hook['id']}/deliveries/{redelivery['id']}/redeliver").json()
        assert twice["redelivery_of"] == failed["id"]
        wait_deliveries(server, hook["id"], 2)

        # While a delivery of the event is pending, its retries will send it: 409.
        receiver.answers = [500, 500, 500, 500]
        push_image(server, f"{ns}/app", "v1")
        receiver.wait_for(1, event="push")
        (pending,) = [d for d in api(server, "GET", f"/webhooks/{hook['id']}/deliveries").json()
                      if d["event"] == "push"]
        assert pending["status"] == "pending"
        busy = api(server, "POST",
                   f"/webhooks/{hook['id']}/deliveries/{pending['id']}/redeliver")
        assert busy.status_code == 409 and "still pending" in error(busy)[1]
    finally:
        receiver.stop()

    base = f"/webhooks/{hook['id']}/deliveries"
    missing = api(server, "POST", f"{base}/{'0' * 32}/redeliver")
    assert missing.status_code == 404 and error(missing)[0] == "NOT_FOUND"
    assert api(server, "POST", f"{base}/not-a-delivery/redeliver").status_code == 422
    other = create_hook(server, "http://127.0.0.1:9/other", ["push"], ns)
    elsewhere = api(server, "POST",
                    f"/webhooks/{other['id']}/deliveries/{failed['id']}/redeliver")
    assert elsewhere.status_code == 404  # a delivery of another webhook

    # Authorized like the other webhook routes.
    alice, bob, carol = people.alice, people.bob, people.carol
    grant(server, ns, alice[0], "maintainer")
    grant(server, ns, bob[0], "developer")
    path = f"{base}/{failed['id']}/redeliver"
    assert api(server, "POST", path, auth=bob).status_code == 403
    assert api(server, "POST", path, auth=carol).status_code == 404
    assert api(server, "POST", path, auth=None).status_code == 401
    assert api(server, "PATCH", f"/webhooks/{hook['id']}",
               json={"enabled": False}).status_code == 200
    disabled = api(server, "POST", path, auth=alice)
    assert disabled.status_code == 409 and "disabled" in error(disabled)[1]

    audit = api(server, "GET", "/audit", params={"action": "webhook.redeliver"}).json()
    assert {e["actor"] for e in audit["entries"]} >= {"admin", alice[0]}
    operation = api(server, "GET", "/openapi.json").json()["paths"][
        "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"]["post"]
    assert "202" in operation["responses"] and "409" in operation["responses"]


def test_redeliver_cli(admin_cli: Cli) -> None:
    server = admin_cli.server
    ns = make_namespace(server)
    receiver = Receiver(answers=[502]).start()
    try:
        hook = create_hook(server, receiver.url, ["push"], ns)
        failed = api(server, "POST", f"/webhooks/{hook['id']}/test").json()
        assert failed["status"] == "failed"
        out = admin_cli.ok("webhook", "redeliver", str(hook["id"]), failed["id"])
        lines = out.splitlines()
        assert lines[0].split() == ["DELIVERY", "EVENT", "STATUS", "REDELIVERY", "OF",
                                    "CREATED"]
        new_id, event, status, first = lines[1].split()[:4]
        assert event == "ping" and status in ("pending", "delivered") and first == failed["id"]
        wait_deliveries(server, hook["id"], 1)
        as_json = json.loads(admin_cli.ok("webhook", "redeliver", str(hook["id"]), new_id,
                                          "--json"))
        assert as_json["redelivery_of"] == failed["id"] and as_json["event"] == "ping"
        history = admin_cli.ok("webhook", "deliveries", str(hook["id"]))
        assert new_id in history and as_json["id"] in history
    finally:
        receiver.stop()
    gone = admin_cli("webhook", "redeliver", str(hook["id"]), "0" * 32)
    assert gone.code == 1 and f"webhook {hook['id']} has no delivery" in gone.stderr, gone
