"""Replicas that share only PostgreSQL, S3 and Redis: any request may land on any of them."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time

import httpx
import pytest

from tests.lifecycle.helpers import make_image, pull, push
from tests.support.scaleout import ScaleOut
from tests.support.server import MoorageServer

pytestmark = pytest.mark.skipif("scaleout" not in os.environ.get(
    "MOORAGE_TEST_BACKENDS", "embedded,scaleout"), reason="scale-out backend not selected")


def client(replica: MoorageServer) -> httpx.Client:
    return httpx.Client(base_url=replica.url, timeout=60)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_push_through_one_pull_through_another(scaleout: ScaleOut) -> None:
    a, b = scaleout.replicas[:2]
    image = make_image([os.urandom(200_000)], "a-to-b")
    with client(a) as ca, client(b) as cb:
        assert push(ca, "scale/app", "v1", image).status_code == 201
        assert pull(cb, "scale/app", "v1").blobs == image.blobs
        assert cb.get("/v2/scale/app/tags/list").json()["tags"] == ["v1"]


def test_a_moved_tag_is_visible_everywhere_at_once(scaleout: ScaleOut) -> None:
    a, b = scaleout.replicas[:2]
    first, second = make_image([b"first"]), make_image([b"second"])
    with client(a) as ca, client(b) as cb:
        for image in (first, second, first, second):
            assert push(ca, "scale/moving", "latest", image).status_code == 201
            seen = cb.head("/v2/scale/moving/manifests/latest",
                           headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
            assert seen.headers["Docker-Content-Digest"] == image.digest
        assert ca.delete("/v2/scale/moving/manifests/latest").status_code == 202
        assert cb.get("/v2/scale/moving/manifests/latest").status_code == 404


def test_chunked_upload_across_three_replicas(scaleout: ScaleOut) -> None:
    while len(scaleout.replicas) < 3:
        scaleout.add_replica()
    a, b, c = scaleout.replicas[:3]
    data = os.urandom(3 * 1024 * 1024 + 17)
    parts = [data[:1_000_000], data[1_000_000:2_500_000], data[2_500_000:]]
    with client(a) as ca, client(b) as cb, client(c) as cc:
        start = ca.post("/v2/scale/chunks/blobs/uploads/")
        assert start.status_code == 202
        location = start.headers["Location"]
        offset = 0
        for replica, part in zip((ca, cb, cc), parts):
            resp = replica.patch(location, content=part, headers={
                "Content-Range": f"{offset}-{offset + len(part) - 1}",
                "Content-Type": "application/octet-stream"})
            assert resp.status_code == 202, resp.text
            offset += len(part)
            assert resp.headers["Range"] == f"0-{offset - 1}"
        done = cb.put(location, params={"digest": sha256(data)})
        assert done.status_code == 201, done.text
        assert cc.get(f"/v2/scale/chunks/blobs/{sha256(data)}").content == data


def test_replica_killed_mid_upload_and_another_finishes(scaleout: ScaleOut) -> None:
    doomed = scaleout.add_replica()
    survivor = scaleout.replicas[0]
    data = os.urandom(2 * 1024 * 1024)
    first, second = data[:800_000], data[800_000:]
    with client(doomed) as cd:
        location = cd.post("/v2/scale/crash/blobs/uploads/").headers["Location"]
        assert cd.patch(location, content=first,
                        headers={"Content-Range": f"0-{len(first) - 1}"}).status_code == 202
    # Start the second chunk on the doomed replica, send half of it, then kill -9 the replica.
    sock = socket.create_connection(("127.0.0.1", doomed.port))
    head = (f"PATCH {location} HTTP/1.1\r\nHost: {doomed.host}\r\n"
            f"Content-Length: {len(second)}\r\n"
            f"Content-Range: {len(first)}-{len(data) - 1}\r\n\r\n").encode()
    sock.sendall(head + second[: len(second) // 2])
    time.sleep(0.5)
    doomed.kill()
    sock.close()
    with client(survivor) as cs:
        status = cs.get(location)
        assert status.status_code == 204
        assert status.headers["Range"] == f"0-{len(first) - 1}", "only whole chunks count"
        resp = cs.patch(location, content=second,
                        headers={"Content-Range": f"{len(first)}-{len(data) - 1}"})
        assert resp.status_code == 202, resp.text
        assert cs.put(location, params={"digest": sha256(data)}).status_code == 201
        assert cs.get(f"/v2/scale/crash/blobs/{sha256(data)}").content == data


def test_gc_on_one_replica_while_others_serve(scaleout: ScaleOut) -> None:
    a, b = scaleout.replicas[:2]
    stop = threading.Event()
    failures: list[str] = []
    images: dict[str, object] = {}

    def traffic() -> None:
        n = 0
        with client(a) as ca:
            while not stop.is_set() and n < 40:
                image = make_image([os.urandom(5_000), b"shared layer for gc"], f"gc{n}")
                try:
                    resp = push(ca, "scale/gc", f"t{n}", image)
                except AssertionError as exc:  # a blob upload refused, seen by the test
                    failures.append(f"push t{n}: {exc}")
                    n += 1
                    continue
                if resp.status_code != 201:
                    failures.append(f"push t{n}: {resp.status_code} {resp.text}")
                else:
                    images[f"t{n}"] = image
                    try:
                        pull(ca, "scale/gc", f"t{n}")
                    except AssertionError as exc:
                        failures.append(f"pull t{n}: {exc}")
                n += 1

    worker = threading.Thread(target=traffic)
    worker.start()
    runs = 0
    with client(b) as cb:
        while worker.is_alive():
            job = cb.post("/api/v1/gc", json={"grace": "30s"})
            if job.status_code == 202:
                runs += 1
                job_id = job.json()["id"]
                for _ in range(200):
                    state = cb.get(f"/api/v1/jobs/{job_id}").json()
                    if state["status"] in ("succeeded", "failed"):
                        assert state["status"] == "succeeded", state
                        break
                    time.sleep(0.05)
    worker.join()
    stop.set()
    assert not failures, failures[:5]
    assert runs >= 1
    with client(b) as cb:
        for tag, image in images.items():
            assert pull(cb, "scale/gc", tag).blobs == image.blobs  # type: ignore[attr-defined]


def test_jobs_run_exactly_once_across_replicas(scaleout: ScaleOut) -> None:
    a, b = scaleout.replicas[:2]
    with client(a) as ca, client(b) as cb:
        ca.post("/api/v1/namespaces", json={"name": "once"})
        rule = ca.post("/api/v1/retention", json={"scope": "once", "keep_last": 5}).json()
        ids = [(ca if n % 2 else cb).post(f"/api/v1/retention/{rule['id']}/run",
                                          json={"dry_run": True}).json()["id"]
               for n in range(10)]
        deadline = time.monotonic() + 60
        finished: dict[int, dict[str, object]] = {}
        while len(finished) < len(ids) and time.monotonic() < deadline:
            for job_id in ids:
                if job_id not in finished:
                    job = ca.get(f"/api/v1/jobs/{job_id}").json()
                    if job["status"] in ("succeeded", "failed"):
                        finished[job_id] = job
            time.sleep(0.1)
    assert len(finished) == len(ids)
    assert all(j["status"] == "succeeded" and j["attempts"] == 1 for j in finished.values())


def test_rate_limit_is_shared_by_replicas(scaleout: ScaleOut) -> None:
    """Five requests a minute per address, counted in Redis: the sixth, on another replica,
    is refused with 429 and Retry-After."""
    limited = [MoorageServer(scaleout.root / f"limited{n}",
                             env={**scaleout.env(), "MOORAGE_RATE_LIMIT_PER_MINUTE": "5"})
               for n in range(2)]
    for replica in limited:
        replica.start(timeout=60)
    try:
        # The limit counts in fixed one-minute windows: should one end among the six
        # requests, that run proves nothing, and it is made again in the next window.
        for _ in range(3):
            if _:
                time.sleep(60 - time.time() % 60)
            window = int(time.time() // 60)
            codes = [httpx.get(f"{limited[n % 2].url}/v2/scale/app/tags/list").status_code
                     for n in range(5)]
            refused = httpx.get(f"{limited[1].url}/v2/scale/app/tags/list")
            if int(time.time() // 60) == window:
                break
        assert 429 not in codes, codes
        assert refused.status_code == 429
        assert refused.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
        assert int(refused.headers["Retry-After"]) <= 60
    finally:
        for replica in limited:
            replica.kill()


def test_blob_gets_redirect_to_presigned_urls(scaleout: ScaleOut) -> None:
    assert scaleout.s3 is not None
    replica = MoorageServer(scaleout.root / "redirecting",
                            env={**scaleout.env(), "MOORAGE_STORAGE_URL":
                                 scaleout.s3.storage_url("moorage", redirect=True)})
    replica.start(timeout=60)
    try:
        image = make_image([os.urandom(300_000)], "redirected")
        with client(replica) as c:
            assert push(c, "scale/redirect", "v1", image).status_code == 201
            layer = next(d for d, b in image.blobs.items() if len(b) == 300_000)
            moved = c.get(f"/v2/scale/redirect/blobs/{layer}")
            assert moved.status_code == 307
            assert moved.headers["Location"].startswith(scaleout.s3.endpoint)
            fetched = httpx.get(moved.headers["Location"], headers={"Range": "bytes=10-19"})
            assert fetched.status_code == 206 and fetched.content == image.blobs[layer][10:20]
            assert httpx.get(moved.headers["Location"]).content == image.blobs[layer]
            assert c.head(f"/v2/scale/redirect/blobs/{layer}").status_code == 200
    finally:
        replica.kill()


def test_big_chunks_across_replicas_and_a_replica_killed_mid_part(scaleout: ScaleOut) -> None:
    """PATCHes of 5 MiB or more become parts of one multipart upload in the bucket (the
    upload's run, see store/s3.py): replicas take turns, one dies after sending a part of a
    chunk it never finished, another sends that chunk again, and the blob that comes out
    (a pointer to the completed run) holds exactly the bytes pushed, also by redirect."""
    assert scaleout.s3 is not None
    while len(scaleout.replicas) < 2:
        scaleout.add_replica()
    a, b = scaleout.replicas[:2]
    doomed = scaleout.add_replica()
    mib = 1024 * 1024
    first, second, third = os.urandom(6 * mib), os.urandom(30 * mib), os.urandom(5 * mib + 3)
    data = first + second + third
    with client(a) as ca:
        location = ca.post("/v2/scale/runs/blobs/uploads/").headers["Location"]
        assert ca.patch(location, content=first, headers={
            "Content-Range": f"0-{len(first) - 1}"}).status_code == 202
    # 20 of the 30 MiB of the second chunk reach the doomed replica: a part of 8 MiB goes
    # out to the run's multipart upload, then it is killed before the chunk's record.
    sock = socket.create_connection(("127.0.0.1", doomed.port))
    sock.sendall((f"PATCH {location} HTTP/1.1\r\nHost: {doomed.host}\r\n"
                  f"Content-Length: {len(second)}\r\n"
                  f"Content-Range: {len(first)}-{len(first) + len(second) - 1}\r\n\r\n"
                  ).encode() + second[:20 * mib])
    time.sleep(2)
    doomed.kill()
    sock.close()
    with client(b) as cb, client(a) as ca:
        status = cb.get(location)
        assert status.status_code == 204 and status.headers["Range"] == f"0-{len(first) - 1}"
        offset = len(first)
        for replica, part in ((cb, second), (ca, third)):
            resp = replica.patch(location, content=part, headers={
                "Content-Range": f"{offset}-{offset + len(part) - 1}"})
            assert resp.status_code == 202, resp.text
            offset += len(part)
        done = cb.put(location, params={"digest": sha256(data)})
        assert done.status_code == 201, done.text
        assert hashlib.sha256(ca.get(f"/v2/scale/runs/blobs/{sha256(data)}").content
                              ).hexdigest() == sha256(data).split(":")[1]
    replica = MoorageServer(scaleout.root / "redirecting-runs",
                            env={**scaleout.env(), "MOORAGE_STORAGE_URL":
                                 scaleout.s3.storage_url("moorage", redirect=True)})
    replica.start(timeout=60)
    try:
        with client(replica) as c:
            moved = c.get(f"/v2/scale/runs/blobs/{sha256(data)}")
            assert moved.status_code == 307
            fetched = httpx.get(moved.headers["Location"], timeout=60)
            assert hashlib.sha256(fetched.content).hexdigest() == sha256(data).split(":")[1]
    finally:
        replica.kill()
