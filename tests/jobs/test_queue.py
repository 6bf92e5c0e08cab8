"""The durable job queue on a real SQLite database: claims, limits, retries, schedules."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import update

from moorage.db.metadata import MetadataStore, open_engine, sqlite_url
from moorage.db.schema import jobs
from moorage.jobs.queue import JobQueue, backoff
from moorage.jobs.scheduler import Scheduler
from moorage.jobs.worker import JobContext, JobType, Worker


@pytest.fixture
def queue(tmp_path: Path) -> JobQueue:
    engine = open_engine(sqlite_url(tmp_path))
    MetadataStore(engine).create_schema()
    return JobQueue(engine)


def test_each_job_is_claimed_once_under_contention(queue: JobQueue) -> None:
    for n in range(40):
        queue.enqueue("work", {"n": n})
    claimed: list[int] = []
    lock = threading.Lock()

    def grab(worker: str) -> None:
        while (job := queue.claim(worker, {"work": 100})) is not None:
            with lock:
                claimed.append(job.payload["n"])

    threads = [threading.Thread(target=grab, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == list(range(40))


def test_concurrency_limit_is_global_per_type(queue: JobQueue) -> None:
    for _ in range(3):
        queue.enqueue("scan")
    queue.enqueue("webhook")
    first = queue.claim("a", {"scan": 1})
    assert first is not None and first.type == "scan"
    assert queue.claim("b", {"scan": 1}) is None, "a second scan may not run beside the first"
    other = queue.claim("b", {"scan": 1, "webhook": 1})
    assert other is not None and other.type == "webhook", "a slow scan never starves webhooks"
    queue.succeed(first, {"ok": True})
    assert queue.claim("b", {"scan": 1}) is not None


def test_failures_retry_with_backoff_then_fail(queue: JobQueue) -> None:
    job_id = queue.enqueue("flaky", max_attempts=2)
    job = queue.claim("w", {"flaky": 1})
    assert job is not None and job.attempts == 1
    assert queue.fail(job, "boom") == "queued"
    waiting = queue.get(job_id)
    assert waiting is not None and waiting.run_at >= time.time() + backoff(1) - 1
    assert queue.claim("w", {"flaky": 1}) is None, "not before its backoff has passed"
    with queue.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(run_at=0))
    again = queue.claim("w", {"flaky": 1})
    assert again is not None and again.attempts == 2
    assert queue.fail(again, "boom again") == "failed"
    final = queue.get(job_id)
    assert final is not None and final.status == "failed" and final.last_error == "boom again"


def test_timed_out_job_is_recovered_and_late_finish_ignored(queue: JobQueue) -> None:
    job_id = queue.enqueue("slow", timeout_seconds=1, max_attempts=3)
    job = queue.claim("w", {"slow": 1})
    assert job is not None
    with queue.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(claimed_at=time.time() - 100))
    assert queue.recover_stale(grace_seconds=0) == 1
    assert queue.get(job_id).status == "queued"  # type: ignore[union-attr]
    queue.succeed(job, {"late": True})  # the lost attempt finishing late changes nothing
    assert queue.get(job_id).status == "queued"  # type: ignore[union-attr]


def test_dedupe_key_keeps_one_waiting_job(queue: JobQueue) -> None:
    assert queue.enqueue("gc", dedupe_key="gc") is not None
    assert queue.enqueue("gc", dedupe_key="gc") is None
    job = queue.claim("w", {"gc": 1})
    assert job is not None
    queue.succeed(job, None)
    assert queue.enqueue("gc", dedupe_key="gc") is not None, "a finished job frees its key"


def test_worker_runs_handlers_and_records_progress_and_log(queue: JobQueue) -> None:
    def handler(ctx: JobContext) -> dict[str, int]:
        for n in range(3):
            ctx.progress(n + 1, 3, "counting")
            ctx.log(f"step {n}")
        return {"counted": 3}

    worker = Worker(queue)
    worker.register(JobType("count", handler))
    job_id = worker.enqueue("count")
    assert worker.drain() == 1
    job = queue.get(job_id)  # type: ignore[arg-type]
    assert job is not None and job.status == "succeeded" and job.result == {"counted": 3}
    assert job.progress == {"done": 3, "total": 3, "message": "counting"}
    assert "step 2" in job.log and "finished" in job.log


def test_schedule_fires_once_across_replicas(queue: JobQueue) -> None:
    one, two = Scheduler(queue.engine), Scheduler(queue.engine)
    one.upsert("nightly-gc", "0 3 * * *", "gc", {"dry_run": False})
    schedule = one.get("nightly-gc")
    assert schedule is not None
    due = schedule.next_run_at + 1
    fired = one.tick(queue.enqueue, now=due) + two.tick(queue.enqueue, now=due)
    assert len(fired) == 1
    job = queue.get(fired[0])
    assert job is not None and job.type == "gc" and job.payload["schedule"] == "nightly-gc"
    with pytest.raises(ValueError, match="invalid cron"):
        one.upsert("bad", "every day", "gc")


def test_a_job_that_succeeds_on_a_retry_shows_no_error(queue: JobQueue) -> None:
    """`jobs list` showed a succeeded job with the error of its failed first attempt; the
    error of an attempt belongs in the log, the job's error is that of its outcome."""
    calls: list[int] = []

    def handler(ctx: JobContext) -> dict[str, int]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the first attempt fails")
        return {"attempts": len(calls)}

    worker = Worker(queue)
    worker.register(JobType("flaky", handler, max_attempts=3))
    job_id = worker.enqueue("flaky")
    assert job_id is not None
    assert worker.drain() == 1
    failed_once = queue.get(job_id)
    assert failed_once is not None and failed_once.status == "queued"
    assert "first attempt fails" in (failed_once.last_error or "")
    with queue.engine.begin() as conn:  # its backoff, passed
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(run_at=0))
    assert worker.drain() == 1
    done = queue.get(job_id)
    assert done is not None and done.status == "succeeded" and done.result == {"attempts": 2}
    assert done.last_error is None
    assert "first attempt fails" in done.log, "what went wrong stays in the log"
