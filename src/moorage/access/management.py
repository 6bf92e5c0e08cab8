"""Managing namespaces, repositories, accounts, roles and rules, with who-may-do-what.

Every method takes the acting principal and refuses with an AccessError that says why; the
API and the CLI are thin layers over these.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from moorage.access.authentication import make_token
from moorage.access.authorization import Authorizer
from moorage.access.editions import Edition
from moorage.access.errors import AlreadyExists, Forbidden, Invalid, NotFound
from moorage.access.identity import SOURCE_NAMES, USERNAME_RE, check_source
from moorage.access.network import Address, in_any, parse_network
from moorage.access.principal import Principal
from moorage.access.roles import ROLE_ACTIONS, ROLES
from moorage.access.secrets import hash_password, hash_secret, new_secret
from moorage.db.holders import Guard, inspect_with
from moorage.db.access import (AccessStore, Conflict, GroupRoleRow, NamespaceRow,
                               NetworkRuleRow, RepositoryRow, TokenRow, UserRow)
from moorage.oci.errors import RegistryError
from moorage.oci.names import namespace_of

_NAMESPACE_RE = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$")
_USERNAME_RE = USERNAME_RE
_ROBOT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
VISIBILITIES = ("private", "public")
MAX_GROUP_NAME = 1024  # group_roles.group_name
INHERIT = "inherit"  # a repository's visibility: its namespace's, whatever it becomes
TOKEN_KINDS = ("personal", "refresh")
MIN_PASSWORD = 8


@dataclass(frozen=True)
class CreatedSecret:
    """A secret shown once, at creation; afterwards only its id and metadata are visible."""

    id: str
    name: str
    secret: str
    expires_at: float | None


def robot_username(namespace: str, name: str) -> str:
    return f"robot${namespace}+{name}"


class AccessManager:
    def __init__(self, store: AccessStore, authorizer: Authorizer, edition: Edition) -> None:
        self.store = store
        self.authorizer = authorizer
        self.edition = edition
        # where accounts may sign in: "ldap" and "oidc" are added by the sso feature when
        # configured (an account may be switched only to a source that is)
        self.sources: set[str] = {"local"}
        # Asked, inside the deleting transaction, before a namespace goes (immutability).
        self.guards: list[Guard] = []

    # -- helpers ------------------------------------------------------------------------
    def _namespace(self, name: str) -> NamespaceRow:
        ns = self.store.namespace(name)
        if ns is None:
            raise NotFound(f"namespace {name} does not exist")
        return ns

    def _role(self, principal: Principal, namespace: str) -> str | None:
        if principal.id is None:
            return None
        if principal.kind == "robot" and principal.robot_namespace != namespace:
            return None
        return self.store.role(principal.id, namespace)

    def _require(self, principal: Principal, namespace: str, action: str) -> None:
        if principal.is_admin:
            return
        role = self._role(principal, namespace)
        if role is None or action not in ROLE_ACTIONS[role]:
            needed = next(r for r in reversed(ROLES) if action in ROLE_ACTIONS[r])
            held = f"role {role}" if role else "no role"
            raise Forbidden(f"{principal.describe()} has {held} in namespace {namespace}; "
                            f"this needs {needed} or higher")

    def require_namespace_action(self, principal: Principal, namespace: str,
                                 action: str) -> NamespaceRow:
        """For features that attach rules to namespaces: the namespace, if the role allows."""
        ns = self._namespace(namespace)
        self._require(principal, namespace, action)
        return ns

    def require_admin(self, principal: Principal) -> None:
        self._require_admin(principal)

    @staticmethod
    def _require_admin(principal: Principal) -> None:
        if not principal.is_admin:
            raise Forbidden("only instance administrators may do this")

    def _can_see(self, principal: Principal, ns: NamespaceRow) -> bool:
        return (principal.is_admin or ns.visibility == "public"
                or self._role(principal, ns.name) is not None)

    # -- pushes -------------------------------------------------------------------------
    def prepare_push(self, principal: Principal, repository: str) -> None:
        """Before the first byte of a push: create the namespace if allowed, check quotas."""
        namespace = namespace_of(repository)
        if self.store.repository_visibility(repository) is not None:
            return
        if self.store.namespace(namespace) is None:
            if not (self.authorizer.auto_create_namespace
                    and self.authorizer.may_create_namespace(principal)):
                raise RegistryError("DENIED", f"namespace {namespace} does not exist and "
                                              f"{principal.describe()} may not create it",
                                    detail={"reason": "namespace"})
            self.edition.check_quota("namespaces", self.store.count_namespaces())
            try:
                ns = self.store.create_namespace(namespace)
            except Conflict:
                pass  # created by a concurrent push a moment ago
            else:
                if principal.id is not None and principal.kind == "user":
                    self.store.set_role(ns.id, principal.id, "owner")
        self.edition.check_quota("repositories", self.store.count_repositories())

    # -- namespaces ---------------------------------------------------------------------
    def create_namespace(self, principal: Principal, name: str, visibility: str = "private",
                         description: str = "", credential_free_pull: bool = False) -> NamespaceRow:
        if not self.authorizer.may_create_namespace(principal):
            raise Forbidden(f"{principal.describe()} may not create namespaces")
        if len(name) > 64 or not _NAMESPACE_RE.match(name):
            raise Invalid(f"invalid namespace name {name!r}: lowercase letters, digits and "
                          f"separators (. _ -), at most 64 characters")
        if visibility not in VISIBILITIES:
            raise Invalid(f"visibility must be one of {', '.join(VISIBILITIES)}")
        self.edition.check_quota("namespaces", self.store.count_namespaces())
        try:
            ns = self.store.create_namespace(name, visibility, description, credential_free_pull)
        except Conflict as exc:
            raise AlreadyExists(str(exc)) from None
        if principal.id is not None and principal.kind == "user":
            self.store.set_role(ns.id, principal.id, "owner")
        return ns

    def list_namespaces(self, principal: Principal) -> list[NamespaceRow]:
        return [ns for ns in self.store.namespaces() if self._can_see(principal, ns)]

    def get_namespace(self, principal: Principal, name: str) -> NamespaceRow:
        ns = self._namespace(name)
        if not self._can_see(principal, ns):
            raise NotFound(f"namespace {name} does not exist")
        return ns

    def update_namespace(self, principal: Principal, name: str, visibility: str | None = None,
                         description: str | None = None,
                         credential_free_pull: bool | None = None,
                         storage_quota: int | None | object = ...) -> NamespaceRow:
        """Only the arguments given change; `storage_quota=None` removes the quota, and only
        an administrator may set it (it is a limit on the namespace's owners)."""
        self._namespace(name)
        self._require(principal, name, "manage_members")
        values: dict[str, object] = {}
        if storage_quota is not ...:
            self._require_admin(principal)
            if storage_quota is not None and (not isinstance(storage_quota, int)
                                              or storage_quota < 0):
                raise Invalid("storage_quota must be a number of bytes, or null for none")
            values["storage_quota"] = storage_quota
        if visibility is not None:
            if visibility not in VISIBILITIES:
                raise Invalid(f"visibility must be one of {', '.join(VISIBILITIES)}")
            values["visibility"] = visibility
        if description is not None:
            values["description"] = description
        if credential_free_pull is not None:
            values["credential_free_pull"] = credential_free_pull
        if values:
            self.store.update_namespace(name, **values)
        return self._namespace(name)

    def delete_namespace(self, principal: Principal, name: str) -> None:
        """Refused while an immutable tag is in it, for administrators too: they may force
        the delete of each repository (recorded as forced), then delete the namespace."""
        self._namespace(name)
        self._require(principal, name, "manage_members")
        self.store.delete_namespace(name, inspect_with(self.guards, f"namespace {name}",
                                                       contains=True))

    # -- repositories -------------------------------------------------------------------
    def list_repositories(self, principal: Principal, namespace: str | None = None
                          ) -> list[RepositoryRow]:
        """Every repository the caller may see, by name (repository_page: a page of them)."""
        return self.repository_page(principal, namespace, limit=2**31 - 1)[0]

    def repository_page(self, principal: Principal, namespace: str | None = None,
                        search: str = "", sort: str = "name", limit: int = 100,
                        offset: int = 0) -> tuple[list[RepositoryRow], int]:
        """A page of the repositories the caller may see, and how many there are in all:
        those get_repository shows them (public ones, and all of the namespaces they hold a
        role in), chosen, sorted and cut into pages by the database."""
        return self.store.repository_page(self._member_of(principal), namespace, search, sort,
                                          limit, offset)

    def _member_of(self, principal: Principal) -> set[str] | None:
        """The namespaces whose every repository the principal sees; None: all of them."""
        if principal.is_admin:
            return None
        if principal.id is None:
            return set()
        roles = self.store.roles(principal.id)
        if principal.kind == "robot":
            return {principal.robot_namespace} & set(roles) if principal.robot_namespace \
                else set()
        return set(roles)

    def get_repository(self, principal: Principal, name: str) -> RepositoryRow:
        repo = self.store.repository(name)
        if repo is None or not (principal.is_admin or repo.visibility == "public"
                                or self._role(principal, repo.namespace)):
            raise NotFound(f"repository {name} does not exist")
        return repo

    def update_repository(self, principal: Principal, name: str, visibility: str | None = None,
                          description: str | None = None) -> RepositoryRow:
        """`visibility`: its own (public, private), or `inherit` to follow the namespace's."""
        repo = self.get_repository(principal, name)
        self._require(principal, repo.namespace, "delete")
        values: dict[str, object] = {}
        if visibility is not None:
            if visibility not in (*VISIBILITIES, INHERIT):
                raise Invalid(f"visibility must be one of {', '.join(VISIBILITIES)} or "
                              f"{INHERIT}")
            values["visibility"] = None if visibility == INHERIT else visibility
        if description is not None:
            values["description"] = description
        if values:
            self.store.update_repository(name, **values)
        return self.get_repository(principal, name)

    def require_repository_delete(self, principal: Principal, name: str,
                                  force: bool) -> RepositoryRow:
        """Deleting needs the delete permission; forcing past immutable tags, an
        administrator."""
        repo = self.require_repository_action(principal, name, "delete")
        if force and not principal.is_admin:
            raise Forbidden("only instance administrators may force the deletion of a "
                            "repository past its immutable tags")
        return repo

    def require_repository_action(self, principal: Principal, name: str, action: str) -> RepositoryRow:
        repo = self.get_repository(principal, name)
        if action != "pull":
            self._require(principal, repo.namespace, action)
        return repo

    # -- users --------------------------------------------------------------------------
    def create_user(self, principal: Principal, username: str, password: str,
                    is_admin: bool = False) -> UserRow:
        self._require_admin(principal)
        if not _USERNAME_RE.match(username):
            raise Invalid(f"invalid username {username!r}")
        if len(password) < MIN_PASSWORD:
            raise Invalid(f"password must have at least {MIN_PASSWORD} characters")
        try:
            return self.store.create_user(username, hash_password(password), is_admin=is_admin)
        except Conflict as exc:
            raise AlreadyExists(str(exc)) from None

    def list_users(self, principal: Principal) -> list[UserRow]:
        self._require_admin(principal)
        return self.store.users("user")

    def get_user(self, principal: Principal, username: str) -> UserRow:
        if not principal.is_admin and principal.username != username:
            raise Forbidden("only administrators may look at other accounts")
        user = self.store.user(username)
        if user is None or user.kind != "user":
            raise NotFound(f"user {username} does not exist")
        return user

    def update_user(self, principal: Principal, username: str, password: str | None = None,
                    is_admin: bool | None = None, disabled: bool | None = None,
                    source: str | None = None) -> UserRow:
        user = self.get_user(principal, username)
        values: dict[str, object] = {}
        new_hash = None
        switch = source is not None and source != user.source
        if switch:
            self._require_admin(principal)
            assert source is not None
            refusal = check_source(source, self.sources)
            if refusal:
                raise Invalid(refusal)
            if source == "local" and password is None:
                raise Invalid("an account switched to a local password needs one: give "
                              "password with source")
        if password is not None and (source or user.source) != "local":
            raise Invalid(f"the account {username} signs in with "
                          f"{SOURCE_NAMES[source or user.source]}: its password is not kept "
                          f"here")
        if password is not None:
            if len(password) < MIN_PASSWORD:
                raise Invalid(f"password must have at least {MIN_PASSWORD} characters")
            new_hash = hash_password(password)
        if is_admin is not None:
            self._require_admin(principal)
            if not is_admin and self._last_admin(user):
                raise Invalid("the last administrator cannot be demoted")
            values["is_admin"] = is_admin
        if disabled is not None:
            self._require_admin(principal)
            if disabled and self._last_admin(user):
                raise Invalid("the last administrator cannot be disabled")
        if values:
            self.store.update_user(username, **values)
        if switch:
            assert source is not None
            self.store.set_source(username, source)  # its sessions and refresh tokens end
        if new_hash is not None:
            # The refresh tokens the old password got end with it, in the same transaction.
            self.store.change_password(username, new_hash)
        if disabled is not None and disabled != (user.disabled_at is not None):
            self.store.set_disabled(username, disabled)  # with its refresh tokens
        return self.get_user(principal, username)

    def delete_user(self, principal: Principal, username: str) -> None:
        self._require_admin(principal)
        user = self.get_user(principal, username)
        if self._last_admin(user):
            raise Invalid("the last administrator cannot be deleted")
        self.store.delete_user(username)

    def _last_admin(self, user: UserRow) -> bool:
        """Whether the user is the one administrator left who can log in: demoting,
        disabling or deleting them would leave the instance without one."""
        return user.is_admin and user.disabled_at is None and self.store.count_admins() <= 1

    # -- robots -------------------------------------------------------------------------
    def create_robot(self, principal: Principal, namespace: str, name: str,
                     role: str = "developer", description: str = "",
                     expires_in_days: float | None = None) -> tuple[UserRow, CreatedSecret]:
        ns = self._namespace(namespace)
        self._require(principal, namespace, "manage_members")
        if not _ROBOT_NAME_RE.match(name):
            raise Invalid(f"invalid robot name {name!r}")
        if role not in ROLES or role == "owner":
            raise Invalid("a robot's role is maintainer, developer or guest")
        if expires_in_days is not None and expires_in_days <= 0:
            raise Invalid("expires_in_days must be positive")
        secret = new_secret()
        expires = time.time() + expires_in_days * 86400 if expires_in_days else None
        username = robot_username(namespace, name)
        try:
            robot = self.store.create_user(username, hash_secret(secret), kind="robot",
                                           namespace_id=ns.id, description=description,
                                           expires_at=expires)
        except Conflict as exc:
            raise AlreadyExists(str(exc)) from None
        self.store.set_role(ns.id, robot.id, role)
        return robot, CreatedSecret(str(robot.id), username, secret, expires)

    def list_robots(self, principal: Principal, namespace: str) -> list[tuple[UserRow, str]]:
        ns = self._namespace(namespace)
        self._require(principal, namespace, "manage_rules")
        roles = {username: role for username, _, role in self.store.members(ns.id)}
        return [(r, roles.get(r.username, "")) for r in self.store.users("robot", ns.id)]

    def delete_robot(self, principal: Principal, namespace: str, name: str) -> None:
        self._namespace(namespace)
        self._require(principal, namespace, "manage_members")
        if not self.store.delete_user(robot_username(namespace, name)):
            raise NotFound(f"robot {name} does not exist in namespace {namespace}")

    # -- personal access tokens ---------------------------------------------------------
    def create_token(self, principal: Principal, name: str,
                     expires_in_days: float | None = 90) -> CreatedSecret:
        if principal.kind != "user" or principal.id is None:
            raise Forbidden("only users have personal access tokens")
        if not name or len(name) > 100:
            raise Invalid("a token needs a name of at most 100 characters")
        if expires_in_days is not None and expires_in_days <= 0:
            raise Invalid("expires_in_days must be positive")
        token_id, token, secret_hash = make_token("personal")
        expires = time.time() + expires_in_days * 86400 if expires_in_days else None
        self.store.create_token(token_id, principal.id, "personal", name, secret_hash, expires)
        return CreatedSecret(token_id, name, token, expires)

    def list_tokens(self, principal: Principal, username: str | None = None,
                    kind: str = "personal") -> list[TokenRow]:
        """An account's personal access tokens or OAuth2 refresh tokens: one's own (users
        and robots alike), or anyone's for an administrator."""
        if kind not in TOKEN_KINDS:
            raise Invalid(f"kind must be one of {', '.join(TOKEN_KINDS)}")
        if username is None or username == principal.username:
            if principal.id is None:
                raise Forbidden("anonymous callers have no tokens")
            owner = principal.id
        else:
            if not principal.is_admin:
                raise Forbidden("only administrators may look at other accounts")
            user = self.store.user(username)
            if user is None:
                raise NotFound(f"account {username} does not exist")
            owner = user.id
        return self.store.tokens(owner, kind)

    def revoke_token(self, principal: Principal, token_id: str) -> None:
        row = self.store.token(token_id)
        if row is None or (row.user_id != principal.id and not principal.is_admin):
            raise NotFound(f"token {token_id} does not exist")
        self.store.revoke_token(token_id)

    # -- roles --------------------------------------------------------------------------
    def members(self, principal: Principal, namespace: str) -> list[tuple[str, str, str]]:
        ns = self._namespace(namespace)
        if not principal.is_admin and self._role(principal, namespace) is None:
            raise Forbidden(f"{principal.describe()} is not a member of namespace {namespace}")
        return self.store.members(ns.id)

    def set_role(self, principal: Principal, namespace: str, username: str, role: str) -> None:
        ns = self._namespace(namespace)
        self._require(principal, namespace, "manage_members")
        if role not in ROLES:
            raise Invalid(f"role must be one of {', '.join(ROLES)}")
        user = self.store.user(username)
        if user is None:
            raise NotFound(f"account {username} does not exist")
        if user.kind == "robot" and user.namespace_id != ns.id:
            raise Invalid("a robot can only hold a role in its own namespace")
        self.store.set_role(ns.id, user.id, role)

    def remove_role(self, principal: Principal, namespace: str, username: str) -> None:
        ns = self._namespace(namespace)
        self._require(principal, namespace, "manage_members")
        user = self.store.user(username)
        if user is None or not self.store.remove_role(ns.id, user.id):
            raise NotFound(f"{username} has no role in namespace {namespace}")

    # -- roles from directory groups (single sign-on) -------------------------------------
    def list_group_roles(self, principal: Principal) -> list[GroupRoleRow]:
        """Administrators only: who gets which role is the instance's policy."""
        self._require_admin(principal)
        return self.store.group_roles()

    def create_group_role(self, principal: Principal, group: str, namespace: str,
                          role: str) -> GroupRoleRow:
        """Members of `group` (an LDAP group DN, an OpenID groups-claim value) get `role` in
        `namespace` at their next sign-in, and lose it at the first one without the group."""
        self._require_admin(principal)
        group = group.strip()
        if not group or len(group) > MAX_GROUP_NAME or not group.isprintable():
            raise Invalid(f"group must be 1 to {MAX_GROUP_NAME} printable characters (an LDAP "
                          f"group DN or a groups-claim value)")
        if role not in ROLES:
            raise Invalid(f"role must be one of {', '.join(ROLES)}")
        ns = self._namespace(namespace)
        try:
            return self.store.create_group_role(group, ns.id, role)
        except Conflict:
            raise AlreadyExists(f"group {group[:100]} already has a role in namespace "
                                f"{namespace}; remove it first") from None

    def delete_group_role(self, principal: Principal, mapping_id: int) -> None:
        """The roles it gave stay until each member's next sign-in, which takes them back."""
        self._require_admin(principal)
        if not self.store.delete_group_role(mapping_id):
            raise NotFound(f"group role {mapping_id} does not exist")

    # -- network rules ------------------------------------------------------------------
    def create_rule(self, principal: Principal, cidr: str, kind: str = "allow",
                    namespace: str | None = None, description: str = "",
                    caller: Address | None = None) -> NetworkRuleRow:
        if kind not in ("allow", "trusted"):
            raise Invalid("kind must be allow or trusted")
        if kind == "allow":
            self.edition.require("network_acl")
        else:
            self.edition.require("credential_free_pull")
        try:
            network = parse_network(cidr)
        except ValueError as exc:
            raise Invalid(str(exc)) from None
        if namespace is None:
            self._require_admin(principal)
            if kind == "trusted":
                ns_id = None
            else:
                existing = [parse_network(r.cidr) for r in self.store.rules()
                            if r.kind == "allow" and r.namespace is None]
                if caller is not None and not in_any(caller, [*existing, network]):
                    raise Invalid(f"this rule would lock you out: your address {caller} is "
                                  f"not in {network} nor in another instance allow rule")
                ns_id = None
        else:
            if kind == "trusted":
                raise Invalid("trusted networks are instance-wide; namespaces opt in with "
                              "credential_free_pull")
            ns_id = self._namespace(namespace).id
            self._require(principal, namespace, "manage_rules")
        if any(r.namespace == namespace and r.cidr == str(network) and r.kind == kind
               for r in self.store.rules()):
            raise AlreadyExists(f"a {kind} rule for {network} already exists there")
        try:
            rule_id = self.store.create_rule(ns_id, str(network), kind, description)
        except Conflict as exc:
            raise AlreadyExists(str(exc)) from None
        return next(r for r in self.store.rules() if r.id == rule_id)

    def list_rules(self, principal: Principal) -> list[NetworkRuleRow]:
        return [r for r in self.store.rules()
                if principal.is_admin or (r.namespace is not None
                                          and self._role(principal, r.namespace))]

    def delete_rule(self, principal: Principal, rule_id: int,
                    caller: Address | None = None) -> None:
        rules = self.store.rules()
        rule = next((r for r in rules if r.id == rule_id), None)
        if rule is None:
            raise NotFound(f"network rule {rule_id} does not exist")
        if rule.namespace is None:
            self._require_admin(principal)
            remaining = [parse_network(r.cidr) for r in rules
                         if r.kind == "allow" and r.namespace is None and r.id != rule_id]
            if rule.kind == "allow" and remaining and caller is not None \
                    and not in_any(caller, remaining):
                raise Invalid(f"deleting this rule would lock you out: your address {caller} "
                              f"is in no other instance allow rule")
        else:
            self._require(principal, rule.namespace, "manage_rules")
        self.store.delete_rule(rule_id)

    # -- instance -----------------------------------------------------------------------
    def usage(self) -> dict[str, int]:
        return {"namespaces": self.store.count_namespaces(),
                "repositories": self.store.count_repositories()}

    def bootstrap_admin(self, password: str | None) -> str | None:
        """Create `admin` on first start; returns the password if it had to be generated."""
        if self.store.user("admin") is not None:
            return None
        generated = None
        if not password:
            generated = password = new_secret(18)
        try:
            self.store.create_user("admin", hash_password(password), is_admin=True)
        except Conflict:
            return None
        return generated
