"""Replication rules: their management, their triggers, and the job that runs an execution.

Triggers. A push or delete on this instance is announced on the core's event bus; `on_event`
enqueues an execution for each enabled push rule that wants the repository and tag (never
copying inside the request). A rule with a cron expression has a schedule that enqueues a
full sync. `run` enqueues one by hand. Every execution is one job of type `replication` in
the durable queue: it has a timeout (a stuck transfer fails and is retried with backoff, up
to the job's attempts) and a log (the job's).

Why two instances replicating to each other settle (global synchronization):
1. what an execution writes on this instance (pull mode) is done as `replication:<rule>`
   (events.acting_as), and events by such actors never trigger push rules, so content that
   came in by replication is not sent out again by this instance's event triggers;
2. the copy engine writes nothing that the destination already has: a manifest present by
   digest is skipped, a tag that already names the same digest is no change. So when A
   pushes `t@d` to B and B's push rule (fired by the write A made there) copies `t` back,
   A already has `t@d`: nothing is written on A, no event is announced, nothing follows.
   A delete propagated from A to B and back finds nothing to delete on A, and stops too.
Each round trip therefore ends after at most one execution per side with nothing copied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moorage.access.editions import Edition, EditionError
from moorage.access.errors import Invalid, NotFound
from moorage.jobs.worker import JobContext, JobFailed, JobType, Worker
from moorage.oci.errors import RegistryError
from moorage.oci.names import is_valid_name
from moorage.registry.events import Event, EventBus, acting_as
from moorage.remote import RegistryClient, RemoteConfig, RemoteError
from moorage.replication.bandwidth import TokenBucket
from moorage.replication.clients import client_config
from moorage.replication.copy import Copier, CopyError, Progress, is_fallback_tag
from moorage.replication.endpoints import Endpoint, LocalEndpoint, RemoteEndpoint
from moorage.replication.model import Rule, check_rule_fields
from moorage.replication.secrets import SealError, seal, unseal
from moorage.replication.store import Execution, RuleStore, UploadMemory
from moorage.store.keys import Keyring

log = logging.getLogger("moorage.replication")

JOB = "replication"
QUOTA = "sync_rules"
ACTOR_PREFIX = "replication:"
MAX_ITEMS = 100_000  # tags one full sync or report looks at
MAX_REPORT = 1000  # differences a report lists
MAX_SUBJECT_TAGS = 1000  # tags of a referrer's subject looked at for a rule's tag filter


@dataclass(frozen=True)
class Tuning:
    """Settings of the service (from Settings; smaller in tests)."""

    step_timeout: float = 60.0  # the longest silence of one transfer step (read, request)
    job_timeout: int = 3600  # one attempt of an execution
    attempts: int = 3  # attempts of an execution before it fails
    concurrency: int = 2
    retries: int = 3  # tries of one HTTP request (remote client)
    work_dir: Path | None = None  # where a rule's CA bundle is written for the TLS client


@dataclass
class ReportEntry:
    repository: str
    tag: str
    source: str | None
    destination: str | None

    @property
    def state(self) -> str:
        if self.destination is None:
            return "missing"
        if self.source is None:
            return "extra"
        return "same" if self.source == self.destination else "different"


class ReplicationService:
    job = JOB  # the job type of its executions, and its schedules' prefix
    def __init__(self, store: RuleStore, registry: Any, worker: Worker, edition: Edition,
                 bus: EventBus, keyring: Keyring | None, tuning: Tuning) -> None:
        self.store, self.registry, self.worker = store, registry, worker
        self.edition, self.bus, self.keyring, self.tuning = edition, bus, keyring, tuning
        # how a remote client is made: tests inject transports or clocks here
        self.client_factory: Callable[[RemoteConfig], RegistryClient] = RegistryClient
        # the bandwidth buckets' clock and sleep (a test injects them)
        self.bucket_clock: Callable[[], float] = time.monotonic
        self.bucket_sleep: Callable[[float], Any] = asyncio.sleep

    # -- rules -----------------------------------------------------------------------------
    def require(self) -> None:
        if not self.edition.quota(QUOTA):
            raise EditionError("synchronization (replication) rules need the advanced "
                               f"edition; this instance runs the {self.edition.name} edition",
                               "feature")

    def create(self, fields: dict[str, Any], password: str | None, actor: str) -> Rule:
        self.require()
        self.edition.check_quota(QUOTA, self.store.count())
        values = self._checked(fields, password)
        rule = self.store.add({**values, "updated_by": actor})
        self._schedule(rule)
        return rule

    def update(self, rule_id: int, changes: dict[str, Any], password: str | None,
               clear_password: bool, actor: str) -> Rule:
        self.require()
        current = self.store.get(rule_id)
        merged = {k: getattr(current, k) for k in (
            "name", "mode", "url", "username", "ca_pem", "insecure", "repositories", "tags",
            "destination_namespace", "on_event", "cron", "propagate_deletes", "bandwidth",
            "enabled")}
        merged.update({k: v for k, v in changes.items() if k in merged})
        if password is None and not clear_password and current.has_password:
            values = self._checked(merged, None, keep_secret=True)
        else:
            values = self._checked(merged, None if clear_password else password)
        rule = self.store.update(rule_id, {**values, "updated_by": actor})
        self._schedule(rule)
        return rule

    def delete(self, rule_id: int) -> None:
        self.require()
        rule = self.store.get(rule_id)
        self._unschedule(rule)
        self.store.delete(rule_id)

    def _checked(self, fields: dict[str, Any], password: str | None,
                 keep_secret: bool = False) -> dict[str, Any]:
        check_rule_fields(fields["name"], fields["mode"], fields["repositories"],
                          fields["tags"], fields["destination_namespace"], fields["cron"],
                          fields["bandwidth"])
        username = fields.get("username") or None
        if (username is None) != (password is None) and not keep_secret:
            raise Invalid("give both a username and a password for the remote registry, or "
                          "neither")
        # the URL and TLS settings are checked now, not at the first transfer
        try:
            RemoteConfig(fields["url"], insecure=bool(fields["insecure"])).check()
        except RemoteError as exc:
            raise Invalid(str(exc)) from None
        ca_pem = fields.get("ca_pem") or None
        if ca_pem is not None and "-----BEGIN CERTIFICATE-----" not in ca_pem:
            raise Invalid("ca_pem is a PEM bundle of certificates")
        values = {k: fields[k] for k in (
            "name", "mode", "url", "insecure", "repositories", "tags", "destination_namespace",
            "on_event", "cron", "propagate_deletes", "bandwidth", "enabled")}
        values["url"] = values["url"].rstrip("/")
        values.update(username=username, ca_pem=ca_pem)
        if not keep_secret:
            values["secret"] = seal(password, self.keyring) if password is not None else None
        return values

    def _schedule(self, rule: Rule) -> None:
        scheduler = self.worker.scheduler
        if scheduler is None:
            return
        if rule.cron and rule.enabled:
            scheduler.upsert(f"{self.job}:{rule.id}", rule.cron, self.job,
                             {"rule": rule.id, "trigger": "schedule"})
        else:
            scheduler.remove(f"{self.job}:{rule.id}")

    def _unschedule(self, rule: Rule) -> None:
        if self.worker.scheduler is not None:
            self.worker.scheduler.remove(f"{self.job}:{rule.id}")

    # -- executions ------------------------------------------------------------------------
    def run(self, rule_id: int, trigger: str = "manual",
            scope: dict[str, Any] | None = None) -> Execution:
        """Enqueue an execution (a full sync unless `scope` names one artifact)."""
        rule = self.store.get(rule_id)
        execution_id = self.store.add_execution(rule.id, trigger, scope or {})
        job_id = self.worker.enqueue(self.job, {"execution": execution_id},
                                     timeout_seconds=self.tuning.job_timeout,
                                     max_attempts=self.tuning.attempts)
        if job_id is not None:
            self.store.set_job(execution_id, job_id)
        return self.store.execution(execution_id)

    def executions(self, rule_id: int, limit: int = 50) -> list[Execution]:
        self.store.get(rule_id)
        return [self._reconciled(e) for e in self.store.executions(rule_id, limit)]

    def execution(self, execution_id: int) -> Execution:
        return self._reconciled(self.store.execution(execution_id))

    def log_of(self, execution: Execution) -> str:
        if execution.job_id is None:
            return ""
        job = self.worker.queue.get(execution.job_id)
        return job.log if job is not None else ""

    def _reconciled(self, execution: Execution) -> Execution:
        """An execution whose job ended without its handler saying so (the worker died and
        the queue's timeout failed or requeued the job) reads as its job does."""
        if execution.status not in ("pending", "running") or execution.job_id is None:
            return execution
        job = self.worker.queue.get(execution.job_id)
        if job is None:
            return execution
        status = {"failed": "failed", "queued": "pending"}.get(job.status)
        if status is None or status == execution.status:
            return execution
        values: dict[str, Any] = {"status": status}
        if job.last_error:
            values["message"] = job.last_error[:2000]
        if status == "failed":
            values["ended_at"] = job.finished_at or time.time()
        self.store.set_execution(execution.id, **values)
        if status == "failed":
            self._announce_result(self.store.get(execution.rule_id), execution.id, "failed",
                                  values.get("message", ""))
        return self.store.execution(execution.id)

    # -- triggers --------------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        """Bus handler: pushes and deletes of tags enqueue executions of push rules."""
        if event.action not in ("push", "delete") or event.result != "success":
            return
        if event.actor.startswith(ACTOR_PREFIX) or not event.repository:
            return  # what replication wrote is not replicated again from here (see above)
        if event.action == "push" and not event.tag:
            self._on_untagged(event)
            return
        if event.detail.get("repository"):
            return  # a whole repository deleted: not propagated
        for rule in self.store.list():
            if not (rule.enabled and rule.on_event and rule.mode == "push"):
                continue
            if not rule.wants_repository(event.repository):
                continue
            if event.tag and not (rule.wants_tag(event.tag) or _attached(event.tag)):
                continue
            if event.action == "delete" and not rule.propagate_deletes:
                continue
            self.run(rule.id, "event", {"action": event.action,
                                        "repository": event.repository,
                                        "tag": event.tag, "digest": event.digest})

    def _on_untagged(self, event: Event) -> None:
        """A manifest pushed by digest only (a referrer such as an SBOM or a signature bundle
        pushed after its subject, a child of an index, an untagged artifact).

        A tag filter cannot apply to it, so the choice, as Harbor makes it (referrers travel
        with their subject): a rule whose tag filter matches every tag (`*`, `**`) copies it
        as it comes; a rule with a narrower filter copies it only when it is a referrer whose
        subject carries a tag the filter wants (its subject was, or will be, replicated by
        the rule, and the referrer joins it). Any other untagged manifest waits for the tag
        that names it, or the index that lists it, and travels then with that tree.
        """
        assert event.repository is not None and event.digest is not None
        subject_tags: list[str] | None = None
        for rule in self.store.list():
            if not (rule.enabled and rule.on_event and rule.mode == "push"
                    and rule.wants_repository(event.repository)):
                continue
            if not rule.wants_every_tag:
                if subject_tags is None:
                    subject_tags = self._subject_tags(event.repository, event.digest)
                if not any(rule.wants_tag(t) for t in subject_tags):
                    continue
            self.run(rule.id, "event", {"action": "push", "repository": event.repository,
                                        "tag": None, "digest": event.digest})

    def _subject_tags(self, repository: str, digest: str) -> list[str]:
        """The tags of the manifest's subject in the repository (none if it has no
        subject)."""
        reads = self.registry.browse.reads
        row = reads.manifest(repository, digest)
        if row is None or not row.subject:
            return []
        return list(reads.tags_of(repository, row.subject, MAX_SUBJECT_TAGS))

    # -- the job ---------------------------------------------------------------------------
    def job_type(self) -> JobType:
        return JobType(self.job, self.handle, concurrency=self.tuning.concurrency,
                       timeout_seconds=self.tuning.job_timeout,
                       max_attempts=self.tuning.attempts)

    def handle(self, ctx: JobContext) -> dict[str, Any]:
        payload = ctx.payload
        if "execution" in payload:
            execution_id = int(payload["execution"])
        else:  # a schedule's job: the execution is made now
            try:
                rule = self.store.get(int(payload["rule"]))
            except NotFound:
                return {"skipped": "rule deleted"}
            if not rule.enabled:
                return {"skipped": "rule disabled"}
            existing = self.store.execution_of_job(ctx.job.id)  # a retry of this job
            if existing is not None:
                execution_id = existing
            else:
                execution_id = self.store.add_execution(
                    rule.id, str(payload.get("trigger", "schedule")), {})
                self.store.set_job(execution_id, ctx.job.id)
        try:
            execution = self.store.execution(execution_id)
            rule = self.store.get(execution.rule_id)
        except NotFound:
            return {"skipped": "rule deleted"}
        if execution.job_id != ctx.job.id:
            self.store.set_job(execution_id, ctx.job.id)
        if not rule.enabled and execution.trigger != "manual":
            self.store.set_execution(execution_id, status="stopped", ended_at=time.time(),
                                     message="the rule is disabled")
            return {"skipped": "rule disabled"}
        self.store.set_execution(execution_id, status="running",
                                 started_at=execution.started_at or time.time(), message="")
        ctx.log(f"rule {rule.name} ({rule.mode} {rule.url}), execution {execution_id}, "
                f"trigger {execution.trigger}")
        runner = self._runner(rule, execution, ctx)
        try:
            with acting_as(rule.actor, rule=rule.name, execution=execution_id):
                asyncio.run(asyncio.wait_for(runner.run(), timeout=ctx.job.timeout_seconds))
        except (asyncio.TimeoutError, TimeoutError):
            self._attempt_failed(ctx, runner, f"timed out after {ctx.job.timeout_seconds}s")
        except (RemoteError, RegistryError, CopyError, Invalid, SealError) as exc:
            self._attempt_failed(ctx, runner, _reason(exc))
        if runner.errors:
            self._attempt_failed(ctx, runner, f"{len(runner.errors)} artifact(s) failed: "
                                 f"{runner.errors[0]['error']}")
        self.store.set_execution(execution_id, status="succeeded", ended_at=time.time(),
                                 **runner.counters(), errors=[])
        self._announce_result(rule, execution_id, "succeeded", "", runner.progress)
        return {"execution": execution_id, **runner.progress.as_dict()}

    def _runner(self, rule: Any, execution: Execution, ctx: JobContext) -> "_Run":
        """What one attempt runs (artifact subscriptions give their own)."""
        return _Run(self, rule, execution, ctx)

    def _attempt_failed(self, ctx: JobContext, runner: "_Run", reason: str) -> None:
        last = ctx.job.attempts >= ctx.job.max_attempts
        values = {**runner.counters(), "errors": runner.errors, "message": reason[:2000]}
        if last:
            self.store.set_execution(runner.execution.id, status="failed",
                                     ended_at=time.time(), **values)
            self._announce_result(runner.rule, runner.execution.id, "failed", reason,
                                  runner.progress)
        else:
            self.store.set_execution(runner.execution.id, status="pending", **values)
        raise JobFailed(reason)

    def _announce_result(self, rule: Rule, execution_id: int, status: str, reason: str,
                         progress: Progress | None = None) -> None:
        detail: dict[str, Any] = {"rule": rule.name, "execution": execution_id,
                                  "mode": rule.mode}
        if progress is not None:
            detail.update(artifacts=progress.artifacts_done, bytes=progress.bytes)
        if reason:
            detail["reason"] = reason[:500]
        self.bus.publish(Event(f"replication.{status}", target=f"replication/{rule.name}",
                               result="success" if status == "succeeded" else "failure",
                               actor=rule.actor, detail=detail))

    # -- clients ---------------------------------------------------------------------------
    def remote_config(self, rule: Rule) -> RemoteConfig:
        secret = self.store.secret(rule.id)
        password = unseal(secret, self.keyring) if secret is not None else None
        return client_config(rule.url, rule.username, password, rule.ca_pem, rule.insecure,
                             f"replication-{rule.id}", self.tuning, "moorage-replication")

    def endpoints(self, rule: Rule, client: RegistryClient) -> tuple[Endpoint, Endpoint]:
        remote = RemoteEndpoint(client, rule.url)
        local = LocalEndpoint(self.registry, owner=rule.actor)
        return (local, remote) if rule.mode == "push" else (remote, local)

    # -- report ----------------------------------------------------------------------------
    def report(self, rule_id: int) -> dict[str, Any]:
        """What differs between source and destination for the rule's filters, copying
        nothing (blocking: call it in a worker thread)."""
        rule = self.store.get(rule_id)
        return asyncio.run(self._report(rule))

    async def _report(self, rule: Rule) -> dict[str, Any]:
        async with self.client_factory(self.remote_config(rule)) as client:
            source, target = self.endpoints(rule, client)
            entries: list[ReportEntry] = []
            counts = {"same": 0, "missing": 0, "different": 0, "extra": 0}
            for repository in await _repositories(rule, source):
                destination = rule.destination(repository)
                source_tags = set(await _tags(rule, source, repository))
                target_tags = set(await _tags(rule, target, destination))
                for tag in sorted(source_tags | target_tags):
                    here = (await source.head_manifest(repository, tag)
                            if tag in source_tags else None)
                    there = (await target.head_manifest(destination, tag)
                             if tag in target_tags else None)
                    entry = ReportEntry(repository, tag, here.digest if here else None,
                                        there.digest if there else None)
                    counts[entry.state] += 1
                    if entry.state != "same" and len(entries) < MAX_REPORT:
                        entries.append(entry)
        return {"rule": rule.name, "mode": rule.mode, "counts": counts,
                "differences": [{"repository": e.repository,
                                 "destination": rule.destination(e.repository), "tag": e.tag,
                                 "state": e.state, "source_digest": e.source,
                                 "destination_digest": e.destination} for e in entries],
                "truncated": sum(v for k, v in counts.items() if k != "same") > len(entries)}


def _attached(tag: str) -> bool:
    """A cosign-style attached tag (`sha256-<hex>.sig`/.att/.sbom): it travels with its
    subject whatever the rule's tag filter."""
    head, _, suffix = tag.rpartition(".")
    return suffix in ("sig", "att", "sbom") and head.startswith("sha256-") and len(head) == 71


def _reason(exc: Exception) -> str:
    return str(exc)[:2000] or type(exc).__name__


def _literal(pattern: str) -> bool:
    return not any(c in pattern for c in "*?{")


async def _repositories(rule: Rule, source: Endpoint) -> list[str]:
    """The source's repositories the rule wants. A pattern without wildcards names one
    repository, asked for directly: registries such as Docker Hub refuse `_catalog`."""
    if _literal(rule.repositories):
        return [rule.repositories]
    names = [n for n in await source.catalog() if rule.wants_repository(n)]
    return sorted(names)[:MAX_ITEMS]


async def _tags(rule: Rule, endpoint: Endpoint, repository: str) -> list[str]:
    """The repository's tags the rule wants (a literal tag pattern: that tag, unlisted)."""
    if _literal(rule.tags):
        return [rule.tags] if await endpoint.head_manifest(repository, rule.tags) else []
    return sorted(t for t in await endpoint.tags(repository)
                  if rule.wants_tag(t) and not is_fallback_tag(t))


class _Run:
    """One attempt of one execution: the items to copy (or delete), the copier, counters."""

    def __init__(self, service: ReplicationService, rule: Rule, execution: Execution,
                 ctx: JobContext) -> None:
        self.service, self.rule, self.execution, self.ctx = service, rule, execution, ctx
        self.errors: list[dict[str, str]] = []
        self.progress = Progress()
        self.copied = 0
        self._saved = 0.0

    def counters(self) -> dict[str, int]:
        return {"artifacts_done": self.progress.artifacts_done,
                "artifacts_total": self.progress.artifacts_total,
                "bytes": self.progress.bytes, "copied": self.copied}

    def _on_progress(self, progress: Progress) -> None:
        self.ctx.progress(progress.artifacts_done, progress.artifacts_total,
                          f"{progress.bytes} bytes")
        now = time.monotonic()
        if now - self._saved >= 1.0:
            self._saved = now
            self.service.store.set_execution(self.execution.id, **self.counters())

    async def run(self) -> None:
        service, rule = self.service, self.rule
        bucket = (TokenBucket(rule.bandwidth, clock=service.bucket_clock,
                              sleep=service.bucket_sleep) if rule.bandwidth else None)
        async with service.client_factory(service.remote_config(rule)) as client:
            source, target = service.endpoints(rule, client)
            copier = Copier(source, target, on_progress=self._on_progress, bucket=bucket,
                            resume=UploadMemory(service.store.engine, rule.id),
                            log_line=self.ctx.log, check=self.ctx.check)
            self.progress = copier.progress
            scope = self.execution.scope
            if scope.get("action") == "delete":
                await self._delete(target, scope)
                return
            if scope.get("action") == "push":  # one tag, or one manifest by digest
                items = [(scope["repository"], scope.get("tag") or scope["digest"])]
            else:
                items = await self._listing(source)
                if rule.propagate_deletes:
                    await self._delete_extra(target, items)
            self.ctx.log(f"{len(items)} tag(s) to replicate")
            for repository, reference in items:
                destination = rule.destination(repository)
                by_digest = ":" in reference  # a tag holds no ':'; a digest does
                label = f"{repository}{'@' if by_digest else ':'}{reference}"
                if not is_valid_name(destination):
                    self._error(label, f"{destination!r} is no valid name")
                    continue
                try:
                    result = await copier.copy(repository, reference, destination,
                                               None if by_digest else reference)
                except (RemoteError, RegistryError, CopyError) as exc:
                    self._error(label, _reason(exc))
                    continue
                if result.changed:
                    self.copied += 1
            self.ctx.log(f"done: {self.copied} tag(s) changed, {self.progress.bytes} bytes, "
                         f"{self.progress.blobs_skipped} blob(s) already there")

    def _error(self, artifact: str, reason: str) -> None:
        self.ctx.log(f"{artifact}: {reason}")
        self.errors.append({"artifact": artifact, "error": reason})

    async def _listing(self, source: Endpoint) -> list[tuple[str, str]]:
        items: list[tuple[str, str]] = []
        for repository in await _repositories(self.rule, source):
            if _literal(self.rule.tags):  # asked for directly: a failure is the artifact's
                items.append((repository, self.rule.tags))
                continue
            for tag in await _tags(self.rule, source, repository):
                if len(items) < MAX_ITEMS:
                    items.append((repository, tag))
        return items

    async def _delete_extra(self, target: Endpoint, items: list[tuple[str, str]]) -> None:
        """A full sync of a rule that propagates deletes removes the destination's tags
        (within its filters) that the source no longer has."""
        wanted: dict[str, set[str]] = {}
        for repository, tag in items:
            wanted.setdefault(repository, set()).add(tag)
        for repository, tags in wanted.items():
            destination = self.rule.destination(repository)
            for tag in await target.tags(destination):
                if (self.rule.wants_tag(tag) and tag not in tags and not _attached(tag)
                        and not is_fallback_tag(tag)):
                    await self._delete(target, {"repository": repository, "tag": tag})

    async def _delete(self, target: Endpoint, scope: dict[str, Any]) -> None:
        destination = self.rule.destination(scope["repository"])
        tag, digest = scope.get("tag"), scope.get("digest")
        try:
            if tag:
                done = await target.delete_tag(destination, tag)
                what = f"{destination}:{tag}"
            else:
                done = await target.delete_manifest(destination, digest)
                what = f"{destination}@{digest}"
        except (RemoteError, RegistryError) as exc:
            self._error(f"{scope['repository']}:{tag or digest}", _reason(exc))
            return
        self.copied += int(done)
        self.ctx.log(f"deleted {what}" if done else f"{what} was not there")
