"""What may this principal do, from where? Roles, visibility, networks, editions.

Every decision comes with a reason a person can act on: the role held and the role needed,
the address and the allowlist that refused it, the quota and its value.
"""

from __future__ import annotations

from dataclasses import dataclass

from moorage.access.editions import Edition
from moorage.access.network import Address, Network, in_any, parse_network
from moorage.access.principal import Principal
from moorage.access.roles import ROLE_ACTIONS, least_role_for
from moorage.access.scopes import ACTIONS, Scope
from moorage.db.access import AccessStore
from moorage.oci.errors import RegistryError
from moorage.oci.names import is_valid_name, namespace_of

REGISTRY_ACTIONS = frozenset(ACTIONS)


@dataclass(frozen=True)
class NetworkPolicy:
    """The CIDR rules, parsed: remade only when the rows they come from change."""

    instance_allow: tuple[Network, ...]
    namespace_allow: dict[str, tuple[Network, ...]]
    trusted: tuple[Network, ...]


def implied(asked: frozenset[str]) -> frozenset[str]:
    """The repository actions a scope stands for: `push` implies `delete`.

    go-containerregistry (`crane delete`) asks for `push,pull` before a DELETE and asks again
    only after a 401, while oras-py, holding a token, retries a 401 with that same token and
    fetches a new one only after a 403. Answering a missing action with 403 (RFC 6750) keeps
    oras-py working; letting `push` carry `delete` makes crane's first DELETE succeed. The
    grant is still the intersection with what is held, so nobody gains a right: a developer's
    push token has no delete in it, and every push or delete checks the role again anyway.
    """
    return asked | {"delete"} if "push" in asked else asked


