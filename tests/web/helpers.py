"""Calling the management API over real HTTP, and making the accounts and images tests need."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_PASSWORD
from tests.support.server import MoorageServer

ADMIN = ("admin", ADMIN_PASSWORD)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
USER_PASSWORD = "password-of-a-test-user"

# One client for all calls: creating an httpx.Client loads the CA bundle (~70 ms here).
_http = httpx.Client(timeout=30)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def api(server: MoorageServer, method: str, path: str,
        auth: tuple[str, str] | None = ADMIN, **kwargs: Any) -> httpx.Response:
    return _http.request(method, f"{server.url}/api/v1{path}", auth=auth, **kwargs)


def error(resp: httpx.Response) -> tuple[str, str]:
    """(code, message) of an error answer, checking it has the one documented shape."""
    body = resp.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    return body["error"]["code"], body["error"]["message"]


def make_user(server: MoorageServer, prefix: str = "user", admin: bool = False) -> tuple[str, str]:
    username = unique(prefix)
    resp = api(server, "POST", "/users", json={"username": username, "password": USER_PASSWORD,
                                               "is_admin": admin})
    assert resp.status_code == 201, resp.text
    return username, USER_PASSWORD


def make_namespace(server: MoorageServer, auth: tuple[str, str] = ADMIN, prefix: str = "ns",
                   **fields: Any) -> str:
    name = unique(prefix)
    resp = api(server, "POST", "/namespaces", auth=auth, json={"name": name, **fields})
    assert resp.status_code == 201, resp.text
    return name


def grant(server: MoorageServer, namespace: str, username: str, role: str) -> None:
    resp = api(server, "PUT", f"/namespaces/{namespace}/members/{username}", json={"role": role})
    assert resp.status_code == 200, resp.text


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_image(server: MoorageServer, repo: str, tag: str,
               auth: tuple[str, str] = ADMIN) -> str:
    """Push a tiny image through /v2 with Basic credentials; returns the manifest digest."""
    layer = os.urandom(64)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [digest(layer)]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest(layer), "size": len(layer)}],
    }).encode()
    for data in (config, layer):
        resp = _http.post(f"{server.url}/v2/{repo}/blobs/uploads/", auth=auth,
                          params={"digest": digest(data)}, content=data)
        assert resp.status_code == 201, resp.text
    resp = _http.put(f"{server.url}/v2/{repo}/manifests/{tag}", auth=auth, content=manifest,
                     headers={"Content-Type": OCI_MANIFEST})
    assert resp.status_code == 201, resp.text
    return digest(manifest)


def server_log(server: MoorageServer) -> str:
    """The whole log file (MoorageServer.log() keeps only its tail)."""
    return server.log_path.read_text(errors="replace")


# -- raw HTTP and memory, for the request-size tests ---------------------------------------
def process_tree(pid: int) -> list[int]:
    """The process and all its descendants (granian's workers), from /proc."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return found


def reset_peak_memory(pids: list[int]) -> None:
    """Start each process's peak resident size (VmHWM) afresh from its current size."""
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_memory_growth(pids: list[int], before: dict[int, int]) -> int:
    """The largest growth, in bytes, of any one process's peak resident size over `before`
    (its resident size when the peaks were reset)."""
    return max(_status_kib(pid, "VmHWM") - before[pid] for pid in pids) * 1024


def resident_memory(pids: list[int]) -> dict[int, int]:
    return {pid: _status_kib(pid, "VmRSS") for pid in pids}


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes
    body_bytes_sent: int = field(default=0)

    def json(self) -> Any:
        return json.loads(self.body)


def raw_request(server: MoorageServer, head: str, body: Iterator[bytes] = iter(()),
                give_up_after: float = 60.0) -> RawAnswer:
    """Send a request over a plain socket: `head` is the request line and headers; the body
    goes piece by piece only while the server has not answered, as a client that streams
    does. Returns the answer and how many body bytes went out before it came."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=give_up_after)
    try:
        sock.sendall(head.replace("\n", "\r\n").encode("latin-1") + b"\r\n")
        sent = _send_until_answered(sock, body, give_up_after)
        sock.setblocking(True)
        sock.settimeout(give_up_after)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError(f"connection closed before an answer: {data!r}")
            data += chunk
        top, _, rest = data.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return RawAnswer(int(lines[0].split()[1]), headers, rest[:length], sent)
    finally:
        sock.close()


def _send_until_answered(sock: socket.socket, body: Iterator[bytes], give_up_after: float) -> int:
    sock.setblocking(False)
    sent = 0
    for piece in body:
        view = memoryview(piece)
        while view:
            readable, writable, _ = select.select([sock], [sock], [], give_up_after)
            if readable:
                return sent
            if not writable:
                raise AssertionError("the server neither took more of the body nor answered")
            try:
                n = sock.send(view)
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                return sent
            view = view[n:]
            sent += n
    return sent


def chunked(total: int, piece: int = 1 << 20, prefix: bytes = b"") -> Iterator[bytes]:
    """A chunked transfer-encoded body of `total` bytes (a JSON string that never ends)."""
    first = prefix + b"a" * (piece - len(prefix))
    yield b"%x\r\n%s\r\n" % (len(first), first)
    filler = b"%x\r\n%s\r\n" % (piece, b"a" * piece)
    for _ in range(total // piece - 1):
        yield filler
    yield b"0\r\n\r\n"
