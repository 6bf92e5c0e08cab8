"""The signing tables: trusted keys and identities per scope, and stored verification results.

A scope is a namespace's name, or `INSTANCE` for the keys every namespace trusts (stored as
"" with no namespace id, so that no namespace name can collide with it). A key's private
half, when the server holds one, is only ever stored sealed with the master key
(`store/sealed.py`, bound to the key's scope and name): this module refuses to write
anything else, and rows handed out say whether there is one, never what it is.

Blocking (SQLAlchemy): call from worker threads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from moorage.db.schema import namespaces, repositories, manifests, tags
from moorage.db.schema import repository_manifests
from moorage.db.schema import signature_results as _R
from moorage.db.schema import signing_identities as _I
from moorage.db.schema import signing_keys as _K
from moorage.store.sealed import is_sealed

INSTANCE = "instance"  # the scope name callers use; stored as ""


class Conflict(ValueError):
    """A name already taken in its scope."""


class NoNamespace(ValueError):
    """A scope that names no namespace."""


def _stored(scope: str) -> str:
    return "" if scope == INSTANCE else scope


def _shown(stored: str) -> str:
    return stored or INSTANCE


def sealing_aad(scope: str, name: str) -> bytes:
    """What a server-held key's sealed bytes are bound to: its scope and name."""
    return b"moorage/signing-key\0" + _stored(scope).encode() + b"\0" + name.encode()


@dataclass(frozen=True)
class KeyRow:
    id: int
    scope: str
    name: str
    algorithm: str
    key_id: str
    fingerprint: str
    public_pem: str
    server_held: bool
    created_at: float
    created_by: str
    revoked_at: float | None
    revoked_by: str | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class IdentityRow:
    id: int
    scope: str
    subject: str
    issuer: str
    created_at: float
    created_by: str


@dataclass(frozen=True)
class ResultRow:
    repository: str
    digest: str
    verified: bool
    signers: list[str]
    verdicts: list[dict[str, Any]]
    signatures: int
    computed_at: float


_KEY_COLUMNS = (_K.c.id, _K.c.scope, _K.c.name, _K.c.algorithm, _K.c.key_id,
                _K.c.fingerprint, _K.c.public_pem,
                _K.c.private_sealed.isnot(None).label("server_held"), _K.c.created_at,
                _K.c.created_by, _K.c.revoked_at, _K.c.revoked_by)


def _key(r: Any) -> KeyRow:
    return KeyRow(r.id, _shown(r.scope), r.name, r.algorithm, r.key_id, r.fingerprint,
                  r.public_pem, bool(r.server_held), r.created_at, r.created_by,
                  r.revoked_at, r.revoked_by)


def _identity(r: Any) -> IdentityRow:
    return IdentityRow(r.id, _shown(r.scope), r.subject, r.issuer, r.created_at,
                       r.created_by)


def _result(r: Any) -> ResultRow:
    return ResultRow(r.repository, r.digest, bool(r.verified), json.loads(r.signers),
                     json.loads(r.verdicts), r.signatures, r.computed_at)


class SigningStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _namespace_id(self, conn: Any, scope: str) -> int | None:
        if scope == INSTANCE:
            return None
        found = conn.execute(select(namespaces.c.id).where(namespaces.c.name == scope)).scalar()
        if found is None:
            raise NoNamespace(f"namespace {scope} does not exist")
        return int(found)

    # -- keys -----------------------------------------------------------------------------
    def keys(self, scope: str | None = None) -> list[KeyRow]:
        query = select(*_KEY_COLUMNS).order_by(_K.c.scope, _K.c.name)
        if scope is not None:
            query = query.where(_K.c.scope == _stored(scope))
        with self.engine.connect() as conn:
            return [_key(r) for r in conn.execute(query)]

    def trusted_keys(self, namespace: str) -> list[KeyRow]:
        """The keys not revoked of a namespace and of the instance."""
        with self.engine.connect() as conn:
            return [_key(r) for r in conn.execute(
                select(*_KEY_COLUMNS).where(_K.c.scope.in_(["", namespace]),
                                            _K.c.revoked_at.is_(None)).order_by(_K.c.id))]

    def key(self, scope: str, name: str) -> KeyRow | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(*_KEY_COLUMNS).where(
                _K.c.scope == _stored(scope), _K.c.name == name)).first()
        return _key(r) if r else None

    def sealed_private(self, scope: str, name: str) -> bytes | None:
        with self.engine.connect() as conn:
            return conn.execute(select(_K.c.private_sealed).where(
                _K.c.scope == _stored(scope), _K.c.name == name)).scalar()

    def add_key(self, scope: str, name: str, algorithm: str, key_id: str, fingerprint: str,
                public_pem: str, private_sealed: bytes | None, by: str) -> KeyRow:
        if private_sealed is not None and not is_sealed(private_sealed):
            raise ValueError("a private key is only ever stored sealed with the master key")
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(_K).values(
                    scope=_stored(scope), namespace_id=self._namespace_id(conn, scope),
                    name=name, algorithm=algorithm, key_id=key_id, fingerprint=fingerprint,
                    public_pem=public_pem, private_sealed=private_sealed,
                    created_at=time.time(), created_by=by))
        except IntegrityError:
            raise Conflict(f"a key named {name} already exists in {scope}") from None
        found = self.key(scope, name)
        assert found is not None
        return found

    def revoke_key(self, scope: str, name: str, by: str) -> KeyRow | None:
        with self.engine.begin() as conn:
            conn.execute(update(_K).where(_K.c.scope == _stored(scope), _K.c.name == name,
                                          _K.c.revoked_at.is_(None))
                         .values(revoked_at=time.time(), revoked_by=by))
        return self.key(scope, name)

    def delete_key(self, scope: str, name: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(_K).where(
                _K.c.scope == _stored(scope), _K.c.name == name)).rowcount)

    # -- identities ---------------------------------------------------------------------
    def identities(self, scope: str | None = None) -> list[IdentityRow]:
        query = select(_I).order_by(_I.c.scope, _I.c.id)
        if scope is not None:
            query = query.where(_I.c.scope == _stored(scope))
        with self.engine.connect() as conn:
            return [_identity(r) for r in conn.execute(query)]

    def trusted_identities(self, namespace: str) -> list[IdentityRow]:
        with self.engine.connect() as conn:
            return [_identity(r) for r in conn.execute(
                select(_I).where(_I.c.scope.in_(["", namespace])).order_by(_I.c.id))]

    def add_identity(self, scope: str, subject: str, issuer: str, by: str) -> IdentityRow:
        try:
            with self.engine.begin() as conn:
                new_id = conn.execute(insert(_I).values(
                    scope=_stored(scope), namespace_id=self._namespace_id(conn, scope),
                    subject=subject, issuer=issuer, created_at=time.time(),
                    created_by=by)).inserted_primary_key[0]
        except IntegrityError:
            raise Conflict(f"{subject} ({issuer}) is already trusted in {scope}") from None
        return next(i for i in self.identities(scope) if i.id == new_id)

    def remove_identity(self, scope: str, identity_id: int) -> IdentityRow | None:
        found = next((i for i in self.identities(scope) if i.id == identity_id), None)
        if found is not None:
            with self.engine.begin() as conn:
                conn.execute(delete(_I).where(_I.c.id == identity_id))
        return found

    # -- stored results -----------------------------------------------------------------
    def result(self, repository: str, digest: str) -> ResultRow | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(_R).where(_R.c.repository == repository,
                                              _R.c.digest == digest)).first()
        return _result(r) if r else None

    def results(self, repository: str, digests: Iterable[str]) -> dict[str, ResultRow]:
        wanted = list(dict.fromkeys(digests))[:1000]
        if not wanted:
            return {}
        with self.engine.connect() as conn:
            return {r.digest: _result(r) for r in conn.execute(select(_R).where(
                _R.c.repository == repository, _R.c.digest.in_(wanted)))}

    def is_verified(self, repository: str, digest: str) -> bool:
        with self.engine.connect() as conn:
            return bool(conn.execute(select(_R.c.verified).where(
                _R.c.repository == repository, _R.c.digest == digest)).scalar())

    def store_result(self, repository: str, digest: str, verified: bool, signers: list[str],
                     verdicts: list[dict[str, Any]], signatures: int) -> ResultRow | None:
        """Write (replace) the stored result; the one it replaced (None if none). A digest
        no longer stored (deleted meanwhile) is skipped."""
        values = dict(verified=verified, signers=json.dumps(signers),
                      verdicts=json.dumps(verdicts), signatures=signatures,
                      computed_at=time.time())
        try:
            return self._store(repository, digest, values)
        except IntegrityError:  # another worker stored its first result meanwhile: replace it
            return self._store(repository, digest, values)

    def _store(self, repository: str, digest: str, values: dict[str, Any]) -> ResultRow | None:
        with self.engine.begin() as conn:
            old = conn.execute(select(_R).where(_R.c.repository == repository,
                                                _R.c.digest == digest)).first()
            if old is not None:
                conn.execute(update(_R).where(_R.c.repository == repository,
                                              _R.c.digest == digest).values(**values))
            elif conn.execute(select(manifests.c.digest).where(
                    manifests.c.digest == digest)).first() is not None:
                conn.execute(insert(_R).values(repository=repository, digest=digest,
                                               **values))
        return _result(old) if old is not None else None

    def subject_of(self, digest: str) -> str | None:
        """The manifest's `subject` (what it refers to), read from its column alone: asked on
        every push, so the manifest's bytes are not read."""
        with self.engine.connect() as conn:
            return conn.execute(select(manifests.c.subject).where(
                manifests.c.digest == digest)).scalar()

    def forget(self, repository: str, digest: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(_R).where(_R.c.repository == repository,
                                          _R.c.digest == digest))

    def forget_repositories(self, name: str, whole_namespace: bool = False) -> int:
        """Drop the stored results of a deleted repository (or of every repository of a
        deleted namespace): a repository made again under that name starts unsigned."""
        where = _R.c.repository == name
        if whole_namespace:
            where = or_(where, _R.c.repository.like(f"{_like(name)}/%", escape="\\"))
        with self.engine.begin() as conn:
            return int(conn.execute(delete(_R).where(where)).rowcount or 0)

    def results_naming(self, repository: str, source_digest: str) -> list[str]:
        """Digests in `repository` whose stored verdicts came from `source_digest` (a deleted
        referrer or signature manifest)."""
        with self.engine.connect() as conn:
            return [r.digest for r in conn.execute(select(_R.c.digest).where(
                _R.c.repository == repository, _R.c.verdicts.contains(source_digest)))]

    # -- what a re-verification covers --------------------------------------------------------
    def signed_in_scope(self, scope: str, bundle_types: list[str], limit: int = 100_000
                        ) -> list[tuple[str, str]]:
        """(repository, digest) of every manifest of the scope (a namespace, or the whole
        instance) with a `.sig` tag or a bundle referrer, or with a stored result."""
        found: dict[tuple[str, str], None] = {}
        in_scope = (repositories.c.name.like(f"{_like(scope)}/%", escape="\\") |
                    (repositories.c.name == scope)) if scope != INSTANCE else None
        with self.engine.connect() as conn:
            q = select(repositories.c.name, tags.c.name.label("tag")).join(
                tags, tags.c.repository_id == repositories.c.id).where(
                tags.c.name.like("sha256-%.sig"))
            if in_scope is not None:
                q = q.where(in_scope)
            for r in conn.execute(q.limit(limit)):
                hexpart = r.tag[len("sha256-"):-len(".sig")]
                found[(r.name, f"sha256:{hexpart}")] = None
            q = select(repositories.c.name, manifests.c.subject).select_from(
                repositories.join(repository_manifests,
                                  repository_manifests.c.repository_id == repositories.c.id)
                .join(manifests, manifests.c.digest == repository_manifests.c.digest)).where(
                and_(manifests.c.subject.isnot(None), manifests.c.artifact_type.in_(bundle_types)))
            if in_scope is not None:
                q = q.where(in_scope)
            for r in conn.execute(q.limit(limit)):
                found[(r.name, r.subject)] = None
            q = select(_R.c.repository, _R.c.digest)
            if scope != INSTANCE:
                q = q.where(or_(_R.c.repository.like(f"{_like(scope)}/%", escape="\\"),
                                _R.c.repository == scope))
            for r in conn.execute(q.limit(limit)):
                found[(r.repository, r.digest)] = None
        return list(found)[:limit]


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
