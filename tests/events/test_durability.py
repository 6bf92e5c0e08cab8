"""Deliveries live in the database with their jobs, so a kill -9 loses none of them: not
between the event and the first attempt, nor between a failed attempt and its retry."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from tests.events.helpers import create_hook, deliveries, wait_deliveries
from tests.events.receiver import Receiver
from tests.support.server import MoorageServer
from tests.web.helpers import make_namespace, push_image


def webhook_jobs(server: MoorageServer) -> list[tuple[str, int]]:
    with sqlite3.connect(server.data_dir / "moorage.db", timeout=10) as db:
        return db.execute("SELECT status, attempts FROM jobs WHERE type = 'webhook'").fetchall()


def wait_failed_attempt(server: MoorageServer) -> None:
    """Until the webhook job waits for a retry after one or more failed attempts."""
    deadline = time.monotonic() + 120  # a bound on a hang, however slow the machine
    while not ((jobs := webhook_jobs(server)) and jobs[0][0] == "queued" and jobs[0][1] >= 1):
        assert time.monotonic() < deadline, jobs
        time.sleep(0.05)


def test_delivery_survives_kill_9(make_registry: Callable[..., MoorageServer]) -> None:
    receiver = Receiver()  # not started yet: its connections are refused, as when it is down
    # 1. Without workers, the push commits its delivery and job and nothing runs them: the
    #    moment between the event and the delivery, held open for the kill.
    server = make_registry(env={"MOORAGE_RUN_WORKERS": "false"})
    ns = make_namespace(server)
    hook = create_hook(server, receiver.url, ["push"], ns, secret="k")
    push_image(server, f"{ns}/app", "v1")
    assert webhook_jobs(server) == [("queued", 0)]
    server.kill()

    # 2. Workers on, receiver still down: the first attempt fails and the job waits for its
    #    retry (2 s of backoff), when the second kill comes.
    server.env["MOORAGE_RUN_WORKERS"] = "true"
    server.start()
    wait_failed_attempt(server)
    (pending,) = deliveries(server, hook["id"])
    # A slow machine may have let the 2 s pass and made a second attempt, failed as well.
    assert pending["status"] == "pending" and pending["attempts"] >= 1
    assert all(a["response_code"] is None and a["error"] for a in pending["history"])
    server.kill()
    failed = pending["attempts"]

    # 3. Receiver up, Moorage back: the event arrives, once.
    receiver.start()
    try:
        server.start()
        (got,) = receiver.wait_for(1, settle=1.0)
    finally:
        receiver.stop()
    assert got.event == "push" and got.signed_with("k")
    assert got.delivery == pending["id"] and got.json()["repository"] == f"{ns}/app"
    (delivery,) = wait_deliveries(server, hook["id"], 1)
    assert delivery["attempts"] == failed + 1
    assert [a["response_code"] for a in delivery["history"]] == [None] * failed + [200]
    assert webhook_jobs(server) == [("succeeded", failed + 1)]
