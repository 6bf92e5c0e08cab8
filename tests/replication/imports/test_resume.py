"""A kill -9 of the importing Moorage halfway through an import of 190 repositories: after
the restart the durable queue gives the import's job back (its timeout passed), the job goes
on with the stored plan, and what was done before the kill is neither planned nor fetched
again: the bytes fetched after the restart cover only the repositories that were not done.
Slow by nature: the queue waits out the job's lease (10 s here) or its timeout (20 s),
whichever ends first, before it gives the job back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from tests.remote.conftest import Distribution
from tests.replication.imports.conftest import moorage
from tests.replication.imports.helpers import (BULK, Seeded, digests_at, expected, show,
                                               source_auth, start_import, wait_finished)
from tests.replication.rules.helpers import api
from tests.support.server import MoorageServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def crashing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    # a job works for half its timeout, then hands over to the next: 20 s makes several
    # hand-overs, and a job killed with its process comes back once its lease (10 s, renewed
    # every 10/6 s while its worker lives) or its timeout runs out
    server = moorage(tmp_path_factory.mktemp("import-crash"),
                     MOORAGE_REPLICATION_JOB_TIMEOUT="20", MOORAGE_REPLICATION_ATTEMPTS="5",
                     MOORAGE_JOB_LEASE_SECONDS="10")
    yield server
    server.kill()


def _done_items(server: MoorageServer, import_id: int) -> dict[tuple[str, str], dict]:
    items = api(server, "GET", f"/imports/{import_id}/items",
                params={"state": "done", "limit": 10000}).json()
    return {(i["repository"], i["tag"]): i for i in items}


def test_a_killed_import_resumes_without_fetching_again(
        crashing: MoorageServer, distribution: Distribution, seeded: Seeded,
        authority) -> None:  # type: ignore[no-untyped-def]
    bulk = seeded.named("bulk")
    assert len(bulk) == BULK
    # about 200 KiB/s: the import takes about 25 s, so the kill lands in its middle
    job = start_import(crashing, url=distribution.url, namespace="bulk",
                       bandwidth=200 << 10, **source_auth(str(authority.ca_file)))
    deadline = time.monotonic() + 600
    while True:
        found = show(crashing, job["id"])
        if found["repositories_done"] >= 15:
            break
        assert found["status"] in ("pending", "running"), found
        assert time.monotonic() < deadline, found
        time.sleep(0.1)
    crashing.kill()
    crashing.start()

    before = show(crashing, job["id"])
    done_before = _done_items(crashing, job["id"])
    assert 15 <= before["repositories_done"] < BULK, before
    assert before["repositories_total"] == BULK  # the plan outlived the process
    repositories_before = {r for r, tag in done_before if tag == ""}
    not_done = [name for name in bulk if name not in repositories_before]

    after = wait_finished(crashing, job["id"])
    assert after["status"] == "succeeded", after
    assert (after["repositories_done"], after["tags_done"]) == (BULK, BULK)
    assert asyncio.run(digests_at(crashing, bulk)) == expected(bulk)

    # what was done before the kill was not copied again: its items are as they were ...
    done_after = _done_items(crashing, job["id"])
    assert {k: done_after[k] for k in done_before} == done_before
    # ... and the bytes fetched after the restart are at most those of what was not done
    fetched_after = after["bytes"] - before["bytes"]
    assert 0 < fetched_after <= sum(seeded.sizes[n] for n in not_done), (fetched_after, before)
    # in all, every blob was fetched once, but for the one item in flight at the kill
    assert sum(seeded.sizes[n] for n in bulk) - max(seeded.sizes.values()) \
        <= after["bytes"] <= sum(seeded.sizes[n] for n in bulk)
    log = api(crashing, "GET", f"/imports/{job['id']}/log").json()["log"]
    assert "attempt 2" in log and "handing the rest of the plan" in log
