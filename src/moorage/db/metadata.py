"""The one interface through which the core reads and writes metadata.

Each method is one transaction. Queries on the pull path are single indexed lookups, so that a
manifest by tag costs one query and a blob check costs one query.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (Engine, Table, and_, create_engine, delete, event, exists, false, func,
                        insert, or_, select, update)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from moorage.db.changes import (ChangeSignal, SharedTableSignal, signal_commits,
                                 signal_shared_commits, unobserved)
from moorage.db.holders import Inspect, blob_holders, manifest_holders, repository_holders
from moorage.db.rawreads import RawReader
from moorage.db.schema import (blobs, manifest_references, manifests, metadata, namespace_blobs,
                               namespaces, repositories, repository_blobs, repository_manifests,
                               tags, uploads)
from moorage.oci.names import namespace_of


def _insert_new(conn: Connection, table: Table, **values: object) -> bool:
    """Insert a row unless one with the same key exists; True if this call inserted it.

    For rows several writers may create at once (a blob two pushes share, a repository whose
    layers arrive in parallel): a check and then a plain INSERT is not atomic, because SQLite
    takes its write lock at the first write, not at BEGIN, and PostgreSQL locks no row that
    does not exist yet. The loser of the race then failed with a unique violation, a 500.
    """
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(**values).on_conflict_do_nothing() \
        .returning(*table.primary_key.columns)  # rowcount is not reliable here on psycopg
    return conn.execute(statement).first() is not None


def effective_visibility():  # type: ignore[no-untyped-def]
    """The repository's own visibility, or its namespace's (a query joining both)."""
    return func.coalesce(repositories.c.visibility, namespaces.c.visibility)


def lock_namespace(conn: Connection, ns_name: str, create: bool = False) -> int | None:
    """Take the namespace's lock, first thing in a write to anything in it; its id, or
    None when it does not exist and `create` is false (it is created on a first push).

    Every write to a repository's contents takes this lock first, and no row lock before
    it. One lock, always first, keeps writers from waiting for each other in a circle:
    pushes used to lock their repository and then the namespace (to count storage),
    while deleting a namespace locks it and then, by cascade, its repositories, and
    PostgreSQL aborted one of the two with a deadlock. On SQLite the lock is the
    database's write lock, which pysqlite otherwise takes only at the first write: a
    repository read before it could be deleted before the write (a foreign-key failure).
    """
    locked = select(namespaces.c.id).where(namespaces.c.name == ns_name)
    while True:
        if conn.dialect.name == "postgresql":
            ns_id = conn.execute(locked.with_for_update(key_share=True)).scalar()
        else:  # a write that may change nothing still takes the lock
            conn.execute(update(namespaces).where(namespaces.c.name == ns_name)
                         .values(name=namespaces.c.name))
            ns_id = conn.execute(locked).scalar()
        if ns_id is not None or not create:
            return ns_id  # type: ignore[no-any-return]
        # Another writer may create it first; the loop then locks theirs.
        _insert_new(conn, namespaces, name=ns_name, visibility="private", description="",
                    credential_free_pull=False, created_at=time.time())


class MissingReferences(Exception):
    """A manifest references blobs or manifests its repository does not hold."""

    def __init__(self, digests: list[str]) -> None:
        super().__init__(", ".join(digests))
        self.digests = digests


class WrongSizes(Exception):
    """A manifest's descriptors declare sizes that are not those of the stored content."""

    def __init__(self, wrong: list[tuple[str, int, int]]) -> None:
        super().__init__(", ".join(f"{d}: {declared} != {actual}" for d, declared, actual in wrong))
        self.wrong = wrong  # (digest, declared size, stored size)


class StorageQuotaExceeded(Exception):
    def __init__(self, namespace: str, quota: int, used: int, adding: int) -> None:
        super().__init__(f"storage quota of namespace {namespace} is {quota} bytes; "
                         f"{used} are used and this push adds {adding}")
        self.namespace, self.quota, self.used, self.adding = namespace, quota, used, adding


@dataclass(frozen=True, slots=True)
class StoredManifest:
    digest: str
    media_type: str
    size: int
    content: bytes


@dataclass(frozen=True, slots=True)
class Referrer:
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    annotations: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class Upload:
    id: str
    repository: str
    started_at: float
    updated_at: float  # last activity, as recorded; expiry compares it with the TTL


