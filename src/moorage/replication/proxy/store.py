"""The proxy cache tables: configurations (password sealed), tag checks, pending manifests and
blob fetch claims.

The upstream password is sealed with the instance's active master key (AES-256-GCM, the
namespace as associated data, so a sealed password cannot be moved to another row) when
encryption at rest is on; without it, it is stored as is, as private as the database itself
(as webhook secrets and scanner adapter secrets are). It leaves this module only towards the
upstream: rows handed to the API say whether there is a password, never what it is.

Blocking (SQLAlchemy): the core calls its store on the event loop the same way; the API calls
these from worker threads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine, and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from moorage.db.schema import namespaces, proxy_caches, proxy_fetches, proxy_pending, proxy_tags
from moorage.store import sealed
from moorage.store.keys import Keyring

SealError = sealed.SealError


def seal(password: str, namespace: str, keyring: Keyring | None) -> bytes:
    """Sealed with the master key (store/sealed.py), bound to the namespace; as is when
    encryption at rest is off."""
    if keyring is None:
        return password.encode()
    return sealed.seal(password.encode(), _aad(namespace), keyring)


def unseal(stored: bytes, namespace: str, keyring: Keyring | None) -> str:
    if not sealed.is_sealed(stored):
        return stored.decode()
    return sealed.unseal(stored, _aad(namespace), keyring,
                         f"the upstream password of proxy cache {namespace}").decode()


def _aad(namespace: str) -> bytes:
    return b"moorage/proxy-upstream-password\0" + namespace.encode()


@dataclass(frozen=True)
class ProxyRow:
    namespace: str
    upstream_url: str
    username: str | None
    has_password: bool
    ca_pem: str | None
    insecure: bool
    rewrite_library: bool
    ttl_seconds: int
    enabled: bool
    check_ok: bool | None
    check_detail: str
    checked_at: float | None
    created_at: float
    updated_at: float
    updated_by: str


_COLUMNS = (namespaces.c.name, proxy_caches.c.upstream_url, proxy_caches.c.username,
            proxy_caches.c.password.isnot(None), proxy_caches.c.ca_pem,
            proxy_caches.c.insecure, proxy_caches.c.rewrite_library,
            proxy_caches.c.ttl_seconds, proxy_caches.c.enabled, proxy_caches.c.check_ok,
            proxy_caches.c.check_detail, proxy_caches.c.checked_at, proxy_caches.c.created_at,
            proxy_caches.c.updated_at, proxy_caches.c.updated_by)
_JOINED = proxy_caches.join(namespaces, namespaces.c.id == proxy_caches.c.namespace_id)


def _row(r: object) -> ProxyRow:
    return ProxyRow(*r)  # type: ignore[misc]


class ProxyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- configurations ------------------------------------------------------------------
    def rows(self) -> list[ProxyRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(*_COLUMNS).select_from(_JOINED)
                                .order_by(namespaces.c.name)).all()
        return [_row(r) for r in rows]

    def get(self, namespace: str) -> ProxyRow | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(*_COLUMNS).select_from(_JOINED)
                             .where(namespaces.c.name == namespace)).first()
        return _row(r) if r else None

    def password(self, namespace: str) -> bytes | None:
        with self.engine.connect() as conn:
            return conn.execute(select(proxy_caches.c.password).select_from(_JOINED)
                                .where(namespaces.c.name == namespace)).scalar()

    def namespace_id(self, namespace: str) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(select(namespaces.c.id)
                                .where(namespaces.c.name == namespace)).scalar()

    def create(self, namespace_id: int, values: dict[str, object], actor: str) -> bool:
        now = time.time()
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(proxy_caches).values(
                    namespace_id=namespace_id, created_at=now, updated_at=now,
                    updated_by=actor, check_detail="", **values))
        except IntegrityError:
            return False
        return True

    def change(self, namespace: str, values: dict[str, object], actor: str) -> bool:
        ns_id = self.namespace_id(namespace)
        if ns_id is None:
            return False
        with self.engine.begin() as conn:
            done = conn.execute(update(proxy_caches)
                                .where(proxy_caches.c.namespace_id == ns_id)
                                .values(updated_at=time.time(), updated_by=actor, **values))
        return done.rowcount > 0

    def checked(self, namespace: str, ok: bool, detail: str) -> None:
        ns_id = self.namespace_id(namespace)
        with self.engine.begin() as conn:
            conn.execute(update(proxy_caches).where(proxy_caches.c.namespace_id == ns_id)
                         .values(check_ok=ok, check_detail=detail[:1000],
                                 checked_at=time.time()))

    def delete(self, namespace: str) -> bool:
        """The configuration and what it noted about tags and pending manifests; what was
        cached stays as ordinary content (retention and GC treat it like any other)."""
        ns_id = self.namespace_id(namespace)
        if ns_id is None:
            return False
        prefix = namespace.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
        with self.engine.begin() as conn:
            done = conn.execute(delete(proxy_caches)
                                .where(proxy_caches.c.namespace_id == ns_id)).rowcount
            conn.execute(delete(proxy_tags)
                         .where(proxy_tags.c.repository.like(prefix, escape="\\")))
            conn.execute(delete(proxy_pending)
                         .where(proxy_pending.c.repository.like(prefix, escape="\\")))
        return done > 0

    # -- tag checks ----------------------------------------------------------------------
    def tag(self, repository: str, tag: str) -> tuple[str, float] | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(proxy_tags.c.digest, proxy_tags.c.checked_at).where(
                proxy_tags.c.repository == repository, proxy_tags.c.tag == tag)).first()
        return (r[0], r[1]) if r else None

    def claim_check(self, repository: str, tag: str, now: float, ttl: float) -> bool:
        """Whether this caller is the one to check the tag upstream now: true for a tag
        never seen, or one whose last check is older than `ttl`, and then the check time is
        moved to `now` in the same statement, so that concurrent callers on any worker see
        the claim and do not check too."""
        with self.engine.begin() as conn:
            moved = conn.execute(update(proxy_tags).where(
                proxy_tags.c.repository == repository, proxy_tags.c.tag == tag,
                proxy_tags.c.checked_at <= now - ttl).values(checked_at=now)).rowcount
        return moved > 0

    def set_tag(self, repository: str, tag: str, digest: str, now: float) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(update(proxy_tags).where(
                proxy_tags.c.repository == repository, proxy_tags.c.tag == tag)
                .values(digest=digest, checked_at=now)).rowcount
            if not done:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(proxy_tags).values(
                            repository=repository, tag=tag, digest=digest, checked_at=now))
                except IntegrityError:
                    pass  # another worker noted it at the same moment

    def tags_naming(self, repository: str, digest: str) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(proxy_tags.c.tag).where(
                proxy_tags.c.repository == repository, proxy_tags.c.digest == digest))
                .scalars())

    # -- pending manifests ---------------------------------------------------------------
    def pending(self, repository: str, digest: str) -> tuple[str, bytes] | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(proxy_pending.c.media_type, proxy_pending.c.content).where(
                proxy_pending.c.repository == repository,
                proxy_pending.c.digest == digest)).first()
        return (r[0], bytes(r[1])) if r else None

    def all_pending(self, repository: str, limit: int = 200) -> list[tuple[str, str, bytes]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(proxy_pending.c.digest, proxy_pending.c.media_type,
                                       proxy_pending.c.content)
                                .where(proxy_pending.c.repository == repository)
                                .order_by(proxy_pending.c.fetched_at).limit(limit)).all()
        return [(r[0], r[1], bytes(r[2])) for r in rows]

    def pending_since(self, since: float, limit: int = 10_000
                      ) -> list[tuple[str, str, str, bytes]]:
        """(repository, digest, media type, content) of every pending manifest fetched
        after `since`, in every proxy namespace."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(proxy_pending.c.repository, proxy_pending.c.digest,
                                       proxy_pending.c.media_type, proxy_pending.c.content)
                                .where(proxy_pending.c.fetched_at > since)
                                .order_by(proxy_pending.c.fetched_at).limit(limit)).all()
        return [(r[0], r[1], r[2], bytes(r[3])) for r in rows]

    def add_pending(self, repository: str, digest: str, media_type: str, content: bytes) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(proxy_pending).values(
                    repository=repository, digest=digest, media_type=media_type,
                    content=content, fetched_at=time.time()))
        except IntegrityError:
            pass  # fetched by another worker too: the same bytes

    def drop_pending(self, repository: str, digest: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(proxy_pending).where(proxy_pending.c.repository == repository,
                                                     proxy_pending.c.digest == digest))

    # -- blob fetch claims ---------------------------------------------------------------
    def claim_fetch(self, digest: str, holder: str, now: float, stale_after: float) -> bool:
        """Claim the one upstream fetch of a blob; a claim whose holder has not shown life
        for `stale_after` seconds (its process died) is taken over."""
        with self.engine.begin() as conn:
            taken = conn.execute(update(proxy_fetches).where(
                proxy_fetches.c.digest == digest,
                proxy_fetches.c.beat_at <= now - stale_after)
                .values(holder=holder, beat_at=now)).rowcount
            if taken:
                return True
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(proxy_fetches).values(digest=digest, holder=holder,
                                                          beat_at=now))
        except IntegrityError:
            return False
        return True

    def fetch_claimed(self, digest: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(proxy_fetches.c.holder)
                                .where(proxy_fetches.c.digest == digest)).first() is not None

    def beat(self, digest: str, holder: str, now: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(proxy_fetches).where(
                and_(proxy_fetches.c.digest == digest, proxy_fetches.c.holder == holder))
                .values(beat_at=now))

    def release_fetch(self, digest: str, holder: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(proxy_fetches).where(proxy_fetches.c.digest == digest,
                                                     proxy_fetches.c.holder == holder))
