"""The pull check the core asks before a manifest GET is answered (Registry.pull_checks).

It runs on the event loop, inside the hottest request there is, so it does no I/O of its
own beyond the pull path's cached reads (store.py). What it works out is kept per process
only as a cache of what is stored, under the rule RawReader's answers follow
(db/changes.py): a namespace's policy and each image's decision are filed under the value
the shared commit signal had before they were read, and served only while it still holds
it, so any commit anywhere (a policy edit, a scan's facts, a signature verdict, an
allowlist entry) is followed by the next pull on every worker; a decision is also dropped at
the namespace's next allowlist expiry, the one change that comes with time, not a commit.
On PostgreSQL the signal is the commit_signal row, read once per request; outside a request
(no value read) nothing is kept and every pull reads the rows.
Memos of what cannot go stale at all: what a digest's immutable bytes are (an image or
evidence), a policy row parsed, a facts row decoded. The clock (`clock`) is a parameter, so
tests can move it. A pull in a namespace without a policy costs one signal read and one
dictionary lookup.

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
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from moorage.blocking.kinds import subject_to_policy
from moorage.blocking.model import (BlockingFinding, PullPolicy, Refusal, ScanFacts,
                                    decide, decode_findings, is_cosign_tag, refusal_message)
from moorage.blocking.store import MARK_SECONDS, BlockingStore, policy_of
from moorage.db.changes import signal_of
from moorage.db.metadata import StoredManifest
from moorage.oci.errors import RegistryError
from moorage.oci.names import namespace_of
from moorage.registry.events import Event, EventBus, current_actor

log = logging.getLogger("moorage.blocking")
_MEMO_LIMIT = 20_000
# The Harbor scanner adapters pull with tokens the instance issues to "scanner:<adapter>" (no
# account name holds a colon): an image blocked as unscanned must stay scannable.
SCANNER_ACTORS = "scanner:"
_NOBODY: frozenset[str] = frozenset()


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
        # what was decided, filed under the commit signal's value (db/changes.py); without a
        # value (no signal, or PostgreSQL outside a request) nothing is kept
        self._signal = signal_of(store.engine)
        self._namespaces: dict[str, tuple[bytes, PullPolicy | None, frozenset[str]]] = {}
        self._decisions: dict[tuple[str, str], tuple[bytes, PullPolicy, float,
                                                     Refusal | None]] = {}
        self._recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pull-blocked")

    def __call__(self, repository: str, stored: StoredManifest, tag: str | None) -> None:
        version = self._signal.current() if self._signal is not None else None
        namespace = namespace_of(repository)
        policy, exempt = self._namespace(namespace, version)
        if policy is None or not policy.active or is_cosign_tag(tag) or \
                not self._subject(stored):
            return
        actor = current_actor()
        if actor in exempt or actor.startswith(SCANNER_ACTORS):
            return
        refusal = self._decided(policy, repository, stored.digest, version)
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

    # -- answers kept while nothing was committed (and no allowlist entry expired) -------
    def _namespace(self, namespace: str, version: bytes | None
                   ) -> tuple[PullPolicy | None, frozenset[str]]:
        """The namespace's policy (None: it has none) and its exempted usernames. Kept under
        the commit signal's value read before the query, like RawReader's answers."""
        found = self._namespaces.get(namespace)
        if found is not None and version is not None and found[0] == version:
            return found[1], found[2]
        row = self.store.policy_row(namespace)
        policy, exempt = self._policy(namespace, row, self.store.exempt_usernames(namespace)) \
            if row is not None else (None, _NOBODY)
        if version is not None:
            if len(self._namespaces) >= _MEMO_LIMIT:
                self._namespaces.clear()
            self._namespaces[namespace] = (version, policy, exempt)
        return policy, exempt

    def _decided(self, policy: PullPolicy, repository: str, digest: str,
                 version: bytes | None) -> Refusal | None:
        """`decision`, kept per image while the signal holds `version` (no commit anywhere:
        no policy, fact, signature or allowlist entry changed) and until the namespace's next
        allowlist expiry, the one change that comes with time rather than a commit."""
        now = self.clock()
        key = (repository, digest)
        found = self._decisions.get(key)
        if found is not None and version is not None and found[0] == version and \
                found[1] is policy and now < found[2]:
            return found[3]
        refusal = self.decision(policy, repository, digest)
        if version is not None:
            until = min((t for t in self._allowlist(policy.namespace).values()
                         if t is not None and t > now), default=math.inf) \
                if policy.severity is not None else math.inf
            if len(self._decisions) >= _MEMO_LIMIT:
                self._decisions.clear()
            self._decisions[key] = (version, policy, until, refusal)
        return refusal

    # -- memos of what cannot go stale -------------------------------------------------
    def _policy(self, namespace: str, row: Any, exempt: list[str]
                ) -> tuple[PullPolicy, frozenset[str]]:
        key = (namespace, tuple(row), tuple(exempt))
        found = self._policies.get(key)
        if found is None:
            if len(self._policies) >= _MEMO_LIMIT:
                self._policies.clear()
            policy = policy_of(namespace, row, exempt)
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
