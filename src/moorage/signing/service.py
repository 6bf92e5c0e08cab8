"""The signing service: who is trusted (`trust`, trust.py), signatures checked and written
(writer.py), and the stored verification of each signed manifest, recomputed when its inputs
change.

- Signing (`write_signatures`): the material a client signed, or a server-held key signed
  (`sign_with_server_key`), is checked against its public key, then written in the formats
  asked for: the legacy `sha256-<hex>.sig` manifest (signatures accumulate) and the Sigstore
  bundle referrer.
- Verification (`verify_now`): the candidates of a manifest (its `.sig` tag and its bundle
  referrers) checked by `verify.verify` against the keys and identities its namespace and the
  instance trust, stored per (repository, digest). Recomputed by jobs: `signing.verify` when a
  signature manifest is pushed or deleted (through /v2 by any client too), `signing.reverify`
  over a scope when a key or identity changes. `signature.verified` is announced when a stored
  result changes; `is_signed` answers from the stored result, never by verifying.

Blocking work (the database, RSA/ECDSA, scrypt) runs in worker threads: job handlers run in
the worker's threads, API handlers call through `asyncio.to_thread`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moorage.jobs.worker import JobContext, JobType, Worker
from moorage.oci import mediatypes as mt
from moorage.oci.names import namespace_of
from moorage.registry.events import Event
from moorage.registry.service import Registry
from moorage.signing import artifacts
from moorage.signing import keys as cosign_keys
from moorage.signing.errors import Missing, SigningError, Taken
from moorage.signing.signer import Material, MaterialError, check_material, sign_material, wants
from moorage.signing.store import INSTANCE, ResultRow, SigningStore
from moorage.signing.trust import MASTER_KEY_NEEDED, Trust
from moorage.signing.verify import (BUNDLE_MEDIA_TYPES, Candidate, TrustedIdentity,
                                    TrustedKey, TrustRoot, candidates_of, verify)
from moorage.signing.writer import SignatureWriter, read_blob
from moorage.store.keys import Keyring

log = logging.getLogger("moorage.signing")

VERIFY_JOB = "signing.verify"
REVERIFY_JOB = "signing.reverify"
ACTOR = "moorage-signing"
MAX_REFERRERS = 64  # bundle referrers of one image considered
SIG_TAG_RE = re.compile(r"^sha256-[0-9a-f]{64}\.sig$")  # cosign's legacy signature tags


@dataclass
class SigningService:
    registry: Registry
    store: SigningStore
    worker: Worker
    keyring: Keyring | None = None
    trust_root_path: str = ""
    _root: tuple[float, TrustRoot | None] | None = field(default=None, repr=False)
    trust: Trust = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.trust = Trust(self.store, self.keyring, self.reverify)

    @property
    def bus(self) -> Any:
        return self.registry.bus

    # -- signing ------------------------------------------------------------------------
    def sign_with_server_key(self, repository: str, digest: str, scope: str, name: str,
                             docker_reference: str, fmt: str) -> tuple[Material,
                                                                      cosign_keys.PublicKey]:
        """The material a server-held key signs (blocking: the caller is in a thread)."""
        pair = self.trust.server_key(scope, name)
        return sign_material(pair, docker_reference, repository, digest, fmt), pair.public

    async def write_signatures(self, repository: str, digest: str, material: Material,
                               public: cosign_keys.PublicKey, fmt: str) -> dict[str, Any]:
        """Check the material against `public`, then write the formats asked for; return
        what was written and the manifest's stored verification after it."""
        legacy, bundle = wants(fmt)
        image = await asyncio.to_thread(self.registry.get_manifest, repository, digest, [],
                                        pull=False)
        try:
            await asyncio.to_thread(check_material, material, public, image.digest, fmt)
        except MaterialError as exc:
            raise SigningError(str(exc)) from None
        written: dict[str, Any] = {}
        writer = SignatureWriter(self.registry)
        if legacy:
            written["cosign"] = await writer.legacy(repository, image.digest, material)
        if bundle:
            written["bundle"] = await writer.bundle(repository, image, material, public)
        self.bus.publish(Event("signature.written", repository, image.digest,
                               detail={"formats": sorted(written), "key_id": public.key_id}))
        result = await asyncio.to_thread(self.verify_now, repository, image.digest)
        return {"written": written, "result": result}

    # -- verification -------------------------------------------------------------------
    def candidates(self, repository: str, digest: str) -> list[tuple[str, Candidate]]:
        """(the signature manifest's digest, candidate) for each signature of the image."""
        def reader(d: str, max_bytes: int) -> bytes | None:
            return read_blob(self.registry, repository, d, max_bytes)

        out: list[tuple[str, Candidate]] = []
        tag = artifacts.signature_tag(digest)
        sig = self.registry.db.tag_digest(repository, tag)
        if sig is not None:
            stored = self.registry.db.manifest(sig)
            if stored is not None:
                out += [(sig, c) for c in candidates_of(stored.content, stored.media_type,
                                                        reader, source=f"{repository}:{tag}")]
        for ref in self._bundle_referrers(repository, digest):
            stored = self.registry.db.manifest(ref)
            if stored is not None:
                out += [(ref, c) for c in candidates_of(stored.content, stored.media_type,
                                                        reader, source=ref)]
        return out

    def _bundle_referrers(self, repository: str, digest: str) -> list[str]:
        """The digests of the image's referrers that are Sigstore bundles (any version)."""
        found = [r.digest for r in self.registry.db.referrers(repository, digest, None)
                 if r.artifact_type in BUNDLE_MEDIA_TYPES]
        return sorted(found)[:MAX_REFERRERS]

    def trust_root(self) -> TrustRoot | None:
        """The configured trusted root (signing_trusted_root), re-read when it changes."""
        if not self.trust_root_path:
            return None
        path = Path(self.trust_root_path)
        try:
            mtime = path.stat().st_mtime
            if self._root is None or self._root[0] != mtime:
                data = path.read_bytes()[:16 << 20]
                self._root = (mtime, TrustRoot.from_trusted_root_json(data))
        except (OSError, ValueError) as exc:
            log.warning("the trusted root %s cannot be read: %s", path, exc)
            self._root = (0.0, None)
        return self._root[1]

    def _inputs(self, repository: str, digest: str) -> tuple[Any, ...]:
        """What a verification depends on: the signature manifests found and the trusted
        keys and identities (ids; a revoked key drops out)."""
        namespace = namespace_of(repository)
        sig = self.registry.db.tag_digest(repository, artifacts.signature_tag(digest))
        return (sig, tuple(self._bundle_referrers(repository, digest)),
                tuple(k.id for k in self.store.trusted_keys(namespace)),
                tuple(i.id for i in self.store.trusted_identities(namespace)))

    def _compute(self, repository: str, digest: str) -> tuple[list[dict[str, Any]], int]:
        namespace = namespace_of(repository)
        found = self.candidates(repository, digest)
        # ids of their own kinds: a key's and an identity's database ids may be equal
        keys = [TrustedKey(f"key:{k.id}", k.name, k.scope, cosign_keys.load_public_key(
            k.public_pem.encode())) for k in self.store.trusted_keys(namespace)]
        identities = [TrustedIdentity(f"identity:{i.id}", i.subject, i.issuer, i.scope)
                      for i in self.store.trusted_identities(namespace)]
        root = self.trust_root() if identities else None
        verdicts = verify(digest, [c for _, c in found], keys, identities, root) \
            if found else []
        by_id = {k.id: k for k in keys}
        scopes = {i.id: i.scope for i in identities}
        shown = []
        for (manifest, _), v in zip(found, verdicts):
            key = by_id.get(v.key_id or "")
            shown.append({"verified": v.verified, "reason": v.reason, "format": v.format,
                          "source": v.source, "manifest": manifest,
                          "key_id": key.key.key_id if key else None,
                          "key": key.name if key else None,
                          "scope": key.scope if key else scopes.get(v.key_id or ""),
                          "signer": v.signer,
                          "signed_at": v.signed_at.isoformat() if v.signed_at else None})
        return shown, len(found)

    def verify_now(self, repository: str, digest: str) -> ResultRow | None:
        """Verify the image's signatures, store the result, announce a change. Blocking.

        Two verifications of one image may run at once (a push's job, a key's revocation
        job); the one that read older inputs could store last. So after storing, the inputs
        are read again and, if they changed meanwhile, the result is computed again: the
        last result stored is always of inputs at least as new as the last change."""
        old = self.store.result(repository, digest)
        for _ in range(5):
            before = self._inputs(repository, digest)
            shown, count = self._compute(repository, digest)
            if old is None and not count:
                return None  # never signed: nothing to store
            verified = any(v["verified"] for v in shown)
            signers = sorted({str(v["signer"]) for v in shown if v["verified"] and v["signer"]})
            self.store.store_result(repository, digest, verified, signers, shown, count)
            if self._inputs(repository, digest) == before:
                break
        if old is None or old.verified != verified or old.signers != signers or \
                _outcomes(old.verdicts) != _outcomes(shown):
            self.bus.publish(Event("signature.verified", repository, digest, actor=ACTOR,
                                   detail={"verified": verified, "signers": signers,
                                           "signatures": count}))
        return self.store.result(repository, digest)

    def is_signed(self, repository: str, digest: str) -> bool:
        """Whether the stored result says a trusted key or identity signed it."""
        return self.store.is_verified(repository, digest)

    def result(self, repository: str, digest: str) -> ResultRow | None:
        return self.store.result(repository, digest)

    # -- events and jobs ------------------------------------------------------------------
    def request(self, repository: str, digest: str) -> None:
        self.worker.enqueue(VERIFY_JOB, {"repository": repository, "digest": digest})

    def reverify(self, scope: str, why: str) -> int | None:
        return self.worker.enqueue(REVERIFY_JOB, {"scope": scope, "why": why})

    def on_event(self, event: Event) -> None:
        """Bus handler: a signature manifest pushed or deleted (a `.sig` tag, or a manifest
        with a subject) queues the verification of the image it signs; a deleted image
        loses its stored result."""
        if event.result != "success":
            return
        try:
            if event.action == "namespace.delete" and event.target.startswith("namespaces/"):
                self.store.forget_repositories(event.target.removeprefix("namespaces/"),
                                               whole_namespace=True)
                return
            if event.action == "delete" and event.repository and \
                    (event.detail or {}).get("repository"):
                self.store.forget_repositories(event.repository)
                return
        except Exception:  # noqa: BLE001 - the next verification of a re-pushed image fixes it
            log.exception("could not forget the results of %s", event.describe_target())
            return
        if not event.repository or event.action not in ("push", "delete"):
            return
        try:
            self._on_change(event)
        except Exception:  # never fail a push because a verification could not be queued
            log.exception("could not queue the verification after %s of %s",
                          event.action, event.describe_target())

    def _on_change(self, event: Event) -> None:
        repository = event.repository
        assert repository is not None
        if event.tag and SIG_TAG_RE.match(event.tag):
            self.request(repository, "sha256:" + event.tag[7:-4])
            return
        if not event.digest or event.tag and event.action == "delete":
            return
        subject = self.store.subject_of(event.digest)
        if subject is not None:
            self.request(repository, subject)
        if event.action == "delete":
            for digest in self.store.results_naming(repository, event.digest):
                self.request(repository, digest)
            self.store.forget(repository, event.digest)
        elif subject is None and event.media_type in mt.MANIFEST_TYPES and \
                self.registry.db.tag_digest(
                    repository, artifacts.signature_tag(event.digest)) is not None:
            self.request(repository, event.digest)  # an image pushed after its signature

    def verify_job(self, ctx: JobContext) -> dict[str, Any]:
        repository, digest = str(ctx.payload["repository"]), str(ctx.payload["digest"])
        row = self.verify_now(repository, digest)
        if row is None:
            return {"skipped": "no signatures"}
        ctx.log(f"{repository}@{digest}: {'verified' if row.verified else 'not verified'}")
        return {"verified": row.verified, "signers": row.signers}

    def reverify_job(self, ctx: JobContext) -> dict[str, Any]:
        scope = str(ctx.payload.get("scope") or INSTANCE)
        ctx.log(f"re-verifying the signed manifests of {scope}: {ctx.payload.get('why', '')}")
        targets = self.store.signed_in_scope(scope, list(BUNDLE_MEDIA_TYPES))
        changed = 0
        for n, (repository, digest) in enumerate(targets):
            ctx.check()
            before = self.store.result(repository, digest)
            try:
                after = self.verify_now(repository, digest)
            except Exception as exc:  # noqa: BLE001 - one bad manifest must not stop the rest
                ctx.log(f"{repository}@{digest}: {type(exc).__name__}: {exc}")
                continue
            if after is not None and (before is None or before.verified != after.verified):
                changed += 1
                ctx.log(f"{repository}@{digest}: now "
                        f"{'verified' if after.verified else 'not verified'}")
            ctx.progress(n + 1, len(targets))
        return {"scope": scope, "manifests": len(targets), "changed": changed}


def _outcomes(verdicts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted((str(v.get("source")), bool(v.get("verified")), str(v.get("reason")))
                  for v in verdicts)


def install(registry: Registry, worker: Worker, keyring: Keyring | None,
            trust_root_path: str = "") -> SigningService:
    """Wire signing in (app.py calls this only when the edition has it): the tables' store,
    the job types, the subscription to pushes and deletes."""
    service = SigningService(registry, SigningStore(registry.db.engine), worker, keyring,
                             trust_root_path)
    worker.register(JobType(VERIFY_JOB, service.verify_job, concurrency=2,
                            timeout_seconds=600, max_attempts=3))
    worker.register(JobType(REVERIFY_JOB, service.reverify_job, concurrency=1,
                            timeout_seconds=6 * 3600, max_attempts=2))
    registry.bus.subscribe(service.on_event)
    return service


__all__ = ["MASTER_KEY_NEEDED", "Missing", "REVERIFY_JOB", "SigningError", "SigningService",
           "Taken", "Trust", "VERIFY_JOB", "install"]