class TooManyUploads(Exception):
    """The owner of a new upload already has as many open as allowed."""

    def __init__(self, open_now: int) -> None:
        super().__init__(f"{open_now} uploads open")
        self.open_now = open_now


@dataclass(frozen=True, slots=True)
class NewManifest:
    """A validated manifest ready to be recorded, with everything it references."""

    digest: str
    media_type: str
    content: bytes
    subject: str | None
    artifact_type: str | None
    annotations: dict[str, str] | None
    blob_digests: tuple[str, ...]
    child_digests: tuple[str, ...]
    # The size each descriptor declares, by digest (blobs, children and the subject): it must
    # be the stored content's, checked where existence is.
    declared_sizes: tuple[tuple[str, int], ...] = ()


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: an acknowledged push survives a power cut, not only a crash of the process.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def open_engine(url: str) -> Engine:
    """An engine for `sqlite:///…` or `postgresql://…` (driven by psycopg 3)."""
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("postgresql"):
        engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
        signal_shared_commits(engine, SharedTableSignal(engine, _read_signal,
                                                        _read_signal_async))
        return engine
    engine = create_engine(url, pool_pre_ping=False)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        database = engine.url.database
        if database and database != ":memory:":
            _create_private(Path(database))
            signal_commits(engine, ChangeSignal(Path(database + ".changes")))
    return engine


def _read_signal(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    return RawReader.of(engine).rows(sql, ())


async def _read_signal_async(engine: Engine, sql: str) -> tuple[Any, ...] | None:
    return await RawReader.of(engine).postgres_row_async(sql)


def _create_private(database: Path) -> None:
    """Create a new database file 0600 before SQLite does (it would make it 0644 less the
    umask). SQLite gives the `-wal` and `-shm` files it creates beside it the database file's
    mode, so they are private too: the file holds password hashes and webhook secrets."""
    if not database.exists() and database.parent.is_dir():
        try:
            database.touch(mode=0o600, exist_ok=False)
        except FileExistsError:
            pass  # another worker made it first


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'moorage.db'}"


# The pull path's lookups, in plain SQL for RawReader (see its docstring for why).
_TAG_DIGEST = ("SELECT t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id "
               "WHERE r.name = ? AND t.name = ?")
_BLOB_SIZE_IN_REPOSITORY = (
    "SELECT b.size FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id "
    "JOIN blobs b ON b.digest = rb.digest WHERE r.name = ? AND rb.digest = ?")
_MANIFEST_IN_REPOSITORY = (
    "SELECT 1 FROM repository_manifests rm JOIN repositories r ON r.id = rm.repository_id "
    "WHERE r.name = ? AND rm.digest = ?")
_REPOSITORY_ID = "SELECT id FROM repositories WHERE name = ?"
_TAG_PULLED_AT = ("SELECT t.repository_id, t.pulled_at FROM tags t "
                  "JOIN repositories r ON r.id = t.repository_id WHERE r.name = ? AND t.name = ?")
_TAGS_PAGE = "SELECT name FROM tags WHERE repository_id = ? ORDER BY lower(name), name"
_TAGS_PAGE_AFTER = ("SELECT name FROM tags WHERE repository_id = ? AND "
                    "(lower(name) > ? OR (lower(name) = ? AND name > ?)) "
                    "ORDER BY lower(name), name")


class MetadataStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.reads = RawReader.of(engine)

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    # -- repositories -------------------------------------------------------------------
    def _repository_id(self, conn: Connection, name: str) -> int | None:
        return conn.execute(select(repositories.c.id).where(repositories.c.name == name)).scalar()

    def _lock_namespace(self, conn: Connection, ns_name: str, create: bool) -> int | None:
        return lock_namespace(conn, ns_name, create)

    def _lock_repository(self, conn: Connection, name: str, create: bool) -> int | None:
        """Lock the repository's namespace, then find the repository (creating it, with the
        namespace's visibility, if asked). Whether the caller may create them, and within
        which quota, was decided beforehand by the access layer."""
        ns_id = self._lock_namespace(conn, namespace_of(name), create)
        if ns_id is None:
            return None
        repo_id = self._repository_id(conn, name)
        if repo_id is not None or not create:
            return repo_id
        # No visibility of its own: it follows the namespace's, whenever that changes.
        _insert_new(conn, repositories, name=name, namespace_id=ns_id, visibility=None,
                    description="", created_at=time.time())
        repo_id = self._repository_id(conn, name)
        assert repo_id is not None  # inserted now, or by a writer that held the lock before
        return repo_id

    def _ensure_repository(self, conn: Connection, name: str) -> int:
        repo_id = self._lock_repository(conn, name, create=True)
        assert repo_id is not None
        return repo_id

    def repository_exists(self, name: str) -> bool:
        with self.engine.connect() as conn:
            return self._repository_id(conn, name) is not None

    def catalog(self, limit: int | None, last: str | None,
                visible: tuple[set[str], bool] | None = None) -> list[str]:
        query = select(repositories.c.name).order_by(repositories.c.name)
        if visible is not None:
            names, include_public = visible
            condition = namespaces.c.name.in_(names) if names else false()
            if include_public:
                condition = or_(condition, effective_visibility() == "public")
            query = query.select_from(repositories.join(namespaces)).where(condition)
        if last:
            query = query.where(repositories.c.name > last)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    # -- blobs --------------------------------------------------------------------------
    def blob_size_in_repository(self, name: str, digest: str) -> int | None:
        """The blob's size if this repository may read it, else None."""
        return self.reads.cached_value(_BLOB_SIZE_IN_REPOSITORY, (name, digest))  # type: ignore[no-any-return]

    def repositories_with_blob(self, digest: str, limit: int) -> list[str]:
        query = (select(repositories.c.name).select_from(repository_blobs.join(repositories))
                 .where(repository_blobs.c.digest == digest).limit(limit))
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def blob_size(self, digest: str) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(select(blobs.c.size).where(blobs.c.digest == digest)).scalar()

    def _link_blob(self, conn: Connection, repo_id: int, digest: str, size: int) -> None:
        now = time.time()
        _insert_new(conn, blobs, digest=digest, size=size, created_at=now)  # kept if known
        touched = conn.execute(update(repository_blobs).where(
            repository_blobs.c.repository_id == repo_id,
            repository_blobs.c.digest == digest).values(touched_at=now)).rowcount
        if not touched:
            _insert_new(conn, repository_blobs, repository_id=repo_id, digest=digest,
                        created_at=now, touched_at=now)

    def touch_blob(self, name: str, digest: str, older_than: float = 60.0) -> None:
        """Note that a client saw this blob exist; it may be about to reference it."""
        now = time.time()
        repo_id = select(repositories.c.id).where(repositories.c.name == name).scalar_subquery()
        with self.engine.begin() as conn:
            conn.execute(update(repository_blobs).where(
                repository_blobs.c.repository_id == repo_id,
                repository_blobs.c.digest == digest,
                repository_blobs.c.touched_at < now - older_than).values(touched_at=now))

    def link_blob(self, name: str, digest: str, size: int) -> None:
        """Record a committed blob and let the repository read it (push or mount)."""
        with self.engine.begin() as conn:
            self._link_blob(conn, self._ensure_repository(conn, name), digest, size)

    def check_blob_quota(self, name: str, digest: str | None, size: int) -> None:
        """StorageQuotaExceeded if a blob of `size` bytes would pass the storage quota of the
        repository's namespace, counted the way a manifest push counts it (a blob the
        namespace already holds adds nothing). Checked when bytes arrive, so that a push the
        manifest would be refused for stores nothing; the manifest push stays the exact
        check (uploads running side by side are not counted until a manifest holds them)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(namespaces.c.id, namespaces.c.name,
                                      namespaces.c.storage_used, namespaces.c.storage_quota)
                               .where(namespaces.c.name == namespace_of(name))).first()
            if row is None or row[3] is None or row[2] + size <= row[3]:
                return
            if digest is not None and conn.execute(select(namespace_blobs.c.refs).where(
                    namespace_blobs.c.namespace_id == row[0],
                    namespace_blobs.c.digest == digest)).scalar() is not None:
                return
        raise StorageQuotaExceeded(row[1], row[3], row[2], size)

    def forget_if_empty(self, name: str) -> list[str] | None:
        """Remove a repository that holds no manifest and has no upload open, with its blob
        links (what a refused push left); the digests it linked, or None if it stays."""
        with self.engine.begin() as conn:
            repo_id = self._lock_repository(conn, name, create=False)
            if repo_id is None:
                return None
            if conn.execute(select(repository_manifests.c.digest).where(
                    repository_manifests.c.repository_id == repo_id).limit(1)).first():
                return None
            if conn.execute(select(uploads.c.id).where(uploads.c.repository == name)
                            .limit(1)).first():
                return None
            linked = list(conn.execute(select(repository_blobs.c.digest).where(
                repository_blobs.c.repository_id == repo_id)).scalars())
            conn.execute(delete(repository_blobs).where(
                repository_blobs.c.repository_id == repo_id))
            conn.execute(delete(repositories).where(repositories.c.id == repo_id))
            return linked

    def unlink_blob(self, name: str, digest: str, inspect: Inspect | None = None) -> bool:
        """Stop the repository reading a blob; `inspect` sees the tags that hold it first."""
        with self.engine.begin() as conn:
            repo_id = self._lock_repository(conn, name, create=False)
            if repo_id is None:
                return False
            if inspect is not None:
                inspect(blob_holders(conn, repo_id, digest))
            result = conn.execute(delete(repository_blobs).where(
                repository_blobs.c.repository_id == repo_id, repository_blobs.c.digest == digest))
            return result.rowcount > 0

    # -- manifests ----------------------------------------------------------------------
    def put_manifest(self, name: str, new: NewManifest, tag_names: Iterable[str]) -> None:
        """Record a manifest, its references, its repository link and its tags atomically.

        The references are checked inside the same write transaction, after the write lock is
        taken, so garbage collection cannot remove a blob between the check and the insert.
        Raises MissingReferences or StorageQuotaExceeded, leaving nothing changed.
        """
        now = time.time()
        with self.engine.begin() as conn:
            repo_id = self._ensure_repository(conn, name)
            self._check_references(conn, repo_id, new)
            known = conn.execute(
                select(manifests.c.digest).where(manifests.c.digest == new.digest)).scalar()
            # Pushes into two namespaces (one namespace's lock each) may store the same
            # manifest at once.
            if known is None and _insert_new(
                    conn, manifests, digest=new.digest, media_type=new.media_type,
                    size=len(new.content), content=new.content, subject=new.subject,
                    artifact_type=new.artifact_type,
                    annotations=json.dumps(new.annotations) if new.annotations else None,
                    created_at=now):
                refs = [{"manifest_digest": new.digest, "target_digest": d, "kind": "blob"}
                        for d in dict.fromkeys(new.blob_digests)]
                refs += [{"manifest_digest": new.digest, "target_digest": d, "kind": "manifest"}
                         for d in dict.fromkeys(new.child_digests) if d not in new.blob_digests]
                if refs:
                    conn.execute(insert(manifest_references), refs)
            linked = conn.execute(select(repository_manifests.c.digest).where(
                repository_manifests.c.repository_id == repo_id,
                repository_manifests.c.digest == new.digest)).scalar()
            if linked is None:
                conn.execute(insert(repository_manifests).values(
                    repository_id=repo_id, digest=new.digest, pushed_at=now))
                self._count_storage(conn, repo_id, new.digest, +1)
            else:
                conn.execute(update(repository_manifests).where(
                    repository_manifests.c.repository_id == repo_id,
                    repository_manifests.c.digest == new.digest).values(pushed_at=now))
            for tag in tag_names:
                self._set_tag(conn, repo_id, tag, new.digest, now)

    def _check_references(self, conn: Connection, repo_id: int, new: NewManifest) -> None:
        """Every blob and child must be in the repository, with the size its descriptor
        declares; the sizes come with the existence check, in the same queries. A subject
        need not exist (a referrer may come first), but if it does, its size must match."""
        wanted_blobs = set(new.blob_digests)
        wanted_children = set(new.child_digests) - wanted_blobs
        missing: set[str] = set()
        stored: dict[str, int] = {}
        for wanted, link, content in ((wanted_blobs, repository_blobs, blobs),
                                      (wanted_children, repository_manifests, manifests)):
            if not wanted:
                continue
            found = dict(conn.execute(
                select(link.c.digest, content.c.size).select_from(link.join(content))
                .where(link.c.repository_id == repo_id, link.c.digest.in_(wanted))).all())
            missing |= wanted - set(found)
            stored.update(found)
        if wanted_blobs:
            conn.execute(update(repository_blobs).where(
                repository_blobs.c.repository_id == repo_id,
                repository_blobs.c.digest.in_(wanted_blobs - missing))
                .values(touched_at=time.time()))
        if missing:
            raise MissingReferences(sorted(missing))
        if new.subject and new.subject not in stored:
            size = conn.execute(select(manifests.c.size)
                                .where(manifests.c.digest == new.subject)).scalar()
            if size is not None:
                stored[new.subject] = size
        wrong = [(digest, declared, stored[digest]) for digest, declared in new.declared_sizes
                 if digest in stored and stored[digest] != declared]
        if wrong:
            raise WrongSizes(wrong)

    def _count_storage(self, conn: Connection, repo_id: int, manifest_digest: str,
                       delta: int) -> None:
        """Add (+1) or remove (-1) one manifest link's blobs from its namespace's storage.

        A blob counts once per namespace however many manifests reference it; it starts
        counting with the first reference and stops with the last, in this transaction.
        """
        ns_id = conn.execute(select(repositories.c.namespace_id)
                             .where(repositories.c.id == repo_id)).scalar_one()
        # The caller holds the namespace's lock (_lock_namespace): pushes into two
        # repositories of one namespace count shared blobs and check the quota one after the
        # other, or both would insert the same blob's row, or both pass the quota.
        refs = conn.execute(
            select(manifest_references.c.target_digest, blobs.c.size)
            .select_from(manifest_references.join(
                blobs, blobs.c.digest == manifest_references.c.target_digest))
            .where(manifest_references.c.manifest_digest == manifest_digest,
                   manifest_references.c.kind == "blob")).all()
        change = 0
        for digest, size in refs:
            key = and_(namespace_blobs.c.namespace_id == ns_id, namespace_blobs.c.digest == digest)
            current = conn.execute(select(namespace_blobs.c.refs).where(key)).scalar()
            if delta > 0:
                if current is None:
                    conn.execute(insert(namespace_blobs).values(
                        namespace_id=ns_id, digest=digest, refs=1))
                    change += size
                else:
                    conn.execute(update(namespace_blobs).where(key).values(refs=current + 1))
            elif current is not None:
                if current <= 1:
                    conn.execute(delete(namespace_blobs).where(key))
                    change -= size
                else:
                    conn.execute(update(namespace_blobs).where(key).values(refs=current - 1))
        if not change:
            return
        used, quota, ns_name = conn.execute(
            select(namespaces.c.storage_used, namespaces.c.storage_quota, namespaces.c.name)
            .where(namespaces.c.id == ns_id)).one()
        if change > 0 and quota is not None and used + change > quota:
            raise StorageQuotaExceeded(ns_name, quota, used, change)
        conn.execute(update(namespaces).where(namespaces.c.id == ns_id)
                     .values(storage_used=namespaces.c.storage_used + change))

    def _unlink_manifest(self, conn: Connection, repo_id: int, digest: str) -> bool:
        conn.execute(delete(tags).where(tags.c.repository_id == repo_id, tags.c.digest == digest))
        removed = conn.execute(delete(repository_manifests).where(
            repository_manifests.c.repository_id == repo_id,
            repository_manifests.c.digest == digest)).rowcount > 0
        if removed:
            self._count_storage(conn, repo_id, digest, -1)
        return removed

    def _set_tag(self, conn: Connection, repo_id: int, tag: str, digest: str, now: float) -> None:
        changed = conn.execute(update(tags).where(
            tags.c.repository_id == repo_id, tags.c.name == tag).values(
            digest=digest, updated_at=now)).rowcount
        if not changed:
            conn.execute(insert(tags).values(
                repository_id=repo_id, name=tag, digest=digest, updated_at=now))

    def tag_digest(self, name: str, tag: str) -> str | None:
        return self.reads.cached_value(_TAG_DIGEST, (name, tag))  # type: ignore[no-any-return]

    def manifest_in_repository(self, name: str, digest: str) -> bool:
        return bool(self.reads.cached_rows(_MANIFEST_IN_REPOSITORY, (name, digest)))

    def manifest(self, digest: str) -> StoredManifest | None:
        query = select(manifests.c.digest, manifests.c.media_type, manifests.c.size,
                       manifests.c.content).where(manifests.c.digest == digest)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return StoredManifest(row[0], row[1], row[2], bytes(row[3])) if row else None

    def delete_manifest(self, name: str, digest: str, inspect: Inspect | None = None) -> bool:
        """Remove a manifest and every tag pointing at it from one repository; `inspect`
        sees the tags that hold it (its own, and those of indexes above it) first."""
        with self.engine.begin() as conn:
            repo_id = self._lock_repository(conn, name, create=False)
            if repo_id is None:
                return False
            if inspect is not None:
                inspect(manifest_holders(conn, repo_id, digest))
            return self._unlink_manifest(conn, repo_id, digest)

    def delete_repository(self, name: str, inspect: Inspect | None = None) -> bool:
        """Remove a repository with its tags and links, releasing its share of storage;
        `inspect` sees its tags first."""
        with self.engine.begin() as conn:
            repo_id = self._lock_repository(conn, name, create=False)
            if repo_id is None:
                return False
            if inspect is not None:
                inspect(repository_holders(conn, repo_id))
            linked = conn.execute(select(repository_manifests.c.digest).where(
                repository_manifests.c.repository_id == repo_id)).scalars().all()
            for digest in linked:
                self._unlink_manifest(conn, repo_id, digest)
            conn.execute(delete(repository_blobs).where(
                repository_blobs.c.repository_id == repo_id))
            conn.execute(delete(repositories).where(repositories.c.id == repo_id))
            return True

    def tag_digests(self, name: str, tag_names: Iterable[str]) -> dict[str, str]:
        """Current digest of each of these tags that exists."""
        wanted = list(tag_names)
        if not wanted:
            return {}
        query = (select(tags.c.name, tags.c.digest).select_from(tags.join(repositories))
                 .where(repositories.c.name == name, tags.c.name.in_(wanted)))
        with self.engine.connect() as conn:
            return {r[0]: r[1] for r in conn.execute(query)}

    def delete_tag(self, name: str, tag: str) -> bool:
        with self.engine.begin() as conn:
            repo_id = self._repository_id(conn, name)
            if repo_id is None:
                return False
            return conn.execute(delete(tags).where(
                tags.c.repository_id == repo_id, tags.c.name == tag)).rowcount > 0

    def list_tags(self, name: str, limit: int | None, last: str | None) -> list[str] | None:
        """Tags in lexical order after `last`; None when the repository does not exist.

        The spec's "lexical order" is case-insensitive; the name breaks ties. Plain SQL on the
        expression index, cached like the other pull-path lookups: a client walking 10,000
        tags page by page asks the same pages again and again.
        """
        repo = self.reads.cached_rows(_REPOSITORY_ID, (name,))
        if not repo:
            return None
        sql, params = _TAGS_PAGE, (repo[0][0],)
        if last:
            sql, params = _TAGS_PAGE_AFTER, (repo[0][0], last.lower(), last.lower(), last)
        if limit is not None:
            sql, params = sql + " LIMIT ?", (*params, limit)
        return list(self.reads.cached_rows(sql, params, first_column=True))

    def tag_records(self, name: str) -> list[tuple[str, str, float]] | None:
        """(tag, digest, updated_at) of every tag, by name; None when the repository does not
        exist. For the management API, which shows what a tag points at and since when."""
        with self.engine.connect() as conn:
            repo_id = self._repository_id(conn, name)
            if repo_id is None:
                return None
            query = (select(tags.c.name, tags.c.digest, tags.c.updated_at)
                     .where(tags.c.repository_id == repo_id).order_by(tags.c.name))
            return [(r[0], r[1], r[2]) for r in conn.execute(query)]

    def record_pulls(self, pulls: Iterable[tuple[str, str, float]], interval: float) -> int:
        """Note that tags were pulled: (repository, tag, when). A tag's `pulled_at` moves only
        when it is older than `interval` seconds, decided here, in the database every worker
        and replica shares: a read first (most pulls of a busy tag stop there, without taking
        the write lock), then an update that checks again, so two writers racing write once.
        Returns how many tags changed. Unobserved: no cached pull-path lookup reads
        `pulled_at`, so these writes leave every worker's cache of tags intact."""
        due = []
        for name, tag, at in pulls:
            found = self.reads.rows(_TAG_PULLED_AT, (name, tag))
            if found and (found[0][1] is None or found[0][1] < at - interval):
                due.append((found[0][0], tag, at))
        if not due:
            return 0
        changed = 0
        with unobserved(), self.engine.begin() as conn:
            for repo_id, tag, at in due:
                changed += conn.execute(update(tags).where(
                    tags.c.repository_id == repo_id, tags.c.name == tag,
                    or_(tags.c.pulled_at.is_(None), tags.c.pulled_at < at - interval))
                    .values(pulled_at=at)).rowcount
        return changed

    def referrers(self, name: str, subject: str, artifact_type: str | None) -> list[Referrer]:
        query = (select(manifests.c.digest, manifests.c.media_type, manifests.c.size,
                        manifests.c.artifact_type, manifests.c.annotations)
                 .select_from(manifests.join(repository_manifests).join(repositories))
                 .where(repositories.c.name == name, manifests.c.subject == subject)
                 .order_by(manifests.c.digest))
        if artifact_type is not None:
            query = query.where(manifests.c.artifact_type == artifact_type)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [Referrer(r[0], r[1], r[2], r[3], json.loads(r[4]) if r[4] else None)
                for r in rows]

    # -- garbage collection --------------------------------------------------------------
    # Each finder lists candidates; each remover deletes only rows that are still garbage,
    # re-checking inside its own transaction, so a push that lands in between wins.
    def _unlinked_manifest(self, cutoff: float):  # type: ignore[no-untyped-def]
        return and_(manifests.c.created_at < cutoff,
                    ~exists().where(repository_manifests.c.digest == manifests.c.digest))

    def _stale_link(self, cutoff: float):  # type: ignore[no-untyped-def]
        # From the blob's references (indexed by target) to the repository's manifest links
        # (their primary key): as a join, SQLite walked every manifest of the repository for
        # each link, links x manifests for a repository of many images.
        in_repository = exists().where(
            repository_manifests.c.repository_id == repository_blobs.c.repository_id,
            repository_manifests.c.digest == manifest_references.c.manifest_digest
        ).correlate(repository_blobs, manifest_references)
        referenced = exists().where(
            manifest_references.c.target_digest == repository_blobs.c.digest, in_repository
        ).correlate(repository_blobs)
        return and_(repository_blobs.c.touched_at < cutoff, ~referenced)

    def _orphan_blob(self, cutoff: float):  # type: ignore[no-untyped-def]
        return and_(blobs.c.created_at < cutoff,
                    ~exists().where(repository_blobs.c.digest == blobs.c.digest),
                    ~exists().where(manifest_references.c.target_digest == blobs.c.digest))

    def _gc_manifests(self, conn: Connection, cutoff: float) -> list[str]:
        found = list(conn.execute(select(manifests.c.digest)
                                  .where(self._unlinked_manifest(cutoff))).scalars())
        # in slices: one IN list of them all would pass SQLite's limit on bound parameters
        # (32,766) once that many manifests lie unlinked
        for start in range(0, len(found), 1000):
            part = found[start:start + 1000]
            conn.execute(delete(manifest_references).where(
                manifest_references.c.manifest_digest.in_(part)))
            conn.execute(delete(manifests).where(manifests.c.digest.in_(part),
                                                 self._unlinked_manifest(cutoff)))
        return found

    def _gc_links(self, conn: Connection, cutoff: float) -> int:
        return conn.execute(delete(repository_blobs).where(self._stale_link(cutoff))).rowcount

    def _gc_blob_candidates(self, conn: Connection, cutoff: float,
                            limit: int) -> list[tuple[str, int]]:
        return [(r[0], r[1]) for r in conn.execute(
            select(blobs.c.digest, blobs.c.size).where(self._orphan_blob(cutoff)).limit(limit))]

    def gc_mark(self, cutoff: float) -> tuple[list[str], int]:
        """Drop unlinked manifests, then blob links nothing references; (manifests, links)."""
        with self.engine.begin() as conn:
            gone = self._gc_manifests(conn, cutoff)
        with self.engine.begin() as conn:
            links = self._gc_links(conn, cutoff)
        return gone, links

    def gc_preview(self, cutoff: float
                   ) -> tuple[list[str], list[tuple[str, str]], list[tuple[str, int]]]:
        """What a real run would remove: the same statements in a transaction rolled back.
        (unlinked manifests, (repository, digest) of the blob links, (digest, size) of blobs)"""
        with self.engine.connect() as conn:
            txn = conn.begin()
            try:
                gone = self._gc_manifests(conn, cutoff)
                links = [(r[0], r[1]) for r in conn.execute(
                    select(repositories.c.name, repository_blobs.c.digest)
                    .select_from(repository_blobs.join(
                        repositories, repositories.c.id == repository_blobs.c.repository_id))
                    .where(self._stale_link(cutoff))
                    .order_by(repositories.c.name, repository_blobs.c.digest))]
                self._gc_links(conn, cutoff)
                blobs_ = self._gc_blob_candidates(conn, cutoff, 1_000_000)
            finally:
                txn.rollback()
        return gone, links, blobs_

    def gc_blob_candidates(self, cutoff: float, limit: int = 10_000,
                           after: str | None = None) -> list[tuple[str, int]]:
        """Unreferenced blobs in digest order, the first `limit` after `after`: a sweep walks
        the blobs once, a page at a time (keyset), instead of asking again from the start
        after each page, past every referenced blob every time."""
        query = (select(blobs.c.digest, blobs.c.size).where(self._orphan_blob(cutoff))
                 .order_by(blobs.c.digest).limit(limit))
        if after is not None:
            query = query.where(blobs.c.digest > after)
        with self.engine.connect() as conn:
            return [(r[0], r[1]) for r in conn.execute(query)]

    def gc_delete_blob(self, digest: str, cutoff: float) -> bool:
        """Forget a blob if it is still unreferenced; the caller then deletes its bytes."""
        return bool(self.gc_delete_blobs([digest], cutoff))

    def gc_delete_blobs(self, digests: list[str], cutoff: float) -> list[str]:
        """Forget those of these blobs that are still unreferenced, in one transaction (one
        commit for a page of blobs, not one each); returns them: the caller then deletes
        their bytes. Each row goes only if its own condition still holds in this
        transaction, so a push that claimed one meanwhile keeps it."""
        if not digests:
            return []
        with self.engine.begin() as conn:
            return list(conn.execute(delete(blobs).where(
                blobs.c.digest.in_(digests), self._orphan_blob(cutoff))
                .returning(blobs.c.digest)).scalars())

    # -- uploads ------------------------------------------------------------------------
    def create_upload(self, upload_id: str, name: str, owner: str | None = None,
                      max_open: int = 0) -> None:
        """Record a new upload; TooManyUploads if `owner` already has `max_open` open (0: no
        cap). Counted in the transaction that inserts, so every worker counts the same rows
        (two racing inserts may both pass: the cap bounds piles, not single requests)."""
        now = time.time()
        with self.engine.begin() as conn:
            if owner is not None and max_open > 0:
                count = conn.execute(select(func.count()).select_from(uploads)
                                     .where(uploads.c.owner == owner)).scalar_one()
                if count >= max_open:
                    raise TooManyUploads(count)
            # No repository row yet: it comes with the first blob or manifest committed to
            # it, so that a push refused halfway leaves no empty repository behind.
            conn.execute(insert(uploads).values(id=upload_id, repository=name, started_at=now,
                                                updated_at=now, owner=owner))

    def upload(self, upload_id: str) -> Upload | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(uploads.c.id, uploads.c.repository, uploads.c.started_at,
                                      uploads.c.updated_at)
                               .where(uploads.c.id == upload_id)).first()
        return Upload(row[0], row[1], row[2], row[3]) if row else None

    def touch_upload(self, upload_id: str) -> None:
        with unobserved(), self.engine.begin() as conn:  # uploads: no cached lookup reads it
            conn.execute(update(uploads).where(uploads.c.id == upload_id)
                         .values(updated_at=time.time()))

    def delete_upload(self, upload_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(uploads).where(uploads.c.id == upload_id))

    def stale_uploads(self, older_than: float) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(uploads.c.id)
                                     .where(uploads.c.updated_at < older_than)).scalars())

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                    for t in (repositories, blobs, manifests, tags, uploads)}


__all__ = ["MetadataStore", "NewManifest", "StoredManifest", "Referrer", "Upload",
           "open_engine", "sqlite_url"]
