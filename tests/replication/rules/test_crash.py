"""A kill -9 of the replicating server in the middle of a 256 MiB layer: after the restart the
durable queue gives the execution's job back once its lease runs out (the killed worker no
longer renews it: `job_lease_seconds`, 10 s here (30 s by default), well before the job's
60 s timeout), the copy
resumes the upload where the destination says it stopped, completes, and the layer reads back
with its digest."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from moorage.remote import FileSource
from tests.remote.helpers import PatternSource, digest_read_back
from tests.replication.rules.conftest import moorage
from tests.replication.rules.helpers import (ADMIN, api, client_for, create_rule,
                                             manifest_digest, push_image, run)
from tests.support.server import MoorageServer

MiB = 1 << 20
SIZE = 256 * MiB

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def replicator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    server = moorage(tmp_path_factory.mktemp("repl-crash"),
                     MOORAGE_REPLICATION_JOB_TIMEOUT="60", MOORAGE_REPLICATION_ATTEMPTS="3",
                     # the wait after the kill; renewed every 10/6 s while the worker lives
                     MOORAGE_JOB_LEASE_SECONDS="10")
    yield server
    server.kill()


def test_a_killed_transfer_resumes_and_completes(replicator: MoorageServer,
                                                 peer: MoorageServer,
                                                 tmp_path_factory: pytest.TempPathFactory
                                                 ) -> None:
    layer = PatternSource(SIZE, seed=256)
    folder = tmp_path_factory.mktemp("repl-crash-layer")
    path = folder / "layer"
    with path.open("wb") as handle:
        for piece in layer._pieces(0):
            handle.write(piece)

    async def seed() -> str:
        async with client_for(replicator, *ADMIN) as client:
            await client.push_blob("big/app", layer.digest, FileSource(path))
            small = b"placeholder"
            image = await push_image(client, "big/app", "amd64", small)
            # the image whose layer is the big blob, by hand
            import json

            from moorage.oci import mediatypes as mt
            manifest = await client.get_manifest("big/app", image["digest"])
            doc = json.loads(manifest.data)
            doc["layers"] = [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                              "digest": layer.digest, "size": SIZE}]
            data = json.dumps(doc).encode()
            return await client.put_manifest("big/app", "big", data, mt.OCI_MANIFEST)
    pushed = run(seed())
    path.unlink()
    # 16 MiB/s: the transfer takes about 16 s, so the kill lands in its middle
    create_rule(replicator, name="crash", mode="push", url=peer.url, username=ADMIN[0],
                password=ADMIN[1], repositories="big/app", tags="big", on_event=False,
                bandwidth=16 * MiB)
    execution_id = api(replicator, "POST", "/replication/rules/crash/run").json()["id"]
    deadline = time.monotonic() + 300
    while True:
        execution = api(replicator, "GET", f"/replication/executions/{execution_id}").json()
        if execution["bytes"] >= 80 * MiB:
            break
        assert execution["status"] in ("pending", "running"), execution
        assert time.monotonic() < deadline, execution
        time.sleep(0.2)
    assert execution["bytes"] < SIZE
    replicator.kill()
    replicator.start()

    deadline = time.monotonic() + 600  # bounds a hang only (the lease runs out after 10 s)
    while True:
        execution = api(replicator, "GET", f"/replication/executions/{execution_id}").json()
        if execution["status"] in ("succeeded", "failed"):
            break
        assert time.monotonic() < deadline, execution
        time.sleep(0.2)
    assert execution["status"] == "succeeded", execution
    # the attempt after the restart sent only what the destination did not hold yet: the
    # upload goes in 32 MiB PATCHes, of which at least two had landed at 80 MiB read
    assert 0 < execution["bytes"] <= SIZE - 32 * MiB, execution
    assert (SIZE - execution["bytes"]) % (32 * MiB) == 0, execution
    log = api(replicator, "GET", f"/replication/executions/{execution_id}/log").json()["log"]
    assert "attempt 2" in log

    async def check() -> None:
        async with client_for(peer, *ADMIN) as client:
            assert await manifest_digest(client, "big/app", "big") == pushed
            assert await digest_read_back(client, "big/app", layer.digest, SIZE) == layer.digest
    run(check())
