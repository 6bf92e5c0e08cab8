"""Redirected blob GETs on replicas that keep presigned URLs until the next commit
(cache/redirects.py): a blob deleted, or deleted and pushed again, on one replica is never
redirected to what it was on the other, on any of its workers."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import OPEN
from tests.support.scaleout import ScaleOut
from tests.support.server import MoorageServer

pytestmark = pytest.mark.skipif("scaleout" not in os.environ.get(
    "MOORAGE_TEST_BACKENDS", "embedded,scaleout"), reason="scale-out backend not selected")

MiB = 1 << 20
ASKED = 6  # requests over fresh connections: each worker of a replica is likely to get some
REPO = "redirects/blobs"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaleOut]:
    """Two replicas of two workers each, redirecting blob GETs, on a deployment of their own
    (the test runs GC with no grace, which would sweep other tests' blobs)."""
    root: Path = tmp_path_factory.mktemp("redirects")
    cluster = ScaleOut(root, env={**OPEN, "MOORAGE_WORKERS": "2"})
    try:
        cluster.start(replicas=0)
        assert cluster.s3 is not None
        cluster.extra_env["MOORAGE_STORAGE_URL"] = cluster.s3.storage_url("moorage",
                                                                          redirect=True)
        cluster.add_replica()
        cluster.add_replica()
        yield cluster
    finally:
        cluster.stop()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _push_blob(replica: MoorageServer, data: bytes) -> None:
    """An upload in 6 MiB PATCHes (a big blob becomes a pointer to a data object of its
    upload's own), or monolithic for a small one."""
    with httpx.Client(base_url=replica.url, timeout=120) as c:
        location = c.post(f"/v2/{REPO}/blobs/uploads/").headers["Location"]
        offset = 0
        while offset < len(data) and len(data) >= 5 * MiB:
            piece = data[offset:offset + 6 * MiB]
            resp = c.patch(location, content=piece, headers={
                "Content-Range": f"{offset}-{offset + len(piece) - 1}"})
            assert resp.status_code == 202, resp.text
            offset += len(piece)
        done = c.put(location, params={"digest": _digest(data)}, content=data[offset:])
        assert done.status_code == 201, done.text


def _gets(replica: MoorageServer, digest: str) -> list[httpx.Response]:
    return [httpx.get(f"{replica.url}/v2/{REPO}/blobs/{digest}", timeout=60)
            for _ in range(ASKED)]


def _gc(replica: MoorageServer) -> None:
    with httpx.Client(base_url=replica.url, timeout=60) as c:
        job = c.post("/api/v1/gc", json={"grace": "0s"})
        assert job.status_code == 202, job.text
        deadline = time.monotonic() + 300  # bounds a hang only
        while time.monotonic() < deadline:
            state = c.get(f"/api/v1/jobs/{job.json()['id']}").json()
            if state["status"] in ("succeeded", "failed"):
                assert state["status"] == "succeeded", state
                return
            time.sleep(0.2)
        raise AssertionError("GC did not finish")


@pytest.mark.parametrize("size", [6 * MiB + 11, 300_000])
def test_a_blob_deleted_and_pushed_again_on_one_replica_is_redirected_right_on_the_other(
        cluster: ScaleOut, size: int) -> None:
    a, b = cluster.replicas[:2]
    data = os.urandom(size)
    digest = _digest(data)
    _push_blob(a, data)
    before = _gets(b, digest)
    assert {r.status_code for r in before} == {307}
    old_urls = {r.headers["Location"] for r in before}
    for url in old_urls:
        assert httpx.get(url, timeout=60).content == data
    # unlinked (an upload no manifest references) and swept on A: never redirected on B
    _gc(a)
    if size >= 5 * MiB:  # the data object the old URLs name is gone
        for url in old_urls:
            assert httpx.get(url, timeout=60).status_code == 404
    gone = _gets(b, digest) + _gets(a, digest)
    assert {r.status_code for r in gone} == {404}, [r.headers.get("Location") for r in gone]
    # the same bytes pushed again by another upload on A: B sends every client to them at once
    _push_blob(a, data)
    after = _gets(b, digest)
    assert {r.status_code for r in after} == {307}
    for url in {r.headers["Location"] for r in after}:
        fetched = httpx.get(url, timeout=60)
        assert fetched.status_code == 200 and fetched.content == data


def _corrupt(cluster: ScaleOut, digest: str, data: bytes) -> None:
    """Replace a small blob's object in the bucket with other bytes of the same length."""
    assert cluster.s3 is not None
    hexpart = digest.split(":")[1]
    client = cluster.s3.client()
    client.put_object(Bucket=cluster.s3.bucket, Key=f"moorage/blobs/sha256/{hexpart[:2]}/{hexpart}",
                      Body=data)


def test_small_blobs_are_answered_with_their_checked_bytes_on_every_worker(
        cluster: ScaleOut) -> None:
    """A blob of at most 64 KiB is answered with its bytes, not a redirect (Range too), from
    memory once read (registry/small_blobs.py); bytes in the bucket that are not the digest's
    are never served; and a blob collected on one replica is unknown on the other, whatever
    its workers keep."""
    a, b = cluster.replicas[:2]
    data = os.urandom(1000)
    digest = _digest(data)
    _push_blob(a, data)
    for replica in (a, b):
        answers = _gets(replica, digest)
        assert {r.status_code for r in answers} == {200}
        assert all(r.content == data and "location" not in r.headers for r in answers)
    ranged = httpx.get(f"{b.url}/v2/{REPO}/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206 and ranged.content == data[10:20]
    assert ranged.headers["content-range"] == "bytes 10-19/1000"
    big = os.urandom(300_000)
    _push_blob(a, big)
    assert {r.status_code for r in _gets(b, _digest(big))} == {307}

    # Stored bytes that are not the digest's: refused on every worker, never sent.
    other = os.urandom(2000)
    _push_blob(a, other)
    _corrupt(cluster, _digest(other), os.urandom(2000))
    refused = _gets(b, _digest(other))
    assert {r.status_code for r in refused} == {404}
    assert all(r.json()["errors"][0]["code"] == "BLOB_UNKNOWN" for r in refused)

    # Collected on A (kept on B's workers): unknown on B; pushed again: served again.
    _gc(a)
    assert {r.status_code for r in _gets(b, digest)} == {404}
    _push_blob(a, data)
    again = _gets(b, digest)
    assert {r.status_code for r in again} == {200} and all(r.content == data for r in again)
