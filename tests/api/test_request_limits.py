"""Limits on what one client can hold open: upload sessions, and request bodies that stall.

Each upload session is a staged file and a row until it finishes or expires (a day by
default), so one client could pile up thousands of idle ones; `max_open_uploads` caps them
per account, or per address for anonymous requests, counted in the database so that every
worker sees the same count. A body that stops arriving is answered 408 after
`body_read_timeout_seconds` instead of holding its connection (and an upload's lock) forever.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.api.helpers import assert_error, start_upload, unique_repo, upload_range_end
from tests.conftest import ADMIN_PASSWORD, OPEN
from tests.support.rawhttp import RawRequest
from tests.support.server import MoorageServer
from tests.web.helpers import grant, make_namespace, make_user

ADMIN = ("admin", ADMIN_PASSWORD)


def test_open_uploads_are_capped_per_address_on_an_open_instance(
        make_registry: Callable[..., MoorageServer]) -> None:
    server = make_registry(env={**OPEN, "MOORAGE_MAX_OPEN_UPLOADS": "5"},
                           args=["--workers", "2"])
    repo = unique_repo()
    with httpx.Client(base_url=server.url) as client:
        locations = [start_upload(client, repo) for _ in range(5)]
        for _ in range(3):  # on either worker
            r = client.post(f"/v2/{repo}/blobs/uploads/")
            assert_error(r, 429, "TOOMANYREQUESTS")
            assert "max_open_uploads" in r.text
        assert client.delete(locations[0]).status_code == 204
        start_upload(client, repo)  # a finished or cancelled one makes room
        assert client.post(f"/v2/{repo}/blobs/uploads/").status_code == 429


def test_open_uploads_are_capped_per_account(make_registry: Callable[..., MoorageServer]) -> None:
    server = make_registry(env={"MOORAGE_MAX_OPEN_UPLOADS": "3"}, args=["--workers", "2"])
    namespace = make_namespace(server)
    alice, bob = make_user(server, "alice"), make_user(server, "bob")
    for user in (alice, bob):
        grant(server, namespace, user[0], "developer")
    repo = f"{namespace}/app"
    with httpx.Client(base_url=server.url, auth=alice) as client:
        for _ in range(3):
            start_upload(client, repo)
        assert_error(client.post(f"/v2/{repo}/blobs/uploads/"), 429, "TOOMANYREQUESTS")
    with httpx.Client(base_url=server.url, auth=bob) as client:
        start_upload(client, repo)  # another account has its own allowance


@pytest.fixture
def impatient(make_registry: Callable[..., MoorageServer]) -> MoorageServer:
    return make_registry(env={**OPEN, "MOORAGE_BODY_READ_TIMEOUT_SECONDS": "1"},
                         args=["--workers", "2"])


def test_a_chunk_whose_body_stalls_is_answered_408_and_leaves_nothing(
        impatient: MoorageServer) -> None:
    repo = unique_repo()
    with httpx.Client(base_url=impatient.url) as client:
        location = start_upload(client, repo)
        stalled = RawRequest(impatient.url, "PATCH", location,
                             {"Content-Type": "application/octet-stream",
                              "Content-Length": "100000"}, b"x" * 1000)
        r = stalled.response()  # nothing more is sent: the server must give up by itself
        assert r.status == 408, r.body
        assert b"SIZE_INVALID" in r.body
        assert upload_range_end(client, location) == 0
        # the upload is usable again at once: the stalled request let go of its lock
        r2 = client.patch(location, content=b"y" * 5000)
        assert r2.status_code == 202, r2.text


def test_a_management_request_whose_body_stalls_is_answered_408(
        impatient: MoorageServer) -> None:
    stalled = RawRequest(impatient.url, "POST", "/api/v1/namespaces",
                         {"Content-Type": "application/json", "Content-Length": "500"},
                         b'{"name": "sl')
    r = stalled.response()
    assert r.status == 408, r.body
    assert r.headers.get("content-type", "").startswith("application/json")
    with httpx.Client(base_url=impatient.url) as client:
        assert client.get("/api/v1/namespaces/sl").status_code == 404
