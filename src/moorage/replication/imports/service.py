"""Imports: another registry's repositories copied into this one by the server itself.

An import is a durable job (`import` in the queue) whose plan lives in the database
(store.py): the repositories in scope are listed once and stored, then each repository's
tags, and each tag is copied by the copy engine (copy.py, source remote, destination this
instance) and marked done once the engine verified it. So a crash or a restart costs at
most the item in flight: the queue gives the job back (after its timeout), the plan skips
what is done, and the engine skips blobs and manifests already here.

A job works for at most half its timeout and then hands the rest to a fresh job of the same
import: an import of thousands of repositories never hits the queue's timeout, and a job
killed with its process is given back after a short timeout rather than a day's. A failure
of one repository or tag is recorded on its item and the import goes on; a failure of the
source as a whole (unreachable, credentials refused) fails the attempt, which the queue
retries while the error may pass (`retryable`), and fails the import otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, NoReturn

from moorage.access.editions import Edition, EditionError
from moorage.access.errors import Invalid, NotFound
from moorage.jobs.worker import JobContext, JobFailed, JobType, Worker
from moorage.oci.errors import RegistryError
from moorage.oci.names import is_valid_name
from moorage.registry.events import Event, EventBus, acting_as
from moorage.remote import RegistryClient, RemoteConfig, RemoteError
from moorage.replication.bandwidth import TokenBucket
from moorage.replication.clients import client_config
from moorage.replication.copy import Copier, CopyError, Progress
from moorage.replication.endpoints import LocalEndpoint, RemoteEndpoint
from moorage.replication.imports import listing
from moorage.replication.imports.model import FINISHED, Counts, Import, check_import_fields
from moorage.replication.imports.store import ImportStore
from moorage.replication.secrets import SealError, seal, unseal
from moorage.replication.service import Tuning  # the replication settings; smaller in tests
from moorage.store.keys import Keyring

log = logging.getLogger("moorage.replication.imports")

JOB = "import"
FEATURE = "import"
LOG_JOBS = 20  # jobs of one import whose logs are read back for its log


class _Cancelled(Exception):
    pass


def edition_error(edition_name: str) -> EditionError:
    return EditionError("import from other registries needs the basic or advanced edition; "
                        f"this instance runs the {edition_name} edition", "feature")


class ImportService:
    def __init__(self, store: ImportStore, registry: Any, worker: Worker, edition: Edition,
                 bus: EventBus, keyring: Keyring | None, tuning: Tuning) -> None:
        self.store, self.registry, self.worker = store, registry, worker
        self.edition, self.bus, self.keyring, self.tuning = edition, bus, keyring, tuning
        # how a remote client is made: tests inject transports or clocks here
        self.client_factory: Callable[[RemoteConfig], RegistryClient] = RegistryClient

    def require(self) -> None:
        if not self.edition.has(FEATURE):
            raise edition_error(self.edition.name)

    # -- management ----------------------------------------------------------------------
    def create(self, fields: dict[str, Any], password: str | None, actor: str) -> Import:
        """Check, store and enqueue an import; the source is first contacted by the job."""
        self.require()
        check_import_fields(fields)
        username = fields.get("username") or None
        if (username is None) != (password is None):
            raise Invalid("give both a username and a password for the source registry, "
                          "or neither")
        url = str(fields["url"]).rstrip("/")
        try:
            RemoteConfig(url, insecure=bool(fields.get("insecure"))).check()
        except RemoteError as exc:
            raise Invalid(str(exc)) from None
        ca_pem = fields.get("ca_pem") or None
        if ca_pem is not None and "-----BEGIN CERTIFICATE-----" not in ca_pem:
            raise Invalid("ca_pem is a PEM bundle of certificates")
        job = self.store.add({
            "url": url, "kind": fields["kind"], "namespace": fields.get("namespace") or None,
            "repositories": fields.get("repositories"), "prefix": fields.get("prefix") or "",
            "username": username, "ca_pem": ca_pem, "insecure": bool(fields.get("insecure")),
            "bandwidth": fields.get("bandwidth"), "created_by": actor,
            "secret": seal(password, self.keyring) if password is not None else None})
        self._enqueue(job.id)
        return self.get(job.id)

    def _enqueue(self, import_id: int, previous: int | None = None) -> None:
        payload: dict[str, Any] = {"import": import_id}
        if previous is not None:
            payload["previous"] = previous
        job_id = self.worker.enqueue(JOB, payload, timeout_seconds=self.tuning.job_timeout,
                                     max_attempts=self.tuning.attempts)
        if job_id is not None:
            self.store.set(import_id, job_id=job_id)

    def cancel(self, import_id: int, actor: str) -> Import:
        job = self.get(import_id)
        if job.status in FINISHED:
            raise Invalid(f"import {import_id} has already ended ({job.status})")
        if self.store.set(import_id, only_if=("pending", "running"), status="cancelled",
                          ended_at=time.time(), message=f"cancelled by {actor}"[:2000]):
            self._announce(self.store.get(import_id), "cancelled", f"cancelled by {actor}")
        return self.get(import_id)

    def get(self, import_id: int) -> Import:
        return self._reconciled(self.store.get(import_id))

    def list(self, limit: int = 50) -> list[Import]:
        return [self._reconciled(j) for j in self.store.list(limit)]

    def counts(self, import_id: int) -> Counts:
        return self.store.counts(import_id)

    def log_of(self, job: Import) -> str:
        """The logs of the import's jobs, oldest first (each job's last 64 KiB)."""
        parts: list[str] = []
        job_id = job.job_id
        while job_id is not None and len(parts) < LOG_JOBS:
            found = self.worker.queue.get(job_id)
            if found is None:
                break
            parts.append(found.log)
            previous = found.payload.get("previous")
            job_id = int(previous) if isinstance(previous, int) else None
        return "".join(reversed(parts))

    def _reconciled(self, job: Import) -> Import:
        """An import whose job ended without its handler saying so (attempts used up by
        crashes or timeouts) reads as its job does."""
        if job.status not in ("pending", "running") or job.job_id is None:
            return job
        queued = self.worker.queue.get(job.job_id)
        if queued is None or queued.status != "failed":
            return job
        reason = (queued.last_error or "the import's job failed")[:2000]
        if self.store.set(job.id, only_if=("pending", "running"), status="failed",
                          ended_at=queued.finished_at or time.time(), message=reason):
            self._announce(job, "failed", reason)
        return self.store.get(job.id)

    def _announce(self, job: Import, status: str, reason: str = "") -> None:
        counts = self.store.counts(job.id)
        detail: dict[str, Any] = {"import": job.id, "source": job.url, "kind": job.kind,
                                  "repositories": counts.repositories_done,
                                  "tags": counts.tags_done, "bytes": counts.bytes}
        if reason:
            detail["reason"] = reason[:500]
        self.bus.publish(Event(f"import.{status}", target=f"imports/{job.id}",
                               result="success" if status == "succeeded" else "failure",
                               actor=job.actor, detail=detail))

    # -- the job -------------------------------------------------------------------------
    def job_type(self) -> JobType:
        return JobType(JOB, self.handle, concurrency=self.tuning.concurrency,
                       timeout_seconds=self.tuning.job_timeout,
                       max_attempts=self.tuning.attempts)

    def handle(self, ctx: JobContext) -> dict[str, Any]:
        import_id = int(ctx.payload["import"])
        try:
            job = self.store.get(import_id)
        except NotFound:
            return {"skipped": "import deleted"}
        if job.status in FINISHED:
            return {"skipped": f"import {job.status}"}
        if job.job_id is not None and job.job_id > ctx.job.id:
            # this job handed over and was then given back (its process died before it
            # finished): the later job carries the import, two would work the plan twice
            return {"skipped": f"job {job.job_id} carries the import on"}
        if not self.store.set(import_id, only_if=("pending", "running"), status="running",
                              job_id=ctx.job.id, started_at=job.started_at or time.time()):
            return {"skipped": "import cancelled"}
        ctx.log(f"import {import_id} from {job.url} ({job.kind}), job attempt "
                f"{ctx.job.attempts}")
        run = _Run(self, job, ctx)
        try:
            with acting_as(job.actor, import_id=import_id):
                finished = asyncio.run(asyncio.wait_for(run.run(),
                                                        timeout=ctx.job.timeout_seconds))
        except _Cancelled:
            ctx.log("cancelled")
            return {"import": import_id, "cancelled": True}
        except (asyncio.TimeoutError, TimeoutError):
            self._attempt_failed(ctx, job, f"timed out after {ctx.job.timeout_seconds}s", True)
        except RemoteError as exc:
            self._attempt_failed(ctx, job, _reason(exc), exc.retryable)
        except (RegistryError, CopyError, Invalid, SealError) as exc:
            self._attempt_failed(ctx, job, _reason(exc), False)
        if not finished:  # the slice is used up: a fresh job goes on with the plan
            ctx.log("handing the rest of the plan to the next job")
            self._enqueue(import_id, previous=ctx.job.id)
            return {"import": import_id, "continued": True, **run.progress.as_dict()}
        counts = self.store.counts(import_id)
        failed = counts.repositories_failed + counts.tags_failed
        status = "failed" if failed else "succeeded"
        message = (f"{counts.tags_failed} tag(s) and {counts.repositories_failed} "
                   f"repositor{'y' if counts.repositories_failed == 1 else 'ies'} failed; "
                   "the rest was imported") if failed else ""
        if self.store.set(import_id, only_if=("running",), status=status,
                          ended_at=time.time(), message=message):
            self._announce(job, status, message)
        ctx.log(f"{status}: {counts.repositories_done}/{counts.repositories_total} "
                f"repositories, {counts.tags_done}/{counts.tags_total} tags, "
                f"{counts.bytes} bytes")
        return {"import": import_id, "status": status, **run.progress.as_dict()}

    def _attempt_failed(self, ctx: JobContext, job: Import, reason: str,
                        retryable: bool) -> NoReturn:
        """The source as a whole failed: retried while it may pass, else the import fails."""
        ctx.log(f"failed: {reason}")
        if retryable and ctx.job.attempts < ctx.job.max_attempts:
            raise JobFailed(reason)
        if self.store.set(job.id, only_if=("pending", "running"), status="failed",
                          ended_at=time.time(), message=reason[:2000]):
            self._announce(job, "failed", reason)
        raise JobFailed(reason)

    # -- clients -------------------------------------------------------------------------
    def remote_config(self, job: Import) -> RemoteConfig:
        secret = self.store.secret(job.id)
        password = unseal(secret, self.keyring) if secret is not None else None
        return client_config(job.url, job.username, password, job.ca_pem, job.insecure,
                             f"import-{job.id}", self.tuning, "moorage-import")


def _quiet(line: str) -> None:
    """The engine's lines (a blob, a manifest) go to the debug log: the job's log keeps one
    line a tag, so that a large import's log stays readable within its bound."""
    log.debug("%s", line)


