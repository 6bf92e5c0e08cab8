"""The `webhook` job in-process: the last failure marks the delivery failed, and a delivery
that was delivered is never sent again, however often its job runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from moorage.app import Instance, build_instance
from moorage.db.schema import jobs
from moorage.events.dispatcher import JOB_TYPE, MAX_ATTEMPTS
from moorage.registry.events import Event
from moorage.settings import SettingsError, load_settings
from moorage.web.auth import OPEN
from tests.events.receiver import Receiver

DIGEST = "sha256:" + "b" * 64


@pytest.fixture
def instance(tmp_path: Path) -> Instance:
    # The receiver is on loopback, which instances refuse by default (webhook SSRF guard).
    return build_instance(load_settings(environ={}, overrides={
        "data_dir": tmp_path, "webhook_allow_private_networks": True}))


@pytest.fixture
def hook() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def push(instance: Instance) -> None:
    instance.registry.bus.publish(Event("push", "team/app", DIGEST, "x", "v1", 10,
                                        actor="alice", address="10.0.0.1"))


def test_last_failed_attempt_marks_the_delivery_failed(instance: Instance,
                                                       hook: Receiver) -> None:
    assert instance.webhooks is not None
    sub = instance.webhooks.create(OPEN, None, hook.url, ["push"])
    push(instance)
    (view,) = instance.webhooks.deliveries(OPEN, sub.id)
    # Skip to the last attempt rather than wait through minutes of backoff.
    with instance.registry.db.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.type == JOB_TYPE)
                     .values(attempts=MAX_ATTEMPTS - 1))
    hook.answers = [500]
    assert instance.worker.drain() == 1
    (view,) = instance.webhooks.deliveries(OPEN, sub.id)
    assert view.delivery.status == "failed" and view.delivery.last_response_code == 500
    (job,) = instance.worker.queue.list(job_type=JOB_TYPE)
    assert job.status == "failed" and "HTTP 500" in (job.last_error or "")


def test_webhook_max_attempts_bounds_the_tries(tmp_path: Path, hook: Receiver) -> None:
    """With `webhook_max_attempts = 1` the first failure is the last: no retry is queued."""
    instance = build_instance(load_settings(environ={"MOORAGE_WEBHOOK_MAX_ATTEMPTS": "1"},
                                            overrides={"data_dir": tmp_path,
                                                       "webhook_allow_private_networks": True}))
    assert instance.webhooks is not None
    sub = instance.webhooks.create(OPEN, None, hook.url, ["push"])
    push(instance)
    hook.answers = [500]
    assert instance.worker.drain() == 1
    (view,) = instance.webhooks.deliveries(OPEN, sub.id)
    assert view.delivery.status == "failed" and view.delivery.attempts == 1
    (job,) = instance.worker.queue.list(job_type=JOB_TYPE)
    assert job.status == "failed"


def test_webhook_max_attempts_is_bounded(tmp_path: Path) -> None:
    for wrong in ("0", "21"):
        with pytest.raises(SettingsError, match="webhook_max_attempts"):
            load_settings(environ={"MOORAGE_WEBHOOK_MAX_ATTEMPTS": wrong},
                          overrides={"data_dir": tmp_path})


def test_delivered_is_never_sent_again(instance: Instance, hook: Receiver) -> None:
    assert instance.webhooks is not None
    sub = instance.webhooks.create(OPEN, None, hook.url, ["push"])
    push(instance)
    assert instance.worker.drain() == 1
    (view,) = instance.webhooks.deliveries(OPEN, sub.id)
    assert view.delivery.status == "delivered"
    # A second job for the same delivery (a worker that died after the POST, say).
    instance.worker.enqueue(JOB_TYPE, {"delivery_id": view.delivery.id})
    assert instance.worker.drain() == 1
    assert len(hook.received()) == 1
    (view,) = instance.webhooks.deliveries(OPEN, sub.id)
    assert view.delivery.attempts == 1 and len(view.attempts) == 1


def test_disabled_and_deleted_subscriptions_send_nothing(instance: Instance,
                                                         hook: Receiver) -> None:
    assert instance.webhooks is not None
    service = instance.webhooks
    first = service.create(OPEN, None, hook.url, ["push"])
    second = service.create(OPEN, None, hook.url, ["push"])
    push(instance)
    service.update(OPEN, first.id, enabled=False)
    service.delete(OPEN, second.id)
    assert instance.worker.drain() == 2
    assert hook.received() == []
    (view,) = service.deliveries(OPEN, first.id)
    assert view.delivery.status == "failed" and "disabled" in (view.delivery.last_error or "")
    push(instance)  # disabled: no delivery at all
    assert len(service.deliveries(OPEN, first.id)) == 1


def test_internal_events_are_not_delivered(instance: Instance, hook: Receiver) -> None:
    assert instance.webhooks is not None
    sub = instance.webhooks.create(OPEN, None, hook.url, ["push", "delete", "pull", "quota"])
    for action in ("blob.push", "blob.mount", "blob.delete", "login", "namespace.create",
                   "scan.completed", "build.failed"):
        instance.registry.bus.publish(Event(action, "team/app", DIGEST))
    instance.registry.bus.publish(Event("quota", "team/app", DIGEST, result="failure"))
    assert instance.worker.drain() == 1
    (got,) = hook.received()
    assert got.event == "quota"
    assert len(instance.webhooks.deliveries(OPEN, sub.id)) == 1
