"""Job leases on a real SQLite database: a running job whose owner stopped renewing its lease
goes back to the queue long before its timeout; one whose worker lives keeps it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select, update

from moorage.db.metadata import MetadataStore, open_engine, sqlite_url
from moorage.db.schema import jobs
from moorage.jobs.queue import JobQueue
from moorage.jobs.worker import JobContext, JobType, Worker

HANG = 120.0  # bounds a hang only


@pytest.fixture
def queue(tmp_path: Path) -> JobQueue:
    engine = open_engine(sqlite_url(tmp_path))
    MetadataStore(engine).create_schema()
    return JobQueue(engine, lease_seconds=6)


def _age_lease(queue: JobQueue, job_id: int, seconds: float) -> None:
    """The lease as a dead owner leaves it: last renewed `seconds` ago."""
    with queue.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job_id)
                     .values(heartbeat_at=time.time() - seconds))


def test_a_job_whose_owner_is_gone_is_requeued_before_its_timeout(queue: JobQueue) -> None:
    job_id = queue.enqueue("transfer", timeout_seconds=3600)
    job = queue.claim("dead-worker", {"transfer": 1})
    assert job is not None and job.id == job_id
    assert queue.recover_stale() == 0  # its lease is fresh
    _age_lease(queue, job_id, 7)
    assert queue.recover_stale() == 1
    again = queue.get(job_id)
    assert again is not None and again.status == "queued"
    assert "lease" in (again.last_error or "")
    # the dead owner's attempt can no longer record an outcome
    queue.succeed(job, {"late": True})
    assert queue.get(job_id).status == "queued"  # type: ignore[union-attr]


def test_a_live_worker_keeps_its_job(queue: JobQueue) -> None:
    release = threading.Event()
    started = threading.Event()

    def handler(ctx: JobContext) -> dict[str, bool]:
        started.set()
        release.wait(HANG)  # silent: no log line, no progress
        return {"done": True}

    worker = Worker(queue, types={})
    worker.register(JobType("transfer", handler, timeout_seconds=3600))
    job_id = worker.enqueue("transfer")
    runner = threading.Thread(target=worker.drain)
    runner.start()
    assert started.wait(HANG)
    _age_lease(queue, job_id, 100)
    deadline = time.monotonic() + HANG
    while True:  # the worker's renewing thread brings the lease back
        with queue.engine.connect() as conn:
            beat = conn.execute(select(jobs.c.heartbeat_at).where(jobs.c.id == job_id)).scalar()
        if beat > time.time() - 50:
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert queue.recover_stale() == 0
    release.set()
    runner.join(HANG)
    assert queue.get(job_id).status == "succeeded"  # type: ignore[union-attr]
