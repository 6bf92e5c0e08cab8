"""The signing service: trusted keys and identities, signatures written through the registry,
and the stored verification of each signed manifest, recomputed when its inputs change.

- Keys (`add_public_key`, `import_private_key`, `generate_server_key`, `revoke_key`,
  `delete_key`) and keyless identities belong to a namespace or to the instance. A private
  key the server holds is sealed with the master key; without one (encryption at rest off)
  it is refused, never stored in the clear.
- Signing (`write_signatures`): the legacy `sha256-<hex>.sig` manifest (a layer added to the
  one already there: signatures accumulate) and the Sigstore bundle referrer, written through
  `Registry.push_blob`/`put_manifest` like a client's push. The read-modify-write of the
  `.sig` tag runs under the core's per-id lock (the upload lock: a file lock on one machine,
  a Redis lease across replicas), so two signers at once both keep their layer.
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
import base64
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Sequence
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
from moorage.signing.signer import Material, MaterialError, check_material, sign_material, wants
from moorage.signing.store import INSTANCE, IdentityRow, KeyRow, ResultRow, SigningStore
from moorage.signing.store import sealing_aad
from moorage.signing.verify import (BUNDLE_MEDIA_TYPES, MAX_LAYERS, Candidate,
                                    TrustedIdentity, TrustedKey, TrustRoot, candidates_of,
                                    verify)
from moorage.store.keys import Keyring
from moorage.store.sealed import seal, unseal

log = logging.getLogger("moorage.signing")

VERIFY_JOB = "signing.verify"
REVERIFY_JOB = "signing.reverify"
ACTOR = "moorage-signing"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
SIG_TAG_RE = re.compile(r"^sha256-[0-9a-f]{64}\.sig$")
MAX_SIGNATURE_LAYERS = MAX_LAYERS  # signatures on one `.sig` manifest (what the verifier reads)
MAX_LAYER_BYTES = 1 << 20  # one signature layer or bundle read back
MAX_REFERRERS = 64  # bundle referrers of one image considered
MAX_IDENTITY = 512
MASTER_KEY_NEEDED = ("a server-held private key needs encryption at rest: set `encryption = "
                     "true` (MOORAGE_ENCRYPTION) with a master key (`master_key_file`, "
                     "MOORAGE_MASTER_KEY_FILE, or MOORAGE_MASTER_KEY); it is never stored "
                     "in the clear")


class SigningError(ValueError):
    """A request the service refuses; the message says why (400 at the API)."""


class Missing(LookupError):
    """A key, identity or image that does not exist (404 at the API)."""


class Taken(ValueError):
    """A name already used in its scope (409 at the API)."""


@dataclass
class SigningService:
    registry: Registry
    store: SigningStore
    worker: Worker
    keyring: Keyring | None = None
    trust_root_path: str = ""
    _root: tuple[float, TrustRoot | None] | None = field(default=None, repr=False)

    @property
    def bus(self) -> Any:
        return self.registry.bus

    # -- keys ---------------------------------------------------------------------------
    @staticmethod
    def _check_name(name: str) -> None:
        if not NAME_RE.match(name):
            raise SigningError(f"invalid key name {name[:80]!r}: lowercase letters, digits "
                               f"and . _ -, at most 64 characters")

    def _add(self, scope: str, name: str, public: cosign_keys.PublicKey,
             sealed: bytes | None, by: str) -> KeyRow:
        from moorage.signing.store import Conflict, NoNamespace

        try:
            row = self.store.add_key(scope, name, public.algorithm, public.key_id,
                                     public.fingerprint, public.pem.decode(), sealed, by)
        except Conflict as exc:
            raise Taken(str(exc)) from None
        except NoNamespace as exc:
            raise Missing(str(exc)) from None
        self.reverify(scope, f"key {name} added")
        return row

    def add_public_key(self, scope: str, name: str, pem: bytes, by: str) -> KeyRow:
        """Trust a public key alone (for images signed elsewhere)."""
        self._check_name(name)
        try:
            public = cosign_keys.load_public_key(pem)
        except cosign_keys.KeyFormatError as exc:
            raise SigningError(str(exc)) from None
        return self._add(scope, name, public, None, by)

    def _sealed(self, scope: str, name: str, pair: cosign_keys.KeyPair) -> bytes:
        if self.keyring is None:
            raise SigningError(MASTER_KEY_NEEDED)
        return seal(pair.pkcs8(), sealing_aad(scope, name), self.keyring)

    def import_private_key(self, scope: str, name: str, pem: bytes, password: str | None,
                           by: str) -> KeyRow:
        """Hold a cosign private key (encrypted with `password`, or plain) on the server,
        sealed; its public half is trusted. Blocking (scrypt)."""
        self._check_name(name)
        if self.keyring is None:
            raise SigningError(MASTER_KEY_NEEDED)
        try:
            pair = cosign_keys.read_private_key(pem, password)
        except cosign_keys.KeyFormatError as exc:  # the message never holds key material
            raise SigningError(str(exc)) from None
        return self._add(scope, name, pair.public, self._sealed(scope, name, pair), by)

    def generate_server_key(self, scope: str, name: str, by: str) -> KeyRow:
        """A new ECDSA P-256 key pair made and held by the server (sealed)."""
        self._check_name(name)
        if self.keyring is None:
            raise SigningError(MASTER_KEY_NEEDED)
        pair = cosign_keys.KeyPair.generate()
        return self._add(scope, name, pair.public, self._sealed(scope, name, pair), by)

    def key(self, scope: str, name: str) -> KeyRow:
        found = self.store.key(scope, name)
        if found is None:
            raise Missing(f"no key named {name} in {scope}")
        return found

    def revoke_key(self, scope: str, name: str, by: str) -> KeyRow:
        before = self.key(scope, name)
        row = self.store.revoke_key(scope, name, by)
        assert row is not None
        if not before.revoked:
            self.reverify(scope, f"key {name} revoked")
        return row

    def delete_key(self, scope: str, name: str) -> KeyRow:
        row = self.key(scope, name)
        self.store.delete_key(scope, name)
        self.reverify(scope, f"key {name} deleted")
        return row

    def server_key(self, scope: str, name: str) -> cosign_keys.KeyPair:
        """The private key the server holds under this name (unsealed, in memory only)."""
        row = self.key(scope, name)
        if row.revoked:
            raise SigningError(f"key {name} of {scope} is revoked")
        sealed = self.store.sealed_private(scope, name)
        if sealed is None:
            raise SigningError(f"key {name} of {scope} is a public key alone: the server "
                               f"holds no private key to sign with")
        try:
            der = unseal(sealed, sealing_aad(scope, name), self.keyring,
                         f"the private key {name} of {scope}")
        except ValueError as exc:
            raise SigningError(str(exc)) from None
        pem = b"-----BEGIN PRIVATE KEY-----\n" + base64.encodebytes(der) + \
            b"-----END PRIVATE KEY-----\n"
        return cosign_keys.import_private_key(pem)

    # -- identities ---------------------------------------------------------------------
    def add_identity(self, scope: str, subject: str, issuer: str, by: str) -> IdentityRow:
        from moorage.signing.store import Conflict, NoNamespace

        subject, issuer = subject.strip(), issuer.strip()
        if not subject or not issuer or len(subject) > MAX_IDENTITY or \
                len(issuer) > MAX_IDENTITY:
            raise SigningError(f"an identity needs a subject and an OIDC issuer, each at most "
                               f"{MAX_IDENTITY} characters")
        try:
            row = self.store.add_identity(scope, subject, issuer, by)
        except Conflict as exc:
            raise Taken(str(exc)) from None
        except NoNamespace as exc:
            raise Missing(str(exc)) from None
        self.reverify(scope, f"identity {subject} added")
        return row

    def remove_identity(self, scope: str, identity_id: int) -> IdentityRow:
        row = self.store.remove_identity(scope, identity_id)
        if row is None:
            raise Missing(f"no identity {identity_id} in {scope}")
        self.reverify(scope, f"identity {row.subject} removed")
        return row

    # -- signing ------------------------------------------------------------------------
    def sign_with_server_key(self, repository: str, digest: str, scope: str, name: str,
                             docker_reference: str, fmt: str) -> tuple[Material,
                                                                      cosign_keys.PublicKey]:
        """The material a server-held key signs (blocking: the caller is in a thread)."""
        pair = self.server_key(scope, name)
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
        if legacy:
            written["cosign"] = await self._write_legacy(repository, image.digest, material)
        if bundle:
            written["bundle"] = await self._write_bundle(repository, image, material, public)
        self.bus.publish(Event("signature.written", repository, image.digest,
                               detail={"formats": sorted(written), "key_id": public.key_id}))
        result = await asyncio.to_thread(self.verify_now, repository, image.digest)
        return {"written": written, "result": result}

    async def _push_blobs(self, repository: str, blobs: Sequence[artifacts.Blob]) -> None:
        for blob in blobs:
            have = await asyncio.to_thread(self.registry.db.blob_size_in_repository,
                                           repository, blob.digest)
            if have == blob.size:
                continue
            await self.registry.push_blob(repository, blob.digest, _once(blob.data),
                                          blob.size)

    async def _write_legacy(self, repository: str, digest: str,
                            material: Material) -> dict[str, Any]:
        tag = artifacts.signature_tag(digest)
        layer = artifacts.legacy_signature_layer(
            material.payload, artifacts.legacy_layer_annotations(material.payload_signature))
        lock_id = "signature-" + hashlib.sha256(f"{repository}\0{tag}".encode()).hexdigest()
        async with self.registry.uploads.upload_lock.hold(lock_id, wait=300) as lease:
            layers = await asyncio.to_thread(self._signature_layers, repository, tag)
            if any(x.digest == layer.digest and x.annotations == layer.annotations
                   for x in layers):
                lease.end()
                return {"tag": tag, "layers": len(layers)}
            if len(layers) >= MAX_SIGNATURE_LAYERS:
                lease.end()
                raise SigningError(f"{repository}:{tag} holds {len(layers)} signatures "
                                   f"already (at most {MAX_SIGNATURE_LAYERS})")
            artifact = artifacts.legacy_signature_manifest([*layers, layer])
            await self._push_blobs(repository, artifact.blobs)
            lease.check()
            pushed = await asyncio.to_thread(self.registry.put_manifest, repository, tag,
                                             artifact.manifest, artifact.media_type)
            lease.end()
        return {"tag": tag, "manifest": pushed.digest, "layers": len(layers) + 1}

    def _signature_layers(self, repository: str, tag: str) -> list[artifacts.Blob]:
        """The layers of the `.sig` manifest there now, with their bytes (to add one)."""
        current = self.registry.db.tag_digest(repository, tag)
        if current is None:
            return []
        stored = self.registry.get_manifest(repository, current, [], pull=False)
        try:
            layers = json.loads(stored.content).get("layers") or []
        except (ValueError, AttributeError):
            raise SigningError(f"{repository}:{tag} is not a signature manifest") from None
        out = []
        for layer in layers[:MAX_SIGNATURE_LAYERS]:
            size = layer.get("size")
            data = self._read_blob(repository, layer.get("digest"), MAX_LAYER_BYTES) \
                if type(size) is int else None
            if data is not None and len(data) != size:
                data = None
            if data is None:
                raise SigningError(f"{repository}:{tag} has a layer that cannot be read")
            notes = layer.get("annotations")
            out.append(artifacts.Blob(str(layer.get("mediaType", "")), data,
                                      dict(notes) if isinstance(notes, dict) else None))
        return out

    async def _write_bundle(self, repository: str, image: Any, material: Material,
                            public: cosign_keys.PublicKey) -> dict[str, Any]:
        bundle = artifacts.sigstore_bundle(material.statement, material.statement_signature,
                                           public)
        artifact = artifacts.bundle_referrer(
            artifacts.Descriptor(image.media_type, image.digest, image.size), bundle)
        await self._push_blobs(repository, artifact.blobs)
        digest = "sha256:" + hashlib.sha256(artifact.manifest).hexdigest()
        pushed = await asyncio.to_thread(self.registry.put_manifest, repository, digest,
                                         artifact.manifest, artifact.media_type)
        return {"manifest": pushed.digest}

    # -- verification -------------------------------------------------------------------
    def _read_blob(self, repository: str, digest: object, max_bytes: int) -> bytes | None:
        """A blob the repository may read, if it is at most `max_bytes` (and
        MAX_LAYER_BYTES); None otherwise. Its digest is checked."""
        if not isinstance(digest, str):
            return None
        try:
            size = self.registry.db.blob_size_in_repository(repository, digest)
            if size is None or size > min(max_bytes, MAX_LAYER_BYTES):
                return None
            data = b"".join(self.registry.store.read(digest))
        except Exception:  # noqa: BLE001 - an unreadable blob is a candidate that fails
            return None
        if len(data) != size or "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            return None
        return data

    def candidates(self, repository: str, digest: str) -> list[tuple[str, Candidate]]:
        """(the signature manifest's digest, candidate) for each signature of the image."""
        def reader(d: str, max_bytes: int) -> bytes | None:
            return self._read_blob(repository, d, max_bytes)

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


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


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
           "Taken", "VERIFY_JOB", "install"]
