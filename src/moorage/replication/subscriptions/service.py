"""Artifact subscriptions: follow one upstream repository into a local one.

A run lists the upstream's tags (page by page, at most MAX_TAGS), keeps those the filter
matches (never cosign's `.sig/.att/.sbom` tags nor referrers-index tags: they travel with
their subject), and for each asks the upstream for its digest with one HEAD. A tag whose
digest the local tag already names costs nothing more; a new or moved one is copied whole
with the copy engine (replication/copy.py: children, referrers, signature tags), by digest,
and the local tag is pointed at it. With keep-newest-N only the N newest matching tags are
copied, and the local tags this subscription brought in that fall out of the N are deleted
(only while they still name the digest the subscription set: a user's push since makes
the tag the user's; a user's own tags are never looked at).

Runs are executions of a replication rule's shape, each one job of type `subscription` in
the durable queue with a timeout and bounded attempts; this service inherits that
bookkeeping (reconciling, logs, failed attempts) and the remote client's configuration from
ReplicationService, and brings its own management, schedule and copy loop.
"""

from __future__ import annotations

from typing import Any

from moorage.access.editions import Edition, EditionError
from moorage.access.errors import Invalid
from moorage.jobs.worker import JobContext, Worker
from moorage.oci.errors import RegistryError
from moorage.registry.events import Event, EventBus
from moorage.remote import RemoteConfig, RemoteError
from moorage.replication.copy import ATTACHED_SUFFIXES, Copier, CopyError, Progress, \
    is_fallback_tag
from moorage.replication.endpoints import LocalEndpoint, RemoteEndpoint
from moorage.replication.secrets import seal
from moorage.replication.service import ReplicationService, Tuning, _Run
from moorage.replication.store import Execution
from moorage.replication.subscriptions.model import Subscription, check_fields, newest_first
from moorage.replication.subscriptions.store import QuotaReached, SubscriptionStore
from moorage.store.keys import Keyring


JOB = "subscription"
QUOTA = "artifact_subscriptions"
MAX_TAGS = 10_000  # upstream tags one run looks at
FIELDS = ("name", "url", "upstream", "username", "ca_pem", "insecure", "repository",
          "filter_kind", "filter", "cron", "keep_newest", "enabled")


def _attached(tag: str) -> bool:
    """cosign's `sha256-<hex>.sig` (and .att, .sbom): it comes with its subject."""
    head, _, suffix = tag.rpartition(".")
    return suffix in ATTACHED_SUFFIXES and is_fallback_tag(head)


class SubscriptionService(ReplicationService):
    job = JOB
    def __init__(self, store: SubscriptionStore, registry: Any, worker: Worker,
                 edition: Edition, bus: EventBus, keyring: Keyring | None,
                 tuning: Tuning) -> None:
        super().__init__(store, registry, worker, edition, bus, keyring,  # type: ignore[arg-type]
                         tuning)
        self.store: SubscriptionStore = store  # type: ignore[assignment]

    # -- management ------------------------------------------------------------------------
    def require(self) -> None:
        if not self.edition.quota(QUOTA):
            raise EditionError("artifact subscriptions need the basic edition or higher; "
                               f"this instance runs the {self.edition.name} edition",
                               "feature")

    def create(self, fields: dict[str, Any], password: str | None,  # type: ignore[override]
               actor: str) -> Subscription:
        self.require()
        values = self._values(fields, password, True)
        try:
            found = self.store.add({**values, "updated_by": actor}, self.edition.quota(QUOTA))
        except QuotaReached as full:
            self.edition.check_quota(QUOTA, full.in_use)
            raise  # not reached: check_quota refuses
        self._schedule(found)
        return found

    def update(self, subscription_id: int, changes: dict[str, Any],  # type: ignore[override]
               password: str | None, clear_password: bool, actor: str) -> Subscription:
        self.require()
        current = self.store.get(subscription_id)
        merged = {name: getattr(current, name) for name in FIELDS}
        merged.update({k: v for k, v in changes.items() if k in merged})
        replace = password is not None or clear_password or not current.has_password
        values = self._values(merged, None if clear_password else password, replace)
        found = self.store.update(subscription_id, {**values, "updated_by": actor})
        self._schedule(found)
        return found

    def delete(self, subscription_id: int) -> None:
        self.require()
        self._unschedule(self.store.get(subscription_id))  # type: ignore[arg-type]
        self.store.delete(subscription_id)

    def _values(self, fields: dict[str, Any], password: str | None,
                replace_secret: bool) -> dict[str, Any]:
        """The row to store, once every field is checked; the password sealed."""
        check_fields(fields["name"], fields["upstream"], fields["repository"],
                     fields["filter_kind"], fields["filter"], fields["cron"],
                     fields["keep_newest"])
        try:  # the URL and TLS settings now, not at the first run
            RemoteConfig(fields["url"], insecure=bool(fields["insecure"])).check()
        except RemoteError as exc:
            raise Invalid(str(exc)) from None
        if fields.get("ca_pem") and "-----BEGIN CERTIFICATE-----" not in fields["ca_pem"]:
            raise Invalid("ca_pem is a PEM bundle of certificates")
        row = {name: fields[name] for name in FIELDS}
        row.update(url=fields["url"].rstrip("/"), username=fields.get("username") or None,
                   ca_pem=fields.get("ca_pem") or None)
        if replace_secret:
            if (row["username"] is None) != (password is None):
                raise Invalid("give both a username and a password for the upstream "
                              "registry, or neither")
            row["secret"] = None if password is None else seal(password, self.keyring)
        return row

    # -- runs: a rule's (enqueued as `subscription` jobs, scheduled as `subscription:<id>`)
    def on_event(self, event: Event) -> None:
        """Subscriptions follow the upstream on their schedule, not this instance's pushes."""

    def _runner(self, rule: Any, execution: Execution, ctx: JobContext) -> _Run:
        return _Follow(self, rule, execution, ctx)

    def _announce_result(self, rule: Any, execution_id: int, status: str, reason: str,
                         progress: Progress | None = None) -> None:
        detail: dict[str, Any] = {"subscription": rule.name, "execution": execution_id,
                                  "upstream": f"{rule.url}/{rule.upstream}",
                                  "repository": rule.repository}
        if progress is not None:
            detail.update(artifacts=progress.artifacts_done, bytes=progress.bytes)
        if reason:
            detail["reason"] = reason[:500]
        self.bus.publish(Event(f"subscription.{status}", target=f"subscriptions/{rule.name}",
                               result="success" if status == "succeeded" else "failure",
                               actor=rule.actor, detail=detail))


