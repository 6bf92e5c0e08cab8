"""Threat blocking: per-namespace pull policies (issue 17, item 4; the `threat_blocking`
switch of the advanced edition).

A namespace's policy may refuse the pull of an image with a finding at or above a severity
(the namespace's CVE allowlist and its expiries apply), of an unscanned image, and of an
image without a valid signature from a trusted key; named robot accounts (a scanner, a CI
deployer) are exempted. Signatures, SBOMs, attestations and other artifacts always pass, and
so does HEAD. A refused pull is 403 DENIED naming the policy and the reason.

Where things are:
- model.py: policies, facts, the decision (pure)
- kinds.py: which manifests a policy applies to (pure)
- store.py: the tables, and the cached reads of the pull path
- facts.py: facts written when a scan completes or a signature verdict changes; backfill
- gate.py: the core's pull check (Registry.pull_checks), recording refusals

The core imports nothing of this: `install` (called by app.py) registers the pull check,
the bus handler and the backfill job type.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moorage.access.errors import Invalid
from moorage.blocking.facts import FactsWriter, backfill
from moorage.blocking.gate import PullGate
from moorage.blocking.model import PullPolicy
from moorage.blocking.store import BlockingStore
from moorage.jobs.worker import JobContext, JobType, Worker
from moorage.registry.service import Registry
from moorage.scan.store import ScanStore

log = logging.getLogger("moorage.blocking")
BACKFILL_JOB = "blocking.backfill"
INLINE_BACKFILL = 200  # manifests a policy edit brings up to date itself; more: a job
SIGNING_MISSING = ("the unsigned rule needs the signing service, which this instance does not "
                   "run yet: it cannot tell a signed image from an unsigned one")


@dataclass
class PullBlocking:
    """What the API, CLI and console reach through `instance.blocking`."""

    store: BlockingStore
    gate: PullGate
    writer: FactsWriter
    worker: Worker
    # the signing service (instance.signing), asked when it is needed: None without it
    signing: Callable[[], Any]

    def policy(self, namespace: str) -> PullPolicy:
        return self.store.policy(namespace)

    def save(self, namespace_id: int, policy: PullPolicy) -> int | None:
        """Store a namespace's policy; the facts of what it held before threat blocking was
        installed are brought up to date first when it is small, or by a job (its id is
        returned) when it is large. The unsigned rule is refused without a signing service."""
        signing = self.signing()
        if policy.block_unsigned and signing is None:
            raise Invalid(SIGNING_MISSING)
        job_id = None
        if policy.active:
            pending = len(self.store.images_without_facts(policy.namespace,
                                                          INLINE_BACKFILL + 1))
            signable = len(self.store.manifests_of(policy.namespace, INLINE_BACKFILL + 1)) \
                if signing is not None else 0
            if pending + signable > INLINE_BACKFILL:
                job_id = self.worker.enqueue(BACKFILL_JOB, {"namespace": policy.namespace},
                                             dedupe_key=f"blocking:{policy.namespace}")
            elif pending or signable:
                backfill(self.writer, policy.namespace, self._is_signed(signing))
        self.store.put_policy(namespace_id, policy)
        return job_id

    def _is_signed(self, signing: Any) -> Callable[[str, str], bool] | None:
        return None if signing is None else signing.is_signed

    def backfill_job(self, ctx: JobContext) -> dict[str, Any]:
        namespace = str(ctx.payload["namespace"])
        ctx.log(f"bringing the pull facts of {namespace} up to date")
        return backfill(self.writer, namespace, self._is_signed(self.signing()),
                        ctx.progress, ctx.check)


def install(registry: Registry, worker: Worker,
            signing: Callable[[], Any] = lambda: None) -> PullBlocking:
    """Wire threat blocking in (app.py, when the edition has `threat_blocking`): the pull
    check, the facts writer on the bus, and the backfill job. `signing` returns the signing
    service or None (it may be installed after this)."""
    engine = registry.db.engine
    store = BlockingStore(engine)
    gate = PullGate(store, registry.bus)
    writer = FactsWriter(store, ScanStore(engine))
    service = PullBlocking(store, gate, writer, worker, signing)
    registry.pull_checks.append(gate)
    registry.bus.subscribe(writer.on_event)
    worker.register(JobType(BACKFILL_JOB, service.backfill_job, concurrency=1,
                            timeout_seconds=6 * 3600, max_attempts=3))
    return service


__all__ = ["BACKFILL_JOB", "PullBlocking", "SIGNING_MISSING", "install"]
