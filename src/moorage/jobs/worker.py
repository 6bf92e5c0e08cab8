"""Workers: claim jobs, run their handlers in threads, report progress, retry on failure.

A worker runs inside `moorage serve` (one per process) or alone under `moorage worker`.
Handlers are plain functions taking a JobContext; they report progress and log lines that a
user can read while the job runs and after it ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from moorage.jobs.queue import RENEW_SECONDS, Job, JobQueue
from moorage.jobs.scheduler import Scheduler

log = logging.getLogger("moorage.jobs")

# The most threads one process runs jobs on (the sum of the registered types' concurrency,
# capped): enough for every job the per-type limits let this process claim at once.
MAX_JOB_THREADS = 64


class JobCancelled(Exception):
    """Raised inside a handler that checks `ctx.check()` after its job timed out."""


class JobFailed(Exception):
    """A failure the handler expected and described (a receiver that answered 503, an
    upstream that is down): retried like any other, logged in one line without a traceback,
    which is kept for the surprises."""


class JobContext:
    """What a running handler sees: its payload, and ways to say how far it has come."""

    def __init__(self, queue: JobQueue, job: Job) -> None:
        self.queue = queue
        self.job = job
        self.payload = job.payload
        self._lines: list[str] = []
        self._progress: dict[str, Any] | None = None
        self._last_flush = 0.0
        self._deadline = time.time() + job.timeout_seconds
        self._lock = threading.Lock()

    def log(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {message}"
        with self._lock:
            self._lines.append(line)
        log.info("job %d (%s): %s", self.job.id, self.job.type, message)
        self._maybe_flush()

    def progress(self, done: int, total: int | None = None, message: str = "") -> None:
        with self._lock:
            self._progress = {"done": done, "total": total, "message": message}
        self._maybe_flush()

    def check(self) -> None:
        """Long handlers call this between steps; it stops them once their time is up."""
        if time.time() > self._deadline:
            raise JobCancelled(f"job exceeded its timeout of {self.job.timeout_seconds}s")

    def _maybe_flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_flush < 1.0:
            return
        with self._lock:
            lines, self._lines = self._lines, []
            progress = self._progress
        self._last_flush = now
        self.queue.heartbeat(self.job.id, progress, lines)

    def flush(self) -> None:
        self._maybe_flush(force=True)


Handler = Callable[[JobContext], dict[str, Any] | None]


@dataclass
class JobType:
    name: str
    handler: Handler
    concurrency: int = 1
    timeout_seconds: int = 600
    max_attempts: int = 5


@dataclass
class Worker:
    queue: JobQueue
    scheduler: Scheduler | None = None
    types: dict[str, JobType] = field(default_factory=dict)
    poll_seconds: float = 0.5
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:"
                                                   f"{uuid.uuid4().hex[:6]}")
    # Told when a run ends: (job type, its status after the run, seconds it took), the
    # status being "succeeded", "queued" (to be retried), "failed" or "gone". Hooks for
    # metrics; they must be cheap and never raise.
    observers: list[Callable[[str, str, float], None]] = field(default_factory=list)
    _wake: asyncio.Event | None = None
    _running: dict[str, int] = field(default_factory=dict)
    # the jobs this process runs now, whose leases the renewing thread keeps (jobs/queue.py)
    _held: set[int] = field(default_factory=set)
    _held_lock: threading.Lock = field(default_factory=threading.Lock)
    _renewer: threading.Thread | None = None
    _executor: ThreadPoolExecutor | None = None

    def register(self, job_type: JobType) -> None:
        self.types[job_type.name] = job_type

    def enqueue(self, job_type: str, payload: dict[str, Any] | None = None, **kwargs: Any) -> int | None:
        """Enqueue with the type's defaults, and wake this process's worker at once."""
        spec = self.types.get(job_type)
        if spec is not None:
            kwargs.setdefault("timeout_seconds", spec.timeout_seconds)
            kwargs.setdefault("max_attempts", spec.max_attempts)
        job_id = self.queue.enqueue(job_type, payload, **kwargs)
        self.wake()
        return job_id

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def run_one(self, job: Job) -> str:
        """Run a claimed job to its end in this thread; returns its new status."""
        started = time.monotonic()
        self._hold(job.id)
        try:
            status = self._run_one(job)
        finally:
            with self._held_lock:
                self._held.discard(job.id)
        for observe in self.observers:
            observe(job.type, status, time.monotonic() - started)
        return status

    def _hold(self, job_id: int) -> None:
        """Keep the job's lease while it runs: one daemon thread per process renews every
        held job, independent of the handlers and of the event loop (a handler busy in a
        long read, or a loop blocked for a while, must not lose its job to another worker)."""
        with self._held_lock:
            self._held.add(job_id)
            if self._renewer is None or not self._renewer.is_alive():
                self._renewer = threading.Thread(target=self._renew_leases, daemon=True,
                                                 name="moorage-job-leases")
                self._renewer.start()

    def _renew_leases(self) -> None:
        interval = min(RENEW_SECONDS, self.queue.lease_seconds / 6)
        while True:
            time.sleep(interval)
            with self._held_lock:
                held = sorted(self._held)
            if not held:
                continue
            try:
                self.queue.renew(self.worker_id, held)
            except Exception:  # a busy or unreachable database: the next renewal tries again
                log.warning("could not renew the lease of job(s) %s", held, exc_info=True)

    def _run_one(self, job: Job) -> str:
        spec = self.types.get(job.type)
        if spec is None:
            return self.queue.fail(job, f"no handler for job type {job.type!r}", retry=False)
        ctx = JobContext(self.queue, job)
        ctx.log(f"started (attempt {job.attempts} of {job.max_attempts})")
        try:
            result = spec.handler(ctx)
        except JobCancelled as exc:
            ctx.log(str(exc))
            ctx.flush()
            return self.queue.fail(job, str(exc))
        except Exception as exc:  # a failed job is retried; the worker goes on
            if isinstance(exc, JobFailed):
                log.warning("job %d (%s) failed: %s", job.id, job.type, exc)
            else:
                log.exception("job %d (%s) failed", job.id, job.type)
            ctx.log(f"failed: {type(exc).__name__}: {exc}")
            ctx.flush()
            return self.queue.fail(job, f"{type(exc).__name__}: {exc}")
        ctx.log("finished")
        ctx.flush()
        self.queue.succeed(job, result)
        return "succeeded"

    def _limits(self) -> dict[str, int]:
        """Types this process may claim now: global limits are enforced in the claim itself."""
        return {name: spec.concurrency for name, spec in self.types.items()
                if self._running.get(name, 0) < spec.concurrency}

    def drain(self, max_jobs: int = 1000) -> int:
        """Run due jobs synchronously until none is left (for `moorage worker --once`, tests)."""
        done = 0
        while done < max_jobs:
            job = self.queue.claim(self.worker_id, self._limits())
            if job is None:
                return done
            self.run_one(job)
            done += 1
        return done

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Claim and run jobs until `stop` is set; each job runs in a thread."""
        self._wake = asyncio.Event()
        tasks: set[asyncio.Task[str]] = set()
        last_maintenance = 0.0
        while stop is None or not stop.is_set():
            try:
                now = time.monotonic()
                if now - last_maintenance > 5.0:
                    last_maintenance = now
                    await asyncio.to_thread(self._maintain)
                while True:
                    job = await asyncio.to_thread(self.queue.claim, self.worker_id, self._limits())
                    if job is None:
                        break
                    self._running[job.type] = self._running.get(job.type, 0) + 1
                    task = asyncio.create_task(self._run_in_thread(job))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            except Exception:
                log.exception("job worker loop error")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            except asyncio.TimeoutError:
                pass
        for task in tasks:
            task.cancel()
        if self._executor is not None:  # running jobs end on their own; no new one starts
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _job_threads(self) -> ThreadPoolExecutor:
        """Jobs run on threads of their own, never on the event loop's default executor.

        Inside `moorage serve` the loop's default executor (asyncio.to_thread: 6 threads
        on 2 cores) is what requests use for their blocking work: upload chunks, blob
        commits, database calls. A job holds its thread for as long as it runs, so eight
        webhook deliveries waiting on a receiver that does not answer (or a GC, an import
        and a scan) took every one of those threads, and every push stalled behind them.
        This pool has a thread for each job the per-type limits let this process claim at
        once, so a claimed job never waits for a thread, and requests never wait for jobs.
        """
        if self._executor is None:
            wanted = sum(spec.concurrency for spec in self.types.values())
            self._executor = ThreadPoolExecutor(max(1, min(wanted, MAX_JOB_THREADS)),
                                                thread_name_prefix="moorage-job")
        return self._executor

    async def _run_in_thread(self, job: Job) -> str:
        try:
            call = contextvars.copy_context().run
            return await asyncio.get_running_loop().run_in_executor(
                self._job_threads(), call, self.run_one, job)
        finally:
            self._running[job.type] -= 1
            self.wake()

    def _maintain(self) -> None:
        self.queue.recover_stale()
        if self.scheduler is not None:
            self.scheduler.tick(self.enqueue)
