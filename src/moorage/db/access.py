"""Metadata queries for the access layer: namespaces, repositories, accounts, rules."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, case, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from moorage.access.roles import ROLES
from moorage.cache.decisions import KeptUntilCommit
from moorage.db.changes import signal_of
from moorage.db.holders import Inspect, namespace_holders
from moorage.db.metadata import effective_visibility, lock_namespace
from moorage.db.rawreads import RawReader
from moorage.db.schema import (access_tokens, group_roles, login_failures, memberships,
                               namespaces, network_rules, repositories, repository_manifests,
                               tags, users)


# What a repository listing may be sorted by (`-` first: descending): the API's names for
# the keys of AccessStore.repository_page.
REPOSITORY_SORTS = {"name": "name", "tags": "tags", "pushed": "pushed", "created": "created"}


class Conflict(Exception):
    """The row already exists (a unique name taken)."""


@dataclass(frozen=True, slots=True)
class NamespaceRow:
    id: int
    name: str
    visibility: str
    description: str
    credential_free_pull: bool
    created_at: float
    storage_used: int = 0
    storage_quota: int | None = None


@dataclass(frozen=True, slots=True)
class RepositoryRow:
    id: int
    name: str
    namespace: str
    visibility: str  # what applies: its own, or else its namespace's
    description: str
    created_at: float
    tag_count: int = 0
    own_visibility: str | None = None  # None: it follows the namespace's
    last_pushed_at: float | None = None  # the last manifest pushed into it (None: none)

    @property
    def inherited(self) -> bool:
        return self.own_visibility is None


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    username: str
    password_hash: str
    kind: str
    is_admin: bool
    namespace_id: int | None
    description: str
    expires_at: float | None
    created_at: float
    disabled_at: float | None = None  # when an administrator disabled it; None: enabled
    source: str = "local"  # "local" | "ldap" | "oidc": where it signs in
    external_id: str | None = None  # the directory's or provider's name for it


@dataclass(frozen=True, slots=True)
class GroupRoleRow:
    id: int
    group_name: str
    namespace: str
    role: str
    created_at: float


@dataclass(frozen=True, slots=True)
class TokenRow:
    id: str
    user_id: int
    kind: str
    name: str
    secret_hash: str
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None
    created_at: float


@dataclass(frozen=True, slots=True)
class NetworkRuleRow:
    id: int
    namespace: str | None
    cidr: str
    kind: str
    description: str
    created_at: float


_NS_COLS = (namespaces.c.id, namespaces.c.name, namespaces.c.visibility, namespaces.c.description,
            namespaces.c.credential_free_pull, namespaces.c.created_at, namespaces.c.storage_used,
            namespaces.c.storage_quota)
def _storable(text: str, length: int | None) -> bool:
    """Whether a lookup key from a request could be in its column at all: no NUL (which
    PostgreSQL text cannot hold, and refuses with an error) and within the column's length."""
    return "\x00" not in text and (length is None or len(text) <= length)


_USER_COLS = (users.c.id, users.c.username, users.c.password_hash, users.c.kind, users.c.is_admin,
              users.c.namespace_id, users.c.description, users.c.expires_at, users.c.created_at,
              users.c.disabled_at, users.c.source, users.c.external_id)
_TOKEN_COLS = (access_tokens.c.id, access_tokens.c.user_id, access_tokens.c.kind,
               access_tokens.c.name, access_tokens.c.secret_hash, access_tokens.c.expires_at,
               access_tokens.c.revoked_at, access_tokens.c.last_used_at, access_tokens.c.created_at)


# Plain SQL for RawReader: the visibility lookup is on every anonymous or public pull.
# A repository without a visibility of its own has its namespace's, as it is now.
_REPOSITORY_VISIBILITY = (
    "SELECT COALESCE(r.visibility, n.visibility), n.name, n.credential_free_pull "
    "FROM repositories r JOIN namespaces n ON n.id = r.namespace_id WHERE r.name = ?")

