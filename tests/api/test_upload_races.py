"""Uploads raced by several requests on several workers and replicas: a digest always names
its bytes.

Each case sends requests to one upload from two connections at once, which land on either of
two granian workers (`--workers 2`) or on two replicas (PostgreSQL, SeaweedFS, Redis). Whatever
the server answers each request, the rule checked afterwards is the same: every committed blob
hashes to its name, on disk and as served, and a client that pushes genuine bytes afterwards
pulls exactly those bytes back. The rounds repeat so that the interleavings that broke it (two
PATCHes at offset 0; a PATCH still streaming while the closing PUT commits; a DELETE racing
the PUT) occur on every run.
"""

from __future__ import annotations

import random

import httpx

from tests.api.helpers import sha256, start_upload, unique_repo
from tests.api.uploadcheck import (Target, assert_every_stored_blob_hashes_to_its_name,
                                   assert_served_as_named, victim_pushes_and_pulls)
from tests.support.rawhttp import RawRequest, RawResponse

ROUNDS = 6
SIZE = 3 << 20  # several of the server's 1 MiB write batches per chunk


def _bytes(rng: random.Random, size: int = SIZE) -> bytes:
    return rng.randbytes(size)


def _path(location: str, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return location + (("&" if "?" in location else "?") + query if query else "")


def _patch(target: Target, location: str, data: bytes, first: int,
           ranged: bool = True) -> RawRequest:
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))}
    if ranged:
        headers["Content-Range"] = f"0-{len(data) - 1}"
    return RawRequest(target.url(), "PATCH", location, headers, data[:first])


def _no_server_error(*responses: RawResponse | httpx.Response) -> None:
    for r in responses:
        status = r.status if isinstance(r, RawResponse) else r.status_code
        assert status < 500, (status, getattr(r, "body", getattr(r, "text", "")))


def _genuine_bytes_stay_genuine(target: Target, repo: str, genuine: bytes,
                                put_status: int) -> None:
    """After a round: a PUT that claimed the genuine digest stored the genuine bytes, and a
    victim who pushes them later gets them back."""
    if put_status == 201:
        assert_served_as_named(target, repo, sha256(genuine))
    victim_pushes_and_pulls(target, unique_repo("victim"), genuine)


def test_two_patches_at_offset_zero_never_store_garbage_under_the_genuine_digest(
        target: Target) -> None:
    rng = random.Random(1)
    for _ in range(ROUNDS):
        repo = unique_repo("race")
        genuine, garbage = _bytes(rng), _bytes(rng)
        with target.client(0) as client:
            location = start_upload(client, repo)
        ranged = rng.random() < 0.5
        honest = _patch(target, location, genuine, SIZE // 2, ranged)
        hostile = _patch(target, location, garbage, SIZE // 2, ranged)
        honest.send(genuine[SIZE // 2:])
        hostile.send(garbage[SIZE // 2:])
        responses = honest.response(), hostile.response()
        put = RawRequest(target.url(), "PUT", _path(location, digest=sha256(genuine)),
                         {"Content-Length": "0"}).response()
        _no_server_error(*responses, put)
        _genuine_bytes_stay_genuine(target, repo, genuine, put.status)
    assert_every_stored_blob_hashes_to_its_name(target)


def test_a_patch_streaming_while_the_put_commits_never_writes_into_the_blob(
        target: Target) -> None:
    rng = random.Random(2)
    for _ in range(ROUNDS):
        repo = unique_repo("race")
        genuine, garbage = _bytes(rng), _bytes(rng)
        with target.client(0) as client:
            location = start_upload(client, repo)
            r = client.patch(location, content=genuine,
                             headers={"Content-Type": "application/octet-stream"})
            assert r.status_code == 202, r.text
            location = r.headers["location"]
        # A second chunk is opened and trickles in; nothing of it has reached a full batch.
        late = RawRequest(target.url(), "PATCH", location,
                          {"Content-Type": "application/octet-stream",
                           "Content-Length": str(len(garbage))}, garbage[:64 << 10])
        closing = RawRequest(target.url(), "PUT", _path(location, digest=sha256(genuine)),
                             {"Content-Length": "0"})
        # Give the PUT its chance to commit while the PATCH is still open (a fixed server may
        # instead hold the PUT until the PATCH is done: either way the wait only decides
        # which interleaving this round tries, never the verdict).
        closing.answered(0.5)
        late.send(garbage[64 << 10:])
        responses = late.response(), closing.response()
        _no_server_error(*responses)
        _genuine_bytes_stay_genuine(target, repo, genuine, responses[1].status)
    assert_every_stored_blob_hashes_to_its_name(target)


def test_a_delete_racing_the_closing_put_is_never_a_server_error(target: Target) -> None:
    rng = random.Random(3)
    for _ in range(ROUNDS * 2):
        repo = unique_repo("race")
        data = _bytes(rng, 256 << 10)
        with target.client(0) as client:
            location = start_upload(client, repo)
            r = client.patch(location, content=data)
            assert r.status_code == 202, r.text
            location = r.headers["location"]
        put = RawRequest(target.url(), "PUT", _path(location, digest=sha256(data)),
                         {"Content-Length": "0"})
        delete = RawRequest(target.url(), "DELETE", location, {"Content-Length": "0"})
        put_response, delete_response = put.response(), delete.response()
        _no_server_error(put_response, delete_response)
        assert put_response.status in (201, 404), put_response.body
        assert delete_response.status in (204, 404), delete_response.body
        assert not (put_response.status == 201 and delete_response.status == 204), \
            "an upload was both committed and cancelled"
        if put_response.status == 201:
            assert_served_as_named(target, repo, sha256(data))
    assert_every_stored_blob_hashes_to_its_name(target)