def _reason(exc: Exception) -> str:
    return str(exc)[:2000] or type(exc).__name__


class _Run:
    """One job's share of an import: the plan's open items, copied one after another."""

    def __init__(self, service: ImportService, job: Import, ctx: JobContext) -> None:
        self.service, self.job, self.ctx = service, job, ctx
        self.store = service.store
        self.progress = Progress()
        self.until = time.monotonic() + ctx.job.timeout_seconds / 2
        self._checked = 0.0
        self.done = 0
        self.total = 0

    def check(self) -> None:
        """Between steps: the job's own timeout, and a cancel (read at most once a second)."""
        self.ctx.check()
        now = time.monotonic()
        if now - self._checked >= 1.0:
            self._checked = now
            if self.store.status(self.job.id) != "running":
                raise _Cancelled()

    def _on_progress(self, progress: Progress) -> None:
        self.ctx.progress(self.done, self.total, f"{progress.bytes} bytes this job")

    async def run(self) -> bool:
        """True when the plan is through; False when this job's slice is used up."""
        service, job, store = self.service, self.job, self.store
        bucket = TokenBucket(job.bandwidth) if job.bandwidth else None
        async with service.client_factory(service.remote_config(job)) as client:
            if not job.planned:
                await client.ping()  # unreachable, untrusted, refused: said once, clearly
                names = await listing.repositories(job, client)
                store.plan_repositories(job.id, names)
                self.ctx.log(f"{len(names)} repositor{'y' if len(names) == 1 else 'ies'} "
                             "to import")
            counts = store.counts(job.id)
            self.done, self.total = counts.tags_done, counts.tags_total
            copier = Copier(RemoteEndpoint(client, job.url),
                            LocalEndpoint(service.registry, owner=job.actor),
                            on_progress=self._on_progress, bucket=bucket,
                            log_line=_quiet, check=self.check)
            self.progress = copier.progress
            for repository, state in store.open_repositories(job.id):
                self.check()
                if time.monotonic() > self.until:
                    return False
                if state == "pending" and not await self._list_tags(client, repository):
                    continue
                await self._copy_tags(copier, repository)
                store.finish_repository(job.id, repository, self.ctx.job.attempts)
        return True

    async def _list_tags(self, client: RegistryClient, repository: str) -> bool:
        destination = self.job.destination(repository)
        try:
            if not is_valid_name(destination):
                raise Invalid(f"{destination!r} is no valid repository name here")
            tags = await listing.tags(client, repository)
        except (RemoteError, Invalid) as exc:
            if isinstance(exc, RemoteError) and exc.retryable:
                raise  # the source is down: the attempt fails and is retried
            self._failed(repository, "", _reason(exc))
            return False
        self.store.plan_tags(self.job.id, repository, tags)
        self.total += len(tags)
        if not tags:
            self.ctx.log(f"{repository}: no tags")
        return True

    async def _copy_tags(self, copier: Copier, repository: str) -> None:
        destination = self.job.destination(repository)
        for tag in self.store.pending_tags(self.job.id, repository):
            self.check()
            before = copier.progress.bytes
            try:
                result = await copier.copy(repository, tag, destination, tag)
            except (RemoteError, RegistryError, CopyError) as exc:
                if isinstance(exc, RemoteError) and exc.retryable:
                    raise
                self._failed(repository, tag, _reason(exc))
                continue
            self.store.finish(self.job.id, repository, tag, ok=True, digest=result.digest,
                              fetched=copier.progress.bytes - before,
                              attempt=self.ctx.job.attempts)
            self.done += 1
            self._on_progress(copier.progress)
            self.ctx.log(f"{repository}:{tag} -> {destination}:{tag} {result.digest} "
                         f"({copier.progress.bytes - before} bytes)")

    def _failed(self, repository: str, tag: str, reason: str) -> None:
        self.ctx.log(f"{repository}{':' + tag if tag else ''}: {reason}")
        self.store.finish(self.job.id, repository, tag, ok=False, error=reason,
                          attempt=self.ctx.job.attempts)