# A namespace's visibility and the repositories in it with one of their own (a listing's
# check of each of its repositories, in one query).
_VISIBILITY_OVERRIDES = (
    "SELECT n.visibility, n.credential_free_pull, r.name, r.visibility FROM namespaces n "
    "LEFT JOIN repositories r ON r.namespace_id = n.id AND r.visibility IS NOT NULL "
    "WHERE n.name = ?")


# Plain SQL for RawReader: the network rules are consulted on every request.
_NETWORK_RULES = (
    "SELECT r.id, n.name, r.cidr, r.kind, r.description, r.created_at FROM network_rules r "
    "LEFT JOIN namespaces n ON n.id = r.namespace_id ORDER BY r.id")


class AccessStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.reads = RawReader.of(engine)
        # repository_page's totals, one per (caller's namespaces, filter)
        self._totals: KeptUntilCommit[int] = KeptUntilCommit(signal_of(engine), limit=1000)

    # -- namespaces ---------------------------------------------------------------------
    def create_namespace(self, name: str, visibility: str = "private", description: str = "",
                         credential_free_pull: bool = False) -> NamespaceRow:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(namespaces).values(
                    name=name, visibility=visibility, description=description,
                    credential_free_pull=credential_free_pull, created_at=time.time()))
        except IntegrityError:
            raise Conflict(f"namespace {name!r} already exists") from None
        found = self.namespace(name)
        assert found is not None
        return found

    def namespace(self, name: str) -> NamespaceRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*_NS_COLS).where(namespaces.c.name == name)).first()
        return NamespaceRow(*row) if row else None

    def namespace_name(self, namespace_id: int) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(namespaces.c.name)
                                .where(namespaces.c.id == namespace_id)).scalar()

    def namespaces(self) -> list[NamespaceRow]:
        with self.engine.connect() as conn:
            return [NamespaceRow(*r) for r in
                    conn.execute(select(*_NS_COLS).order_by(namespaces.c.name))]

    def count_namespaces(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(namespaces)).scalar_one()

    def update_namespace(self, name: str, **values: object) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(update(namespaces).where(namespaces.c.name == name)
                                .values(**values)).rowcount > 0

    def delete_namespace(self, name: str, inspect: Inspect | None = None) -> bool:
        """Removes the namespace with its repositories, tags, robots and rules (cascade);
        `inspect` sees every tag in it first, under the namespace's lock."""
        with self.engine.begin() as conn:
            ns_id = lock_namespace(conn, name)
            if ns_id is None:
                return False
            if inspect is not None:
                inspect(namespace_holders(conn, ns_id))
            return conn.execute(delete(namespaces).where(namespaces.c.id == ns_id)).rowcount > 0

    # -- repositories -------------------------------------------------------------------
    @staticmethod
    def _tag_count():  # type: ignore[no-untyped-def]
        return (select(func.count()).where(tags.c.repository_id == repositories.c.id)
                .correlate(repositories).scalar_subquery())

    @staticmethod
    def _last_push():  # type: ignore[no-untyped-def]
        return (select(func.max(repository_manifests.c.pushed_at))
                .where(repository_manifests.c.repository_id == repositories.c.id)
                .correlate(repositories).scalar_subquery())

    def _repo_query(self):  # type: ignore[no-untyped-def]
        return (select(repositories.c.id, repositories.c.name, namespaces.c.name,
                       effective_visibility(), repositories.c.description,
                       repositories.c.created_at, self._tag_count(), repositories.c.visibility,
                       self._last_push())
                .select_from(repositories.join(namespaces)))

    def repositories(self, namespace: str | None = None) -> list[RepositoryRow]:
        query = self._repo_query().order_by(repositories.c.name)
        if namespace is not None:
            query = query.where(namespaces.c.name == namespace)
        with self.engine.connect() as conn:
            return [RepositoryRow(*r) for r in conn.execute(query)]

    def repository_page(self, visible: set[str] | None, namespace: str | None = None,
                        search: str = "", sort: str = "name", limit: int = 100,
                        offset: int = 0) -> tuple[list[RepositoryRow], int]:
        """One page of repositories and how many match in all, in SQL (LIMIT/OFFSET).

        `visible`: the namespaces whose repositories the caller sees whatever their
        visibility (public ones are seen anyway); None: all (administrators). `search`: a
        part of the name, any case. `sort`: a key of REPOSITORY_SORTS, `-` first for
        descending; the name breaks ties. The tag count and last push of the page's rows
        only are counted when sorting by name; sorting by them counts every match's
        (indexed counts: a few milliseconds for 5,000 repositories)."""
        conditions = []
        if visible is not None:
            public = effective_visibility() == "public"
            conditions.append(or_(public, namespaces.c.name.in_(sorted(visible)))
                              if visible else public)
        if namespace is not None:
            conditions.append(namespaces.c.name == namespace)
        if search:
            conditions.append(repositories.c.name.contains(search.lower(), autoescape=True))
        descending = sort.startswith("-")
        key = REPOSITORY_SORTS[sort.lstrip("-")]
        order = {"name": repositories.c.name, "tags": self._tag_count(),
                 "pushed": func.coalesce(self._last_push(), 0),
                 "created": repositories.c.created_at}[key]
        ordering = [order.desc() if descending else order.asc()]
        if key != "name":
            ordering.append(repositories.c.name.asc())
        query = self._repo_query().where(*conditions).order_by(*ordering) \
            .limit(limit).offset(offset)
        counted = (select(func.count()).select_from(repositories.join(namespaces))
                   .where(*conditions))
        # The total counts every match (100,000 index entries in a large namespace, on every
        # page asked): kept until the next commit on the database by any process, like the
        # pull path's cached reads (db/changes.py). The signal is read before either query
        # runs, so a total that may predate a commit is never filed under a later value.
        seen = self._totals.version()
        key = (None if visible is None else frozenset(visible), namespace, search)
        kept = self._totals.get(key)
        with self.engine.connect() as conn:
            rows = [RepositoryRow(*r) for r in conn.execute(query)]
            if kept is not None:
                return rows, kept
            total = conn.execute(counted).scalar_one()
        self._totals.put(key, seen, total)
        return rows, total

    def repository(self, name: str) -> RepositoryRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(self._repo_query().where(repositories.c.name == name)).first()
        return RepositoryRow(*row) if row else None

    def count_repositories(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(repositories)).scalar_one()

    def repository_visibility(self, name: str) -> tuple[str, str, bool] | None:
        """(visibility that applies, namespace name, credential-free pull) in one query."""
        found = self.reads.cached_rows(_REPOSITORY_VISIBILITY, (name,))  # asked on every public pull
        return (found[0][0], found[0][1], bool(found[0][2])) if found else None

    def visibility_overrides(self, namespace: str
                             ) -> tuple[str, bool, dict[str, str]] | None:
        """(the namespace's visibility, its credential-free pull, {repository: visibility}
        of the repositories with their own), remembered until the next commit."""
        found = self.reads.cached_rows(_VISIBILITY_OVERRIDES, (namespace,))
        if not found:
            return None
        return (found[0][0], bool(found[0][1]),
                {row[2]: row[3] for row in found if row[2] is not None})

    def update_repository(self, name: str, **values: object) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(update(repositories).where(repositories.c.name == name)
                                .values(**values)).rowcount > 0

    # -- users and robots ---------------------------------------------------------------
    def create_user(self, username: str, password_hash: str, kind: str = "user",
                    is_admin: bool = False, namespace_id: int | None = None,
                    description: str = "", expires_at: float | None = None,
                    source: str = "local", external_id: str | None = None) -> UserRow:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(users).values(
                    username=username, password_hash=password_hash, kind=kind,
                    is_admin=is_admin, namespace_id=namespace_id, description=description,
                    expires_at=expires_at, created_at=time.time(), source=source,
                    external_id=external_id))
        except IntegrityError:
            raise Conflict(f"account {username!r} already exists") from None
        found = self.user(username)
        assert found is not None
        return found

    def user(self, username: str) -> UserRow | None:
        if not _storable(username, users.c.username.type.length):
            return None  # no row holds it; PostgreSQL would refuse a NUL with an error
        with self.engine.connect() as conn:
            row = conn.execute(select(*_USER_COLS).where(users.c.username == username)).first()
        return UserRow(*row) if row else None

    def user_by_id(self, user_id: int) -> UserRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*_USER_COLS).where(users.c.id == user_id)).first()
        return UserRow(*row) if row else None

    def user_by_external(self, source: str, external_id: str) -> UserRow | None:
        """The account a directory or provider knows by this name, whatever its username."""
        if not _storable(external_id, users.c.external_id.type.length):
            return None
        with self.engine.connect() as conn:
            row = conn.execute(select(*_USER_COLS).where(
                users.c.source == source, users.c.external_id == external_id)).first()
        return UserRow(*row) if row else None

    def set_source(self, username: str, source: str) -> bool:
        """Switch where an account signs in. The link to the old source's name is dropped
        (found again by username at the first sign-in through the new one), and its refresh
        tokens and console sessions end: they were got through the old source."""
        return self._update_user_ending_refresh(username, {"source": source,
                                                           "external_id": None})

    def link_external(self, user_id: int, external_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(users).where(users.c.id == user_id)
                         .values(external_id=external_id))

    def users(self, kind: str = "user", namespace_id: int | None = None) -> list[UserRow]:
        query = select(*_USER_COLS).where(users.c.kind == kind).order_by(users.c.username)
        if namespace_id is not None:
            query = query.where(users.c.namespace_id == namespace_id)
        with self.engine.connect() as conn:
            return [UserRow(*r) for r in conn.execute(query)]

    def update_user(self, username: str, **values: object) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(update(users).where(users.c.username == username)
                                .values(**values)).rowcount > 0

    def change_password(self, username: str, password_hash: str) -> bool:
        """A new password, and the end of every refresh token the old one got, in one
        transaction: no refresh token outlives the password it was issued against."""
        return self._update_user_ending_refresh(username, {"password_hash": password_hash})

    def set_disabled(self, username: str, disabled: bool) -> bool:
        """Disable an account, ending its refresh tokens in the same transaction (they do not
        come back when it is enabled again), or enable it."""
        if not disabled:
            return self.update_user(username, disabled_at=None)
        return self._update_user_ending_refresh(username, {"disabled_at": time.time()})

    def _update_user_ending_refresh(self, username: str, values: dict[str, object]) -> bool:
        """Change a user's row and revoke every refresh token and console session it holds,
        in one transaction."""
        now = time.time()
        with self.engine.begin() as conn:
            user_id = conn.execute(select(users.c.id).where(users.c.username == username)
                                   ).scalar()
            if user_id is None:
                return False
            conn.execute(update(users).where(users.c.id == user_id).values(**values))
            conn.execute(update(access_tokens).where(
                access_tokens.c.user_id == user_id,
                access_tokens.c.kind.in_(("refresh", "session")),
                access_tokens.c.revoked_at.is_(None)).values(revoked_at=now))
        return True

    def delete_user(self, username: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(users).where(users.c.username == username)).rowcount > 0

    def count_admins(self) -> int:
        """Administrators who can still log in (not disabled)."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(users).where(
                users.c.is_admin.is_(True), users.c.kind == "user",
                users.c.disabled_at.is_(None))).scalar_one()

    # -- tokens -------------------------------------------------------------------------
    def create_token(self, token_id: str, user_id: int, kind: str, name: str, secret_hash: str,
                     expires_at: float | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(access_tokens).values(
                id=token_id, user_id=user_id, kind=kind, name=name, secret_hash=secret_hash,
                expires_at=expires_at, created_at=time.time()))

    def token(self, token_id: str) -> TokenRow | None:
        if not _storable(token_id, access_tokens.c.id.type.length):
            return None
        with self.engine.connect() as conn:
            row = conn.execute(select(*_TOKEN_COLS).where(access_tokens.c.id == token_id)).first()
        return TokenRow(*row) if row else None

    def tokens(self, user_id: int, kind: str = "personal") -> list[TokenRow]:
        query = (select(*_TOKEN_COLS).where(access_tokens.c.user_id == user_id,
                                            access_tokens.c.kind == kind)
                 .order_by(access_tokens.c.created_at))
        with self.engine.connect() as conn:
            return [TokenRow(*r) for r in conn.execute(query)]

    def revoke_token(self, token_id: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(update(access_tokens).where(
                access_tokens.c.id == token_id, access_tokens.c.revoked_at.is_(None))
                .values(revoked_at=time.time())).rowcount > 0

    def touch_token(self, token_id: str, at: float | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(access_tokens).where(access_tokens.c.id == token_id)
                         .values(last_used_at=time.time() if at is None else at))

    # -- roles --------------------------------------------------------------------------
    def set_role(self, namespace_id: int, user_id: int, role: str) -> None:
        """A role given by hand: kept as given whatever the account's groups say."""
        with self.engine.begin() as conn:
            changed = conn.execute(update(memberships).where(
                memberships.c.namespace_id == namespace_id, memberships.c.user_id == user_id)
                .values(role=role, granted_by="")).rowcount
            if not changed:
                conn.execute(insert(memberships).values(
                    namespace_id=namespace_id, user_id=user_id, role=role))

    def remove_role(self, namespace_id: int, user_id: int) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(memberships).where(
                memberships.c.namespace_id == namespace_id,
                memberships.c.user_id == user_id)).rowcount > 0

    def members(self, namespace_id: int) -> list[tuple[str, str, str]]:
        """(username, kind, role) of everyone with a role in the namespace."""
        query = (select(users.c.username, users.c.kind, memberships.c.role)
                 .select_from(memberships.join(users))
                 .where(memberships.c.namespace_id == namespace_id).order_by(users.c.username))
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(query)]  # type: ignore[misc]

    def role(self, user_id: int, namespace: str) -> str | None:
        query = (select(memberships.c.role).select_from(memberships.join(namespaces))
                 .where(memberships.c.user_id == user_id, namespaces.c.name == namespace))
        with self.engine.connect() as conn:
            return conn.execute(query).scalar()

    def roles(self, user_id: int) -> dict[str, str]:
        query = (select(namespaces.c.name, memberships.c.role)
                 .select_from(memberships.join(namespaces))
                 .where(memberships.c.user_id == user_id))
        with self.engine.connect() as conn:
            return {r[0]: r[1] for r in conn.execute(query)}

    # -- roles from directory groups ----------------------------------------------------
    def create_group_role(self, group_name: str, namespace_id: int, role: str) -> GroupRoleRow:
        try:
            with self.engine.begin() as conn:
                new_id = conn.execute(insert(group_roles).values(
                    group_name=group_name, namespace_id=namespace_id, role=role,
                    created_at=time.time())).inserted_primary_key[0]  # type: ignore[index]
        except IntegrityError:
            raise Conflict(f"group {group_name!r} already has a role in this namespace") \
                from None
        found = [r for r in self.group_roles() if r.id == new_id]
        return found[0]

    def group_roles(self) -> list[GroupRoleRow]:
        query = (select(group_roles.c.id, group_roles.c.group_name, namespaces.c.name,
                        group_roles.c.role, group_roles.c.created_at)
                 .select_from(group_roles.join(namespaces))
                 .order_by(group_roles.c.group_name, namespaces.c.name))
        with self.engine.connect() as conn:
            return [GroupRoleRow(*r) for r in conn.execute(query)]

    def delete_group_role(self, role_id: int) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(group_roles).where(group_roles.c.id == role_id)
                                ).rowcount > 0

    def sync_group_roles(self, user_id: int, groups: Sequence[str]) -> dict[str, str]:
        """Give the account, at sign-in, the roles its groups hold (the strongest, when two
        groups name one namespace) and take back the ones earlier groups gave and the current
        ones do not. A role given by hand is left as it was given. Returns the roles the
        groups gave, by namespace name."""
        wanted: dict[int, str] = {}
        names: dict[int, str] = {}
        group_list = [g for g in groups if _storable(g, group_roles.c.group_name.type.length)]
        with self.engine.begin() as conn:
            if group_list:
                rows = conn.execute(
                    select(group_roles.c.namespace_id, group_roles.c.role, namespaces.c.name)
                    .select_from(group_roles.join(namespaces))
                    .where(group_roles.c.group_name.in_(group_list[:1000]))).all()
                for ns_id, role, ns_name in rows:
                    names[ns_id] = ns_name
                    if ns_id not in wanted or ROLES.index(role) < ROLES.index(wanted[ns_id]):
                        wanted[ns_id] = role
            held = {r[0]: (r[1], r[2]) for r in conn.execute(
                select(memberships.c.namespace_id, memberships.c.role, memberships.c.granted_by)
                .where(memberships.c.user_id == user_id))}
            for ns_id, (role, granted_by) in held.items():
                if granted_by == "sso" and ns_id not in wanted:
                    conn.execute(delete(memberships).where(
                        memberships.c.namespace_id == ns_id, memberships.c.user_id == user_id))
            for ns_id, role in wanted.items():
                if ns_id not in held:
                    conn.execute(insert(memberships).values(
                        namespace_id=ns_id, user_id=user_id, role=role, granted_by="sso"))
                elif held[ns_id][1] == "sso" and held[ns_id][0] != role:
                    conn.execute(update(memberships).where(
                        memberships.c.namespace_id == ns_id, memberships.c.user_id == user_id)
                        .values(role=role))
        return {names[ns_id]: role for ns_id, role in wanted.items()}

    # -- network rules ------------------------------------------------------------------
    def create_rule(self, namespace_id: int | None, cidr: str, kind: str,
                    description: str = "") -> int:
        try:
            with self.engine.begin() as conn:
                return conn.execute(insert(network_rules).values(
                    namespace_id=namespace_id, cidr=cidr, kind=kind, description=description,
                    created_at=time.time()).returning(network_rules.c.id)).scalar_one()
        except IntegrityError:
            raise Conflict(f"a {kind} rule for {cidr} already exists there") from None

    def rules(self) -> list[NetworkRuleRow]:
        return self.rules_of(self.rule_rows())

    def rule_rows(self) -> list[tuple[object, ...]]:
        """The rules' rows as they are now; the same list while nothing was committed
        (SQLite), so that callers can keep what they made of it (authorization.py)."""
        return self.reads.cached_rows(_NETWORK_RULES, ())

    @staticmethod
    def rules_of(rows: list[tuple[object, ...]]) -> list[NetworkRuleRow]:
        return [NetworkRuleRow(*r) for r in rows]  # type: ignore[arg-type]

    def delete_rule(self, rule_id: int) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(network_rules).where(
                network_rules.c.id == rule_id)).rowcount > 0


