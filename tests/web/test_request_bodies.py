"""Request bodies on /api/v1: the caller is known before a byte of the body is read, and no
body, however it is sent, is held in memory beyond the limit (1 MiB).

Memory is measured, not timed: each server process's peak resident size (VmHWM, reset
through /proc/PID/clear_refs) must not grow by anything near the size of what was sent.
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.support.secured import Secured
from tests.support.server import MoorageServer
from tests.web.helpers import (ADMIN, USER_PASSWORD, api, chunked, error, make_namespace,
                               make_user, peak_memory_growth, process_tree, raw_request,
                               reset_peak_memory, resident_memory)


@pytest.fixture
def server(secured: Secured) -> MoorageServer:
    """A secured instance on each backend (tests.support.secured)."""
    return secured.server


LIMIT = 1 << 20
HUGE = 256 << 20  # what an attacker streams: far more than any body the API takes
GROWTH = 32 << 20  # a server that buffered HUGE would grow by at least HUGE


def _head(method: str, path: str, *lines: str) -> str:
    return "\n".join([f"{method} /api/v1{path} HTTP/1.1", "Host: moorage",
                      "Content-Type: application/json", *lines, ""])


def _basic(username: str, password: str) -> str:
    return "Authorization: Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _measure(server: MoorageServer) -> tuple[list[int], dict[int, int]]:
    pids = process_tree(server.proc.pid)  # type: ignore[union-attr]
    reset_peak_memory(pids)
    return pids, resident_memory(pids)


@pytest.mark.slow
@pytest.mark.parametrize("credentials", ["", _basic("admin", "wrong-password"),
                                         "Authorization: Bearer mrg_p_0123456789abcdef_no"],
                         ids=["anonymous", "wrong-password", "bad-token"])
def test_bodies_of_unknown_callers_are_refused_unread(server: MoorageServer,
                                                       credentials: str) -> None:
    # warm up the route, so that what is measured is the request, not first-use imports
    assert api(server, "POST", "/namespaces", auth=None, json={"name": "x"}).status_code == 401
    pids, before = _measure(server)
    answer = raw_request(server, _head("POST", "/namespaces", "Transfer-Encoding: chunked",
                                        *([credentials] if credentials else [])),
                         chunked(HUGE, prefix=b'{"name": "'))
    assert answer.status == 401, answer
    assert answer.headers["www-authenticate"] == 'Basic realm="moorage"'
    assert set(answer.json()) == {"error"} and answer.json()["error"]["code"] == "UNAUTHORIZED"
    assert answer.body_bytes_sent < HUGE  # answered while the client was still sending
    assert peak_memory_growth(pids, before) < GROWTH


@pytest.mark.slow
def test_streamed_bodies_stop_at_the_limit(server: MoorageServer) -> None:
    namespace = make_namespace(server)
    pids, before = _measure(server)
    answer = raw_request(server, _head("PATCH", f"/namespaces/{namespace}", _basic(*ADMIN),
                                        "Transfer-Encoding: chunked"),
                         chunked(HUGE, prefix=b'{"description": "'))
    assert answer.status == 413, answer
    assert answer.json()["error"]["code"] == "TOO_LARGE"
    assert str(LIMIT) in answer.json()["error"]["message"]
    assert answer.body_bytes_sent < HUGE
    assert peak_memory_growth(pids, before) < GROWTH
    assert api(server, "GET", f"/namespaces/{namespace}").json()["description"] == ""


@pytest.mark.parametrize("credentials", ["", _basic(*ADMIN)], ids=["anonymous", "admin"])
def test_a_declared_length_over_the_limit_is_refused_before_the_body(
        server: MoorageServer, credentials: str) -> None:
    """10 GiB announced, nothing sent: the answer comes without waiting for the body."""
    answer = raw_request(server, _head("POST", "/namespaces", "Content-Length: 10737418240",
                                        *([credentials] if credentials else [])),
                         give_up_after=30)
    assert answer.status == 413, answer
    assert answer.json()["error"]["code"] == "TOO_LARGE"


def test_bodies_up_to_the_limit_are_taken(server: MoorageServer) -> None:
    namespace = make_namespace(server)
    frame = json.dumps({"description": ""}).encode()
    exact = json.dumps({"description": "d" * (LIMIT - len(frame))})
    assert len(exact) == LIMIT
    taken = api(server, "PATCH", f"/namespaces/{namespace}", content=exact,
                headers={"Content-Type": "application/json"})
    assert taken.status_code == 200, taken.text[:200]
    assert len(taken.json()["description"]) == LIMIT - len(frame)

    # One byte more is refused, with a length or streamed without one. (Over a plain socket:
    # the answer comes before the body is all sent, which some clients take for an error.)
    over = json.dumps({"description": "e" * (LIMIT - len(frame) + 1)}).encode()
    path = f"/namespaces/{namespace}"
    declared = raw_request(server, _head("PATCH", path, _basic(*ADMIN),
                                          f"Content-Length: {len(over)}"), iter([over]))
    streamed = raw_request(server, _head("PATCH", path, _basic(*ADMIN),
                                          "Transfer-Encoding: chunked"),
                           iter([b"%x\r\n%s\r\n0\r\n\r\n" % (len(over), over)]))
    for answer in (declared, streamed):
        assert answer.status == 413, answer
        assert answer.json()["error"]["code"] == "TOO_LARGE"
    description = api(server, "GET", f"/namespaces/{namespace}").json()["description"]
    assert description == "d" * (LIMIT - len(frame))


def test_a_user_without_the_right_still_gets_a_refusal_not_a_read(
        server: MoorageServer) -> None:
    """Known callers are authorized by the endpoint as before (403), bodies within limit."""
    username, password = make_user(server, "limits")
    denied = api(server, "POST", "/users", auth=(username, password),
                 json={"username": "nobody-here", "password": USER_PASSWORD})
    assert denied.status_code == 403 and error(denied)[0] == "DENIED"
