"""Property: whatever PATCH, PUT and DELETE requests several clients send to one upload, in
parallel, on several workers or replicas, every committed blob hashes to its name.

Hypothesis draws the rounds: in each, up to four clients send a request to the same upload
at once (a chunk of one of a few payloads, with or without Content-Range; a closing PUT with
the digest of a payload or of two payloads joined, with or without a last chunk; a DELETE; a
status request). Afterwards, every PUT that was answered 201 names a blob that is served with
exactly that digest, every blob file on disk hashes to its name, and a client who pushes each
content a PUT claimed afresh pulls exactly it back. No request is ever answered with a 5xx.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.helpers import sha256, unique_repo
from tests.api.uploadcheck import (Target, assert_every_stored_blob_hashes_to_its_name,
                                   assert_served_as_named, victim_pushes_and_pulls)

pytestmark = pytest.mark.slow

SIZES = (1 << 10, 1536 << 10, 2560 << 10)


@dataclass(frozen=True)
class Patch:
    payload: int
    ranged: bool


@dataclass(frozen=True)
class Put:
    content: tuple[int, ...]  # the payloads whose concatenation's digest is claimed
    last_chunk: int | None    # a payload sent with the PUT itself, or none


@dataclass(frozen=True)
class Delete:
    pass


@dataclass(frozen=True)
class Status:
    pass


requests = st.one_of(
    st.builds(Patch, st.integers(0, 2), st.booleans()),
    st.builds(Patch, st.integers(0, 2), st.booleans()),
    st.builds(Put, st.sampled_from([(0,), (1,), (2,), (0, 1), (1, 0), (0, 2)]),
              st.one_of(st.none(), st.integers(0, 2))),
    st.just(Delete()),
    st.just(Status()),
)
rounds = st.lists(st.lists(requests, min_size=1, max_size=4), min_size=1, max_size=5)


class Session:
    """One example's shared upload, restarted whenever a PUT or DELETE has ended it."""

    def __init__(self, target: Target, seed: int) -> None:
        rng = random.Random(seed)
        self.target = target
        self.payloads = [rng.randbytes(size) for size in SIZES]
        self.repo = unique_repo("prop")
        self.location: str | None = None
        self.committed: set[str] = set()

    def ensure_upload(self) -> None:
        if self.location is None:
            with self.target.client(0) as client:
                r = client.post(f"/v2/{self.repo}/blobs/uploads/")
            assert r.status_code == 202, r.text
            self.location = r.headers["location"]

    @staticmethod
    def _halves(data: bytes, together: threading.Barrier) -> Iterator[bytes]:
        """A body sent in two halves, the second only once every body of the round has sent
        its first: so the server streams them all at the same time. A server that answers
        before reading a body breaks the barrier (after its timeout), which only changes the
        interleaving tried, never the verdict."""
        yield data[:len(data) // 2]
        try:
            together.wait()
        except threading.BrokenBarrierError:
            pass
        yield data[len(data) // 2:]

    def send(self, request: Patch | Put | Delete | Status,
             together: threading.Barrier) -> httpx.Response:
        assert self.location is not None
        with httpx.Client(base_url=self.target.url(), timeout=60.0) as client:
            if isinstance(request, Patch):
                data = self.payloads[request.payload]
                headers = {"Content-Type": "application/octet-stream",
                           "Content-Length": str(len(data))}
                if request.ranged:
                    headers["Content-Range"] = f"0-{len(data) - 1}"
                return client.patch(self.location, content=self._halves(data, together),
                                    headers=headers)
            if isinstance(request, Put):
                digest = sha256(self.content(request))
                body = b"" if request.last_chunk is None else self.payloads[request.last_chunk]
                r = client.put(self.location, params={"digest": digest},
                               content=self._halves(body, together) if body else b"",
                               headers={"Content-Length": str(len(body))})
                if r.status_code == 201:
                    self.committed.add(digest)
                return r
            if isinstance(request, Delete):
                return client.delete(self.location)
            return client.get(self.location)

    def run(self, batch: list[Patch | Put | Delete | Status]) -> None:
        self.ensure_upload()
        bodies = sum(1 for r in batch if isinstance(r, Patch)
                     or (isinstance(r, Put) and r.last_chunk is not None))
        together = threading.Barrier(max(bodies, 1), timeout=5)
        with ThreadPoolExecutor(len(batch)) as pool:
            responses = list(pool.map(lambda r: self.send(r, together), batch))
        for r in responses:
            assert r.status_code < 500, (r.request.method, r.status_code, r.text)
        if any(isinstance(req, (Put, Delete)) and r.status_code in (201, 204)
               for req, r in zip(batch, responses)):
            self.location = None  # ended: the next round starts a new upload

    def content(self, put: Put) -> bytes:
        return b"".join(self.payloads[i] for i in put.content)


def _check(session: Session, plan: list[list[Patch | Put | Delete | Status]]) -> None:
    for digest in session.committed:
        assert_served_as_named(session.target, session.repo, digest)
    assert_every_stored_blob_hashes_to_its_name(session.target)
    claimed = {session.content(r) for batch in plan for r in batch if isinstance(r, Put)}
    for content in claimed:  # what any PUT may have stored under a digest
        victim_pushes_and_pulls(session.target, unique_repo("victim"), content)


@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                   HealthCheck.too_slow])
@given(plan=rounds, seed=st.integers(0, 2**32 - 1))
def test_every_committed_blob_hashes_to_its_name(target: Target,
                                                 plan: list[list[Patch | Put | Delete | Status]],
                                                 seed: int) -> None:
    session = Session(target, seed)
    for batch in plan:
        session.run(batch)
    _check(session, plan)


def test_the_property_check_sees_a_blob_stored_under_another_name(target: Target) -> None:
    """The check itself: a blob file whose bytes do not match its name is reported (so the
    property above cannot pass by looking at nothing)."""
    if target.data_dir is None:
        pytest.skip("blobs are not on a local disk here")
    digest = "sha256:" + hashlib.sha256(b"honest").hexdigest()
    path = target.data_dir / "blobs" / "sha256" / digest[7:9] / digest[7:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"impostor")
    try:
        with pytest.raises(AssertionError, match="holds other bytes"):
            assert_every_stored_blob_hashes_to_its_name(target)
    finally:
        path.unlink()
