"""/readyz follows the services a replica depends on: 503 naming PostgreSQL, SeaweedFS or
Redis while it is stopped, 200 again once it is back; /healthz stays 200 throughout (the
process is alive). Issue 15, item 1."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import OPEN
from tests.support.scaleout import ScaleOut
from tests.support.server import MoorageServer

pytestmark = pytest.mark.skipif("scaleout" not in os.environ.get(
    "MOORAGE_TEST_BACKENDS", "embedded,scaleout"), reason="scale-out backend not selected")

# An upper bound on waiting for a state to show (a hang), not a margin the test relies on:
# the probe answers within its 2 s timeout once the service is gone or back.
SETTLE = 120.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaleOut]:
    root: Path = tmp_path_factory.mktemp("readiness")
    cluster = ScaleOut(root, env=OPEN, own_services=True)  # it stops them
    try:
        yield cluster.start(replicas=1)
    finally:
        cluster.stop()


def readiness(server: MoorageServer) -> httpx.Response:
    return httpx.get(f"{server.url}/readyz", timeout=30)


def until(server: MoorageServer, status: int) -> httpx.Response:
    deadline = time.monotonic() + SETTLE
    while True:
        answer = readiness(server)
        if answer.status_code == status or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize("service,name", [("postgres", "database"), ("redis", "redis"),
                                          ("s3", "storage")])
def test_readyz_follows_each_dependency(cluster: ScaleOut, service: str, name: str) -> None:
    replica = cluster.replicas[0]
    ready = until(replica, 200)
    assert ready.status_code == 200, ready.text
    assert set(ready.json()["checks"]) == {"database", "storage", "redis"}
    part = getattr(cluster, service)
    stop: Callable[[], None] = part.kill if service == "redis" else part.pause
    resume: Callable[[], object] = part.start if service == "redis" else part.resume
    stop()
    try:
        down = until(replica, 503)
        assert down.status_code == 503, down.text
        body = down.json()
        assert body["status"] == "unready" and body["checks"][name]["ok"] is False
        assert [f.split(":")[0] for f in body["failed"]] == [name]
        assert httpx.get(f"{replica.url}/healthz", timeout=30).status_code == 200
    finally:
        resume()
    back = until(replica, 200)
    assert back.status_code == 200, back.text


def test_healthz_and_readyz_on_the_embedded_instance(fresh_registry: MoorageServer) -> None:
    assert httpx.get(f"{fresh_registry.url}/healthz").json() == {"status": "alive"}
    ready = readiness(fresh_registry)
    assert ready.status_code == 200
    assert set(ready.json()["checks"]) == {"database", "storage"}
    assert httpx.head(f"{fresh_registry.url}/readyz").status_code == 200
    (fresh_registry.data_dir / "uploads").rename(fresh_registry.data_dir / "uploads-gone")
    down = until(fresh_registry, 503)
    assert down.status_code == 503 and down.json()["failed"][0].startswith("storage: ")
    assert "uploads is missing or not writable" in down.json()["failed"][0]
