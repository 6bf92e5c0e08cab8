"""The pull check the core asks before a manifest GET is answered (Registry.pull_checks).

It runs on the event loop, inside the hottest request there is, so it does no I/O of its
own beyond the pull path's cached reads (store.py), and keeps per-process memos only of
things that cannot go stale: what a digest's immutable bytes are (an image or evidence), a
policy row parsed (keyed by the row itself), a facts row decoded (keyed by its text). The
clock (`clock`) is a parameter, so tests can move it.

A refusal is 403 DENIED naming the namespace's policy, the rule and the reason. It is
recorded (an audit entry through the `pull.blocked` event, and webhooks of that family) at
most once a minute per (repository, digest, actor) across every worker and replica: the
first of a process's refusals in a minute asks the database (`mark_block`, a conditional
write, in a worker thread, off the loop), the rest of that minute are dropped in memory.
So a client retrying in a loop, or an anonymous flood against a public namespace, costs one
entry a minute, not one a request.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from moorage.blocking.kinds import subject_to_policy
from moorage.blocking.model import (BlockingFinding, PullPolicy, Refusal, ScanFacts,
                                    decide, decode_findings, is_cosign_tag, refusal_message)
from moorage.blocking.store import MARK_SECONDS, BlockingStore, policy_of
from moorage.db.metadata import StoredManifest
from moorage.oci.errors import RegistryError
from moorage.oci.names import namespace_of
from moorage.registry.events import Event, EventBus, current_actor

log = logging.getLogger("moorage.blocking")
_MEMO_LIMIT = 20_000
# The Harbor scanner adapters pull with tokens the instance issues to "scanner:<adapter>" (no
# account name holds a colon): an image blocked as unscanned must stay scannable.
SCANNER_ACTORS = "scanner:"


class PullGate:
    def __init__(self, store: BlockingStore, bus: EventBus,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self._policies: dict[tuple[str, Any], tuple[PullPolicy, frozenset[str]]] = {}
        self._kinds: dict[str, bool] = {}
        self._findings: dict[str, tuple[str, tuple[BlockingFinding, ...]]] = {}
        self._allowlists: dict[str, tuple[list[Any], dict[str, float | None]]] = {}
        self._recorded: dict[tuple[str, str, str], float] = {}
        self._recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pull-blocked")

    def __call__(self, repository: str, stored: StoredManifest, tag: str | None) -> None:
        namespace = namespace_of(repository)
        row = self.store.policy_row(namespace)
        if row is None:
            return
        policy, exempt = self._policy(namespace, row)
        if not policy.active or is_cosign_tag(tag) or not self._subject(stored):
            return
        actor = current_actor()
        if actor in exempt or actor.startswith(SCANNER_ACTORS):
            return
        refusal = self.decision(policy, repository, stored.digest)
        if refusal is None:
            return
        message = refusal_message(policy, refusal)
        self._record(repository, stored, tag, actor or "anonymous", policy, refusal)
        raise RegistryError("DENIED", message, detail={
            "reason": "pull_policy", "namespace": namespace, "rule": refusal.rule,
            "why": refusal.reason})

    def decision(self, policy: PullPolicy, repository: str, digest: str) -> Refusal | None:
        """What the policy says of this image now, from the stored facts."""
        scan = None
        if policy.block_unscanned or policy.severity is not None:
            row = self.store.facts_row(digest)
            if row is not None:
                scan = ScanFacts(str(row[0]), self._decoded(digest, row[1]))
        allow = self._allowlist(policy.namespace) \
            if policy.severity is not None and scan is not None and scan.findings else {}
        signed = self.store.signed(repository, digest) if policy.block_unsigned else True
        return decide(policy, scan, signed, allow, self.clock())

    # -- memos of what cannot go stale -------------------------------------------------
    def _policy(self, namespace: str, row: Any) -> tuple[PullPolicy, frozenset[str]]:
        key = (namespace, tuple(row))
        found = self._policies.get(key)
        if found is None:
            if len(self._policies) >= _MEMO_LIMIT:
                self._policies.clear()
            policy = policy_of(namespace, row)
            found = self._policies[key] = (policy, policy.exempt_usernames())
        return found

    def _subject(self, stored: StoredManifest) -> bool:
        found = self._kinds.get(stored.digest)
        if found is None:
            if len(self._kinds) >= _MEMO_LIMIT:
                self._kinds.clear()
            found = self._kinds[stored.digest] = subject_to_policy(stored.content,
                                                                   stored.media_type)
        return found

    def _decoded(self, digest: str, text: str) -> tuple[BlockingFinding, ...]:
        found = self._findings.get(digest)
        if found is None or (found[0] is not text and found[0] != text):
            if len(self._findings) >= _MEMO_LIMIT:
                self._findings.clear()
            found = self._findings[digest] = (text, decode_findings(text))
        return found[1]

    def _allowlist(self, namespace: str) -> dict[str, float | None]:
        rows = self.store.allowlist_rows(namespace)
        found = self._allowlists.get(namespace)
        if found is None or found[0] is not rows:  # the cached list object changes on commit
            if len(self._allowlists) >= _MEMO_LIMIT:
                self._allowlists.clear()
            entries = {str(r[0]).strip().upper(): (None if r[1] is None else float(r[1]))
                       for r in rows}
            found = self._allowlists[namespace] = (rows, entries)
        return found[1]

    # -- recording ----------------------------------------------------------------------
    def _record(self, repository: str, stored: StoredManifest, tag: str | None, actor: str,
                policy: PullPolicy, refusal: Refusal) -> None:
        now = self.clock()
        key = (repository, stored.digest, actor)
        last = self._recorded.get(key)
        if last is not None and now - last < MARK_SECONDS:
            return
        if len(self._recorded) >= _MEMO_LIMIT:
            self._recorded = {k: v for k, v in self._recorded.items()
                              if now - v < MARK_SECONDS}
            if len(self._recorded) >= _MEMO_LIMIT:
                self._recorded.clear()
        self._recorded[key] = now
        event = Event("pull.blocked", repository, stored.digest, stored.media_type, tag,
                      stored.size, result="failure", detail={
                          "namespace": policy.namespace, "rule": refusal.rule,
                          "reason": refusal.reason, "policy": policy.describe()})
        context = contextvars.copy_context()
        self._recorder.submit(context.run, self._announce, event, now)

    def _announce(self, event: Event, now: float) -> None:
        try:
            if self.store.mark_block(event.repository or "", event.digest or "",
                                     event.actor or "anonymous", now):
                self.bus.publish(event)
        except Exception:  # noqa: BLE001 - recording never fails the refusal itself
            log.exception("could not record the blocked pull of %s", event.describe_target())

    def close(self) -> None:
        self._recorder.shutdown(wait=True)


__all__ = ["PullGate"]
