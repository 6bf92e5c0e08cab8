"""A graceful stop loses no audit entry of a request that was answered (issue 12, item 2).

Entries are buffered in each worker and written a few hundred milliseconds later; SIGTERM must
still leave in the database the entry of every request a client got an answer to, even when
some of those requests carried values JSON cannot write (which once made every later write,
the one at shutdown included, fail). The stop comes while clients are still sending, with two
granian workers, both as an operator's `kill PID` (the main process only) and as systemd's
default (the whole process group).
"""

from __future__ import annotations

import signal
import subprocess
import threading
from typing import Callable

import httpx
import pytest

from moorage.audit import AuditStore
from moorage.db.metadata import open_engine, sqlite_url
from tests.audit.helpers import entries
from tests.support.server import MoorageServer
from tests.web.helpers import push_image, unique

CLIENTS = 6
ANSWERED_BEFORE_STOP = 120


def _sigterm(server: MoorageServer, whole_group: bool) -> int:
    assert server.proc is not None
    if whole_group:
        return server.stop() or 0
    server.proc.send_signal(signal.SIGTERM)
    try:
        return server.proc.wait(30)
    except subprocess.TimeoutExpired:
        return server.kill() or -9


@pytest.mark.slow
@pytest.mark.parametrize("whole_group", [False, True], ids=["main-process", "process-group"])
def test_sigterm_while_clients_send_keeps_every_answered_requests_entry(
        make_registry: Callable[..., MoorageServer], whole_group: bool) -> None:
    server = make_registry("stop", env={"MOORAGE_AUTH": "off"}, args=["--workers", "2"])
    repo = "team/app"
    push_image(server, repo, "v1", auth=None)  # type: ignore[arg-type]
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    lock = threading.Lock()
    created: list[str] = []
    pulled = 0
    enough = threading.Event()

    def client(n: int) -> None:
        nonlocal pulled
        # Own connections per client, so that both workers serve; no retries: a request
        # counts only when its answer arrived.
        with httpx.Client(base_url=server.url, timeout=10, transport=httpx.HTTPTransport(
                retries=0)) as http:
            i = 0
            while True:
                i += 1
                try:
                    if i % 3 == 0:
                        http.post("/api/v1/namespaces", content=b'{"name":1e999}',
                                  headers={"content-type": "application/json"})
                    elif i % 3 == 1:
                        name = unique(f"stop{n}-")
                        resp = http.post("/api/v1/namespaces", json={"name": name})
                        if resp.status_code == 201:
                            with lock:
                                created.append(name)
                    else:
                        resp = http.get(f"/v2/{repo}/manifests/v1", headers=accept)
                        if resp.status_code == 200:
                            with lock:
                                pulled += 1
                except httpx.HTTPError:
                    return  # the server is going away
                with lock:
                    if len(created) + pulled >= ANSWERED_BEFORE_STOP:
                        enough.set()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    assert enough.wait(120), "the clients never got their answers"
    code = _sigterm(server, whole_group)  # the clients are still sending
    for t in threads:
        t.join()
    assert code == 0, server.log()

    store = AuditStore(open_engine(sqlite_url(server.data_dir)))
    result = store.verify()
    assert result.ok and result.checked == result.last_id, result
    server.start(timeout=120)  # a restart reads the same log (two workers start slowly here)
    found = entries(server, auth=None, action="namespace.create")
    missing = set(created) - {e["target"].removeprefix("namespaces/") for e in found}
    assert not missing, f"{len(missing)} of {len(created)} answered changes were not recorded"
    pulls = entries(server, auth=None, action="pull", repository=repo)
    assert len(pulls) >= pulled, f"{pulled} pulls answered, {len(pulls)} recorded"
