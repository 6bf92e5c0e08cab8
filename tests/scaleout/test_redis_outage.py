"""Redis stopped mid-test: pulls, manifests and tags go on from the database, blob uploads
answer 503 (never 500), and everything works again once Redis is back, without restarting a
replica."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.access.helpers import ADMIN
from tests.conftest import ROOMY, SECURED
from tests.lifecycle.helpers import OCI_MANIFEST, make_image, pull, push
from tests.support.scaleout import ScaleOut

CLOSE = {"Connection": "close"}

pytestmark = pytest.mark.skipif("scaleout" not in os.environ.get(
    "MOORAGE_TEST_BACKENDS", "embedded,scaleout"), reason="scale-out backend not selected")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaleOut]:
    """A cluster with servers of its own (its Redis is stopped), with accounts, lockouts and
    a rate limit: every part that keeps something in Redis is on."""
    root: Path = tmp_path_factory.mktemp("redis-outage")
    env = {**SECURED, **ROOMY, "MOORAGE_RATE_LIMIT_PER_MINUTE": "100000"}
    cluster = ScaleOut(root, env=env, own_services=True)
    try:
        yield cluster.start(replicas=2)
    finally:
        cluster.stop()


def never_500(resp: httpx.Response) -> httpx.Response:
    assert resp.status_code < 500 or resp.status_code == 503, (resp.status_code, resp.text)
    return resp


def assert_unavailable(resp: httpx.Response) -> None:
    assert resp.status_code == 503, (resp.status_code, resp.text)
    assert int(resp.headers["Retry-After"]) > 0
    error = resp.json()["errors"][0]
    assert error["code"] == "UNKNOWN"
    assert "Redis" in error["message"] and "try again later" in error["message"]


def test_redis_outage_pulls_go_on_pushes_are_refused_and_all_recovers(cluster: ScaleOut) -> None:
    a, b = cluster.replicas[:2]
    assert cluster.redis is not None
    first = make_image([os.urandom(50_000)], "first")
    with httpx.Client(base_url=a.url, auth=ADMIN, timeout=60) as ca, \
            httpx.Client(base_url=b.url, auth=ADMIN, timeout=60) as cb:
        assert push(ca, "team/app", "v1", first).status_code == 201
        assert pull(cb, "team/app", "v1").blobs == first.blobs

        cluster.redis.kill()

        # pulls: manifests by tag and digest, blobs, tag lists, on both replicas
        for client in (ca, cb):
            assert pull(client, "team/app", "v1").digest == first.digest
            assert pull(client, "team/app", first.digest).digest == first.digest
            assert never_500(client.get("/v2/team/app/tags/list")).json()["tags"] == ["v1"]
        # logins (lockout counts fall back to the database) and tokens
        token = never_500(httpx.get(f"{a.url}/auth/token", auth=ADMIN, params={
            "service": "moorage", "scope": "repository:team/app:pull"}))
        assert token.status_code == 200
        bearer = {"Authorization": f"Bearer {token.json()['token']}"}
        assert never_500(httpx.get(f"{b.url}/v2/team/app/manifests/v1", headers={
            **bearer, "Accept": OCI_MANIFEST})).status_code == 200
        wrong = never_500(httpx.get(f"{a.url}/v2/", auth=("admin", "wrong password")))
        assert wrong.status_code == 401
        assert never_500(ca.get("/api/v1/repositories")).status_code == 200

        # pushes: refused with 503 and Retry-After, and nothing is left behind
        second = make_image([os.urandom(40_000)], "second")
        layer, data = next((d, v) for d, v in second.blobs.items() if len(v) == 40_000)
        # A refusal that does not read the body ends the connection after it: each refused
        # request asks for its own (`Connection: close`), so none meets a connection that the
        # server is closing (a race a loaded machine loses now and then).
        assert_unavailable(ca.post("/v2/team/app/blobs/uploads/", params={"digest": layer},
                                   content=data, headers=CLOSE))
        assert cb.head(f"/v2/team/app/blobs/{layer}").status_code == 404
        started = never_500(cb.post("/v2/team/app/blobs/uploads/"))
        assert started.status_code == 202
        assert_unavailable(ca.patch(started.headers["Location"], content=data, headers={
            "Content-Type": "application/octet-stream", **CLOSE}))
        # manifests and tags live in the database alone (no tag cache in Redis: each worker
        # keeps tag -> digest until the next commit, db/changes.py), so they go on, and
        # every replica sees them at once
        tagged = ca.put("/v2/team/app/manifests/v1-again", content=first.manifest,
                        headers={"Content-Type": OCI_MANIFEST})
        assert tagged.status_code == 201, tagged.text
        assert pull(cb, "team/app", "v1-again").digest == first.digest
        assert cb.delete("/v2/team/app/manifests/v1-again").status_code == 202
        assert ca.get("/v2/team/app/manifests/v1-again",
                      headers={"Accept": OCI_MANIFEST}).status_code == 404
        assert ca.get("/v2/team/app/tags/list").json()["tags"] == ["v1"]

        cluster.redis.start()  # same port: no replica is restarted

        # the upload begun during the outage resumes; pushes and moved tags work everywhere
        resumed = ca.patch(started.headers["Location"], content=data, headers={
            "Content-Type": "application/octet-stream"})
        assert resumed.status_code == 202, resumed.text
        assert cb.put(resumed.headers["Location"], params={"digest": layer}).status_code == 201
        assert push(cb, "team/app", "v2", second).status_code == 201
        assert pull(ca, "team/app", "v2").blobs == second.blobs
        for image in (second, first):
            assert push(ca, "team/app", "latest", image).status_code == 201
            seen = cb.head("/v2/team/app/manifests/latest", headers={"Accept": OCI_MANIFEST})
            assert seen.headers["Docker-Content-Digest"] == image.digest

    for replica in (a, b):
        log = replica.log()
        assert "Traceback" not in log
        outages = log.count("is unavailable (")
        assert 1 <= outages <= 2, log[-3000:]  # logged once a minute, not once per request
        assert "answers again" in log