class LoginFailureStore:
    """The counts behind login lockouts (access/throttle.py) in the database, for instances
    without Redis: every worker process, and every replica, sees the same counts."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def failures(self, keys: Sequence[str], now: float,
                 window: float) -> dict[str, tuple[int, float]]:
        query = select(login_failures.c.key, login_failures.c.failures,
                       login_failures.c.last_failure_at).where(
            login_failures.c.key.in_(list(keys)),
            login_failures.c.last_failure_at >= now - window)
        with self.engine.connect() as conn:
            return {r[0]: (int(r[1]), float(r[2])) for r in conn.execute(query)}

    def add_failure(self, keys: Sequence[str], now: float,
                    window: float) -> dict[str, tuple[int, float]]:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as upsert
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert
        stale = now - window
        counts: dict[str, tuple[int, float]] = {}
        with self.engine.begin() as conn:
            for key in sorted(keys):  # one order for every writer: no deadlock on PostgreSQL
                statement = upsert(login_failures).values(key=key, failures=1,
                                                          last_failure_at=now)
                statement = statement.on_conflict_do_update(
                    index_elements=[login_failures.c.key],
                    set_={"failures": case((login_failures.c.last_failure_at < stale, 1),
                                           else_=login_failures.c.failures + 1),
                          "last_failure_at": now},
                ).returning(login_failures.c.failures)
                counts[key] = (int(conn.execute(statement).scalar_one()), now)
            # Forgotten counts go with the next failure; the index keeps this a short walk.
            conn.execute(delete(login_failures).where(login_failures.c.last_failure_at < stale))
        return counts

    def clear(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(login_failures).where(login_failures.c.key == key))