class Authorizer:
    def __init__(self, store: AccessStore, edition: Edition, auto_create_namespace: bool = True,
                 namespace_creators: str = "everyone") -> None:
        self.store = store
        self.edition = edition
        self.auto_create_namespace = auto_create_namespace
        self.namespace_creators = namespace_creators
        # The rows last read and the policy made of them, as one value (threads share it).
        self._policy: tuple[object, NetworkPolicy] | None = None

    # -- networks -----------------------------------------------------------------------
    def policy(self) -> NetworkPolicy:
        """The rules as the database has them now, whichever process changed them.

        The rows come through RawReader (kept until the next commit by any process on
        SQLite, asked each time on PostgreSQL); only parsing them is saved while they stay
        the same. A copy with a lifetime of its own let every other worker or replica
        allow an address, or a credential-free pull, for seconds after a rule changed.
        """
        rows = self.store.rule_rows()
        cached = self._policy
        if cached is not None and (rows is cached[0] or rows == cached[0]):
            return cached[1]
        policy = self._load_policy(rows)
        self._policy = (rows, policy)
        return policy

    def _load_policy(self, rows: list[tuple[object, ...]]) -> NetworkPolicy:
        instance: list[Network] = []
        per_ns: dict[str, list[Network]] = {}
        trusted: list[Network] = []
        for rule in self.store.rules_of(rows):
            network = parse_network(rule.cidr)
            if rule.kind == "trusted":
                trusted.append(network)
            elif rule.namespace is None:
                instance.append(network)
            else:
                per_ns.setdefault(rule.namespace, []).append(network)
        # Allowlists are a feature of the edition; on an edition without it they are inert.
        if not self.edition.has("network_acl"):
            instance, per_ns = [], {}
        return NetworkPolicy(tuple(instance), {k: tuple(v) for k, v in per_ns.items()},
                             tuple(trusted))

    def check_instance_network(self, address: Address | None) -> None:
        allow = self.policy().instance_allow
        if allow and (address is None or not in_any(address, allow)):
            raise RegistryError("DENIED", f"address {address} is not in this registry's "
                                          f"allowlist", detail={"reason": "network"})

    def check_namespace_network(self, address: Address | None, namespace: str) -> None:
        allow = self.policy().namespace_allow.get(namespace)
        if allow and (address is None or not in_any(address, allow)):
            raise RegistryError("DENIED", f"address {address} is not in the allowlist of "
                                          f"namespace {namespace}", detail={"reason": "network"})

    def trusted(self, address: Address | None) -> bool:
        return address is not None and in_any(address, self.policy().trusted)

    # -- repositories -------------------------------------------------------------------
    def may_create_namespace(self, principal: Principal) -> bool:
        if principal.is_admin:
            return True
        return principal.kind == "user" and self.namespace_creators == "everyone"

    def permissions(self, principal: Principal, name: str,
                    address: Address | None) -> frozenset[str]:
        """The registry actions (pull, push, delete) held on one repository."""
        if principal.is_admin:
            return REGISTRY_ACTIONS
        namespace = namespace_of(name)
        held: set[str] = set()
        role = self._role(principal, namespace)
        if role is not None:
            held |= ROLE_ACTIONS[role] & REGISTRY_ACTIONS
        if "pull" not in held:
            visibility = self.store.repository_visibility(name)
            if visibility is None:
                ns = self.store.namespace(namespace)
                if ns is None:
                    if self.auto_create_namespace and self.may_create_namespace(principal):
                        held |= {"pull", "push"}  # the first push creates it, owned by them
                    return frozenset(held)
                visibility = (ns.visibility, ns.name, ns.credential_free_pull)
            repo_visibility, _, credential_free = visibility
            if repo_visibility == "public":
                held.add("pull")
            elif credential_free and self.trusted(address):
                held.add("pull")
        return frozenset(held)

    def _role(self, principal: Principal, namespace: str) -> str | None:
        """The principal's role in a namespace (a robot has one only in its own)."""
        if principal.id is None:
            return None
        if principal.kind == "robot" and principal.robot_namespace != namespace:
            return None
        return self.store.role(principal.id, namespace)

    def pullable(self, principal: Principal, namespace: str, names: list[str],
                 address: Address | None) -> set[str]:
        """Which of a namespace's repositories the principal may pull, as `permissions` would
        answer for each, with the role and the visibilities looked up once: a listing (a
        chart repository's index.yaml, on every request) costs two queries, not one a
        repository (the visibilities are remembered until the next commit)."""
        names = [name for name in names if namespace_of(name) == namespace]
        if principal.is_admin:
            return set(names)
        role = self._role(principal, namespace)
        if role is not None and "pull" in ROLE_ACTIONS[role]:
            return set(names)
        known = self.store.visibility_overrides(namespace)
        if known is None:
            return set()  # no such namespace: nothing in it to pull
        visibility, credential_free, overrides = known
        if credential_free and self.trusted(address):
            return set(names)
        return {name for name in names if overrides.get(name, visibility) == "public"}

    def denial(self, principal: Principal, name: str, action: str) -> RegistryError:
        """Why a principal may not do something, in words."""
        namespace = namespace_of(name)
        if principal.anonymous:
            return RegistryError("UNAUTHORIZED", f"authentication required to {action} {name}")
        if principal.kind == "robot" and principal.robot_namespace != namespace:
            message = (f"robot {principal.username} belongs to namespace "
                       f"{principal.robot_namespace} and cannot {action} {name}")
        else:
            role = self.store.role(principal.id, namespace) if principal.id else None
            needed = least_role_for(action)
            if role is None:
                message = (f"{principal.describe()} has no role in namespace {namespace}; "
                           f"{action} needs {needed} or higher")
            else:
                message = (f"{principal.describe()} has role {role} in namespace {namespace}; "
                           f"{action} needs {needed} or higher")
        return RegistryError("DENIED", message, detail={"reason": "role"})

    def grant(self, principal: Principal, scopes: list[Scope],
              address: Address | None) -> list[Scope]:
        """The intersection of what was asked and what is held, scope by scope.

        Blocking (a few lookups per repository). The same repository asked for twice is
        looked up once, and a name no repository can have is not looked up at all; the token
        endpoint caps the number of scopes per request. What is asked for is read with
        `implied`: `push` brings `delete` along, for those who hold it."""
        held: dict[str, frozenset[str]] = {}
        granted: list[Scope] = []
        for scope in scopes:
            if scope.type == "repository":
                if scope.name not in held:
                    held[scope.name] = self.permissions(principal, scope.name, address) \
                        if is_valid_name(scope.name) else frozenset()
                actions = implied(scope.actions) & held[scope.name]
            elif scope.type == "registry" and scope.name == "catalog":
                actions = scope.actions if not principal.anonymous else frozenset()
            else:
                actions = frozenset()
            granted.append(Scope(scope.type, scope.name, frozenset(actions)))
        return granted
