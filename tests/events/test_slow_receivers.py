"""Webhook receivers that never finish answering do not stall the registry.

A delivery job holds its thread until its receiver answers. Jobs used to run on the event
loop's default executor, which is also where requests do their blocking work (upload chunks,
commits, database calls): with the default of one worker process, eight deliveries to a
receiver that hangs took every one of its threads, and pushes waited behind them.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from tests.events.helpers import create_hook, wait_deliveries
from tests.support.server import MoorageServer
from tests.web.helpers import make_namespace, push_image

HOOKS = 8  # the webhook job type's concurrency (events/service.py): all run at once


class HoldingReceiver:
    """Accepts webhook POSTs and keeps each one waiting for its answer until `released` is
    set, then answers 200. Meanwhile it sends the status line and then a header's value one
    byte a second, so that no read timeout of the client ends the wait. Counts the requests
    it holds open at this moment."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.released = threading.Event()
        self._lock = threading.Lock()
        self._holding = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def holding(self) -> int:
        with self._lock:
            return self._holding

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(120)
            request = b""
            while not self._whole(request):
                data = conn.recv(65536)
                if not data:
                    return
                request += data
            with self._lock:
                self._holding += 1
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Held: ")
                for _ in range(600):  # at most ten minutes
                    if self.released.wait(1.0):
                        break
                    conn.sendall(b"x")
                conn.sendall(b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            except OSError:
                pass
            finally:
                with self._lock:
                    self._holding -= 1

    @staticmethod
    def _whole(request: bytes) -> bool:
        """The head and as many bytes of body as its Content-Length says."""
        head, found, body = request.partition(b"\r\n\r\n")
        if not found:
            return False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                return len(body) >= int(value)
        return True

    def wait_holding(self, count: int, timeout: float = 120.0) -> None:
        """Until `count` requests are held at once (the timeout bounds a hang)."""
        stopped = threading.Event()
        for _ in range(int(timeout * 10)):
            if self.holding >= count:
                return
            stopped.wait(0.1)
        raise AssertionError(f"{self.holding} of {count} deliveries held at once")

    def close(self) -> None:
        self.released.set()
        self._closed = True
        self._listener.close()


@pytest.fixture
def holding() -> Iterator[HoldingReceiver]:
    receiver = HoldingReceiver()
    yield receiver
    receiver.close()


def test_pushes_go_on_while_every_delivery_waits_for_its_receiver(
        make_registry: Callable[..., MoorageServer], holding: HoldingReceiver) -> None:
    server = make_registry(args=["--workers", "1"])
    namespace = make_namespace(server)
    hooks = [create_hook(server, holding.url, ["push"], namespace=namespace)
             for _ in range(HOOKS)]
    push_image(server, f"{namespace}/first", "v1")
    # Every delivery of that push is running, each on a thread, none answered yet.
    holding.wait_holding(HOOKS)

    # Blob uploads and a manifest push, each doing blocking work off the event loop, while
    # all eight deliveries still wait: they finish without waiting for any of them.
    push_image(server, f"{namespace}/second", "v1")
    push_image(server, f"{namespace}/second", "v2")
    assert holding.holding == HOOKS, "a delivery ended before the pushes did"

    holding.released.set()
    for hook in hooks:  # the held deliveries and the later pushes' all arrive in the end
        wait_deliveries(server, hook["id"], 3)
