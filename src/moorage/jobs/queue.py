"""The job queue: enqueue, claim atomically, finish, retry with backoff, time out.

A job row is claimed by a single UPDATE that only succeeds while the row is still queued, so two
workers (or two replicas) never run the same job. Per-type concurrency is counted in the same
statement, across every worker sharing the database.

A claim is a lease. The worker that holds a running job renews its `heartbeat_at` every few
seconds from a thread of its own (`renew`, see jobs/worker.py), whatever the handler does; a
job whose lease has not been renewed for `lease_seconds` has lost its owner (the process was
killed, the machine died) and goes back to the queue then, instead of after its whole timeout
(an hour for a replication). Why a lease and not "is the claiming process still alive?" at
start-up: the worker id names a host and a PID, but replicas in containers share host names
and PID numbers, so a PID that is gone here may be a live worker elsewhere, and a check only
at start-up would miss owners that died while this process ran. A lease needs no such
knowledge and covers every process sharing the database. It cannot give a live job a second
runner: the renewing thread runs while its process lives (a live handler that is stuck is the
timeout's business, as before), and should a renewal ever be missed, the attempt whose lease
was taken back can no longer record anything (`_mine` matches the attempt number).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from moorage.db.changes import unobserved
from moorage.db.rawreads import RawReader
from moorage.db.schema import jobs

LOG_LIMIT = 64 << 10  # a job keeps the last 64 KiB of its log
BACKOFF_BASE = 2.0
BACKOFF_CAP = 300.0
# A running job whose owner has not renewed its lease for this long is taken back; owners
# renew every RENEW_SECONDS, so a few missed renewals (a busy database) do not lose it.
LEASE_SECONDS = 30.0
RENEW_SECONDS = 5.0


@dataclass(frozen=True)
class Job:
    id: int
    type: str
    payload: dict[str, Any]
    status: str
    attempts: int
    max_attempts: int
    timeout_seconds: int
    run_at: float
    claimed_by: str | None
    progress: dict[str, Any] | None
    result: dict[str, Any] | None
    last_error: str | None
    log: str
    created_at: float
    finished_at: float | None

    def summary(self) -> dict[str, Any]:
        """The job as the API shows it (the log is fetched on its own)."""
        return {"id": self.id, "type": self.type, "status": self.status,
                "attempts": self.attempts, "max_attempts": self.max_attempts,
                "payload": self.payload, "progress": self.progress, "result": self.result,
                "last_error": self.last_error, "run_at": self.run_at,
                "created_at": self.created_at, "finished_at": self.finished_at,
                "claimed_by": self.claimed_by}


_COLUMNS = (jobs.c.id, jobs.c.type, jobs.c.payload, jobs.c.status, jobs.c.attempts,
            jobs.c.max_attempts, jobs.c.timeout_seconds, jobs.c.run_at, jobs.c.claimed_by,
            jobs.c.progress, jobs.c.result, jobs.c.last_error, jobs.c.log, jobs.c.created_at,
            jobs.c.finished_at)


def _job(row: Any) -> Job:
    return Job(row[0], row[1], json.loads(row[2] or "{}"), row[3], row[4], row[5], row[6],
               row[7], row[8], json.loads(row[9]) if row[9] else None,
               json.loads(row[10]) if row[10] else None, row[11], row[12] or "", row[13], row[14])


def backoff(attempt: int) -> float:
    """Seconds to wait before retry number `attempt` (1-based): 2, 4, 8 … capped at 5 min."""
    return min(BACKOFF_BASE ** attempt, BACKOFF_CAP)


# Which job types have work waiting: one indexed read (ix_jobs_claim) on the driver.
_DUE_TYPES = "SELECT DISTINCT type FROM jobs WHERE status = 'queued' AND run_at <= ?"


class JobQueue:
    def __init__(self, engine: Engine, lease_seconds: float = LEASE_SECONDS) -> None:
        self.engine = engine
        self.reads = RawReader.of(engine)
        self.lease_seconds = lease_seconds

    def enqueue(self, job_type: str, payload: dict[str, Any] | None = None, *,
                run_at: float | None = None, max_attempts: int = 5, timeout_seconds: int = 600,
                dedupe_key: str | None = None, conn: Connection | None = None) -> int | None:
        """Add a job; with a `dedupe_key`, only one unfinished job per key exists (returns None
        if one is already waiting).

        With `conn`, the job is inserted in the caller's transaction, so that it commits (or
        vanishes) together with the rows it works on: a crash can never leave one without
        the other. A `dedupe_key` clash then raises, since the caller owns the transaction.
        """
        now = time.time()
        statement = insert(jobs).values(
            type=job_type, payload=json.dumps(payload or {}), status="queued",
            attempts=0, max_attempts=max_attempts, timeout_seconds=timeout_seconds,
            run_at=run_at or now, dedupe_key=dedupe_key, log="", created_at=now
        ).returning(jobs.c.id)
        if conn is not None:
            return conn.execute(statement).scalar_one()
        try:
            with self.engine.begin() as own:
                return own.execute(statement).scalar_one()
        except IntegrityError:
            return None

    def claim(self, worker_id: str, limits: dict[str, int]) -> Job | None:
        """Claim the oldest due job of a type that is below its concurrency limit."""
        now = time.time()
        # Workers poll every 0.5 s; a write transaction (and its fsync) per job type on every
        # poll would be most of an idle server's work. Claim only where something is due.
        due = {row[0] for row in self.reads.rows(_DUE_TYPES, (now,))}
        for job_type, limit in limits.items():
            if job_type not in due:
                continue
            running = (select(func.count()).select_from(jobs)
                       .where(jobs.c.type == job_type, jobs.c.status == "running")
                       .scalar_subquery())
            candidate = (select(jobs.c.id).where(jobs.c.type == job_type,
                                                 jobs.c.status == "queued", jobs.c.run_at <= now)
                         .order_by(jobs.c.run_at, jobs.c.id).limit(1).scalar_subquery())
            with unobserved(), self.engine.begin() as conn:
                claimed = conn.execute(
                    update(jobs).where(jobs.c.id == candidate, jobs.c.status == "queued",
                                       running < limit)
                    .values(status="running", claimed_by=worker_id, claimed_at=now,
                            heartbeat_at=now, attempts=jobs.c.attempts + 1)
                    .returning(*_COLUMNS)).first()
            if claimed is not None:
                return _job(claimed)
        return None

    @staticmethod
    def _mine(job: Job):  # type: ignore[no-untyped-def]
        """Only the attempt that claimed a job may finish it; a timed-out one lost it."""
        return and_(jobs.c.id == job.id, jobs.c.attempts == job.attempts,
                    jobs.c.status == "running")

    def succeed(self, job: Job, result: dict[str, Any] | None) -> None:
        """Record the outcome. An earlier attempt's error is cleared: the job's error is that
        of its outcome (a succeeded job listed with an error reads as a failure); what went
        wrong on the way stays in the log."""
        with unobserved(), self.engine.begin() as conn:
            conn.execute(update(jobs).where(self._mine(job)).values(
                status="succeeded", result=json.dumps(result) if result is not None else None,
                finished_at=time.time(), dedupe_key=None, last_error=None))

    def fail(self, job: Job, error: str, retry: bool = True) -> str:
        """Record a failure; requeue with backoff while attempts remain. Returns the status."""
        job_id = job.id
        with unobserved(), self.engine.begin() as conn:
            row = conn.execute(select(jobs.c.attempts, jobs.c.max_attempts)
                               .where(self._mine(job))).first()
            if row is None:
                return "gone"
            attempts, max_attempts = row
            if retry and attempts < max_attempts:
                conn.execute(update(jobs).where(jobs.c.id == job_id).values(
                    status="queued", run_at=time.time() + backoff(attempts),
                    last_error=error[:4000], claimed_by=None))
                return "queued"
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(
                status="failed", last_error=error[:4000], finished_at=time.time(),
                dedupe_key=None))
            return "failed"

    def heartbeat(self, job_id: int, progress: dict[str, Any] | None = None,
                  log_lines: list[str] | None = None) -> None:
        values: dict[str, Any] = {"heartbeat_at": time.time()}
        if progress is not None:
            values["progress"] = json.dumps(progress)
        with unobserved(), self.engine.begin() as conn:
            if log_lines:
                current = conn.execute(select(jobs.c.log).where(jobs.c.id == job_id)).scalar() or ""
                values["log"] = (current + "".join(f"{line}\n" for line in log_lines))[-LOG_LIMIT:]
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))

    def renew(self, worker_id: str, job_ids: list[int]) -> None:
        """Renew the lease of the jobs this worker runs (one statement for all of them)."""
        if not job_ids:
            return
        with unobserved(), self.engine.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.id.in_(job_ids),
                                            jobs.c.claimed_by == worker_id,
                                            jobs.c.status == "running")
                         .values(heartbeat_at=time.time()))

    def recover_stale(self, grace_seconds: float = 30.0) -> int:
        """Jobs whose worker is gone (their lease ran out) or that overran their timeout go
        back to the queue (or fail, their attempts spent)."""
        now = time.time()
        leased_until = func.coalesce(jobs.c.heartbeat_at, jobs.c.claimed_at) + self.lease_seconds
        with self.engine.connect() as conn:
            stale = [(_job(r), r[-1] < now) for r in conn.execute(
                select(*_COLUMNS, leased_until).where(
                    jobs.c.status == "running",
                    or_(jobs.c.claimed_at + jobs.c.timeout_seconds + grace_seconds < now,
                        leased_until < now)))]
        for job, lost in stale:
            self.fail(job, f"its worker stopped renewing its lease for {self.lease_seconds:.0f}s "
                      "(the process is gone)" if lost else
                      f"timed out after {job.timeout_seconds}s (worker gone or job overran)")
        return len(stale)

    def get(self, job_id: int) -> Job | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*_COLUMNS).where(jobs.c.id == job_id)).first()
        return _job(row) if row else None

    def list(self, status: str | None = None, job_type: str | None = None,
             limit: int = 100, before_id: int | None = None) -> list[Job]:
        query = select(*_COLUMNS).order_by(jobs.c.id.desc()).limit(limit)
        if status:
            query = query.where(jobs.c.status == status)
        if job_type:
            query = query.where(jobs.c.type == job_type)
        if before_id:
            query = query.where(jobs.c.id < before_id)
        with self.engine.connect() as conn:
            return [_job(r) for r in conn.execute(query)]