class _Follow(_Run):
    """One attempt of one run: list, filter, copy what is new or moved, prune."""

    rule: Subscription  # type: ignore[assignment]

    async def run(self) -> None:
        service: SubscriptionService = self.service  # type: ignore[assignment]
        sub, store = self.rule, service.store
        async with service.client_factory(service.remote_config(sub)) as client:  # type: ignore[arg-type]
            upstream = RemoteEndpoint(client, sub.url)
            local = LocalEndpoint(service.registry, owner=sub.actor)
            copier = Copier(upstream, local, on_progress=self._on_progress,
                            log_line=self.ctx.log, check=self.ctx.check)
            self.progress = copier.progress
            listed: list[str] = []
            async for tag in client.tags(sub.upstream):
                if len(listed) >= MAX_TAGS:
                    self.ctx.log(f"more than {MAX_TAGS} upstream tags: the rest is not read")
                    break
                listed.append(tag)
            matching = [t for t in listed if not _attached(t) and not is_fallback_tag(t)
                        and len(t) <= 128 and sub.tag_filter.matches(t)]
            brought = store.brought(sub.id)
            seqs = {tag: seq for tag, (_, seq) in brought.items()}
            ordered = newest_first(sub, matching, seqs)
            wanted = ordered[:sub.keep_newest] if sub.keep_newest else ordered
            self.ctx.log(f"{sub.url}/{sub.upstream}: {len(listed)} tag(s), {len(matching)} "
                         f"match {sub.filter_kind} {sub.filter!r}, {len(wanted)} followed")
            next_seq = max(seqs.values(), default=0) + 1
            unchanged = 0
            for tag in reversed(wanted):  # oldest first: the newest gets the highest seq
                try:
                    info = await upstream.head_manifest(sub.upstream, tag)
                    if info is None:
                        self._error(f"{sub.upstream}:{tag}", "gone upstream since the listing")
                        continue
                    here = await local.head_manifest(sub.repository, tag)
                    if here is not None and here.digest == info.digest:
                        unchanged += 1
                        continue
                    result = await copier.copy(sub.upstream, info.digest, sub.repository, tag)
                except (RemoteError, RegistryError, CopyError) as exc:
                    self._error(f"{sub.upstream}:{tag}", str(exc)[:2000] or type(exc).__name__)
                    continue
                store.remember(sub.id, tag, result.digest, next_seq)
                next_seq += 1
                self.copied += 1
                self.ctx.log(f"{sub.repository}:{tag} -> {result.digest}"
                             f"{' (moved)' if here is not None else ''}")
            if sub.keep_newest and not self.errors:
                await self._prune(local, set(wanted))
            self.ctx.log(f"done: {self.copied} tag(s) copied, {unchanged} unchanged, "
                         f"{self.progress.bytes} bytes")

    async def _prune(self, local: LocalEndpoint, keep: set[str]) -> None:
        """Delete the local tags this subscription brought in that are not kept, while they
        still name the digest it set."""
        sub, store = self.rule, self.service.store
        for tag, (digest, _) in sorted(store.brought(sub.id).items()):  # type: ignore[attr-defined]
            if tag in keep:
                continue
            here = await local.head_manifest(sub.repository, tag)
            if here is not None and here.digest == digest:
                await local.delete_tag(sub.repository, tag)
                self.ctx.log(f"{sub.repository}:{tag} deleted (not among the newest "
                             f"{sub.keep_newest})")
            elif here is not None:
                self.ctx.log(f"{sub.repository}:{tag} was pushed over since: left alone")
            store.forget(sub.id, tag)  # type: ignore[attr-defined]
