"""Authentication and authorization of registry requests, in HTTP terms.

Decides, per request, who is asking (Basic credentials, a bearer token, or nobody) and answers
refusals the way Docker and OCI clients expect: 401 with a `WWW-Authenticate: Bearer` challenge
naming the scope to ask for, or 403 DENIED with the reason when asking again would not help.
"""

from __future__ import annotations

from dataclasses import dataclass

from moorage.access.authentication import Authenticator, parse_basic
from moorage.access.authorization import REGISTRY_ACTIONS, Authorizer
from moorage.access.errors import Unauthenticated
from moorage.access.management import AccessManager
from moorage.access.network import (Address, Network, client_address, parse_address,
                                    parse_network)
from moorage.access.principal import ANONYMOUS, Principal
from moorage.access.tokens import Claims, TokenInvalid, TokenIssuer
from moorage.oci.errors import RegistryError
from moorage.registry.events import Event, EventBus
from moorage.web.ratelimit import RateLimiter
from moorage.oci.names import namespace_of
from moorage.web.http import Scope, header

# With auth off, every request acts as this principal: anything goes, nobody is recorded.
OPEN = Principal(None, "", "anonymous", is_admin=True)


@dataclass
class Caller:
    """Who made a request and from where; the principal is resolved lazily for tokens."""

    address: Address | None
    principal: Principal | None
    claims: Claims | None = None

    @property
    def actor(self) -> str:
        """The name to record: the user or robot, or "anonymous"."""
        if self.principal is not None:
            return self.principal.username or "anonymous"
        return (self.claims.subject if self.claims else "") or "anonymous"


class RegistryAccess:
    def __init__(self, enabled: bool, authenticator: Authenticator, authorizer: Authorizer,
                 manager: AccessManager, issuer: TokenIssuer, trusted_proxies: list[Network],
                 proxy_header: str, bus: EventBus | None = None) -> None:
        self.enabled = enabled
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.manager = manager
        self.issuer = issuer
        self.trusted_proxies = trusted_proxies
        self.proxy_header = proxy_header
        self.bus = bus or EventBus()
        self.limiter: RateLimiter | None = None

    def login(self, scope: Scope, username: str, password: str) -> Principal:
        """Check credentials and record the attempt, whatever its outcome."""
        address = str(self.address(scope) or "")
        try:
            principal = self.authenticator.login(username, password)
        except Unauthenticated as exc:
            self.bus.publish(Event("login", result="failure", target=self.issuer.service,
                                   actor=username[:255], address=address,
                                   detail={"reason": exc.message}))
            raise
        self.bus.publish(Event("login", target=self.issuer.service, actor=username,
                               address=address))
        return principal

    @classmethod
    def proxies(cls, setting: str) -> list[Network]:
        return [parse_network(c) for c in setting.split(",") if c.strip()]

    # -- who ----------------------------------------------------------------------------
    def address(self, scope: Scope) -> Address | None:
        client = scope.get("client")
        peer = client[0] if client else None
        if not self.trusted_proxies:
            return parse_address(peer) if peer else None
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        return client_address(peer, headers, self.trusted_proxies, self.proxy_header)

    def realm(self, scope: Scope) -> str:
        host = header(scope, b"host") or "localhost"
        return f"{scope.get('scheme', 'http')}://{host}/auth/token"

    def challenge(self, scope: Scope, resource: str | None, message: str,
                  error: str | None = None) -> RegistryError:
        parts = [f'realm="{self.realm(scope)}"', f'service="{self.issuer.service}"']
        if resource:
            parts.append(f'scope="{resource}"')
        if error:
            parts.append(f'error="{error}"')
        return RegistryError("UNAUTHORIZED", message,
                             headers={"www-authenticate": "Bearer " + ",".join(parts)})

    def insufficient(self, scope: Scope, resource: str, message: str) -> RegistryError:
        error = self.challenge(scope, resource, message, "insufficient_scope")
        return RegistryError("DENIED", message, status=403, headers=error.headers)

    def identify(self, scope: Scope, resource: str | None) -> Caller:
        """Parse the credentials of a request; bad credentials are a 401 challenge."""
        address = self.address(scope)
        self.authorizer.check_instance_network(address)
        if self.limiter is not None:
            self.limiter.check(str(address))
        raw = header(scope, b"authorization")
        if not raw:
            return Caller(address, ANONYMOUS)
        kind, _, value = raw.partition(" ")
        kind = kind.lower()
        try:
            if kind == "basic":
                creds = parse_basic(value)
                if creds is None:
                    raise Unauthenticated("malformed Basic credentials")
                return Caller(address, self._basic(*creds, str(address or "")))
            if kind == "bearer":
                try:
                    return Caller(address, None, self.issuer.verify(value.strip()))
                except TokenInvalid as exc:
                    raise self.challenge(scope, resource, str(exc), "invalid_token") from None
        except Unauthenticated as exc:
            raise self.challenge(scope, resource, exc.message) from None
        raise self.challenge(scope, resource, f"unsupported authorization scheme {kind[:20]!r}")

    def _basic(self, username: str, password: str, address: str) -> Principal:
        """Basic credentials on a registry request: only failures are worth recording, or
        every request of a Basic-auth client would be a login."""
        try:
            return self.authenticator.login(username, password)
        except Unauthenticated as exc:
            self.bus.publish(Event("login", result="failure", target=self.issuer.service,
                                   actor=username[:255], address=address,
                                   detail={"reason": exc.message}))
            raise

    def principal(self, caller: Caller) -> Principal:
        if caller.principal is None:
            subject = caller.claims.subject if caller.claims else ""
            caller.principal = (self.authenticator.principal_for(subject) if subject else None) \
                or ANONYMOUS
        return caller.principal

    # -- may they -----------------------------------------------------------------------
    def base(self, scope: Scope) -> Caller:
        """`/v2/`: any valid credentials will do; none is a challenge, so clients log in."""
        if not self.enabled:
            return Caller(self.address(scope), OPEN)
        caller = self.identify(scope, None)
        if caller.principal is ANONYMOUS:
            raise self.challenge(scope, None, "authentication required")
        return caller

    def authorize(self, scope: Scope, name: str, action: str) -> Caller:
        """Check one registry action on one repository; raises 401 or 403 with the reason."""
        if not self.enabled:
            caller = Caller(self.address(scope), OPEN)
            self.authorizer.check_instance_network(caller.address)
            if self.limiter is not None:
                self.limiter.check(str(caller.address))
            self.authorizer.check_namespace_network(caller.address, namespace_of(name))
            return caller
        wanted = "pull,push" if action == "push" else action
        resource = f"repository:{name}:{wanted}"
        caller = self.identify(scope, resource)
        self.authorizer.check_namespace_network(caller.address, namespace_of(name))
        if caller.claims is not None and caller.claims.allows("repository", name, action):
            return caller
        principal = self.principal(caller)
        if action in self.authorizer.permissions(principal, name, caller.address):
            if caller.claims is None:
                return caller
            # Held but not in this token: a fresh token for the scope will carry it. RFC 6750
            # answers insufficient_scope with 403 and a challenge naming the scope to ask for.
            raise self.insufficient(scope, resource, f"token does not grant {action} on {name}")
        if principal.anonymous:
            raise self.challenge(scope, resource, f"authentication required to {action} {name}")
        raise self.authorizer.denial(principal, name, action)

    def may(self, caller: Caller, name: str, action: str) -> bool:
        """A secondary check (the source of a mount) that never raises."""
        if not self.enabled:
            return True
        if caller.claims is not None and caller.claims.allows("repository", name, action):
            return True
        try:
            self.authorizer.check_namespace_network(caller.address, namespace_of(name))
        except RegistryError:
            return False
        return action in self.authorizer.permissions(self.principal(caller), name, caller.address)

    def prepare_push(self, caller: Caller, name: str) -> None:
        self.manager.prepare_push(self.principal(caller) if self.enabled else OPEN, name)

    def catalog_filter(self, scope: Scope) -> tuple[set[str], bool] | None:
        """Which namespaces a caller sees in the catalog; None means all of them."""
        if not self.enabled:
            return None
        caller = self.identify(scope, "registry:catalog:*")
        if caller.claims is not None and not caller.claims.allows("registry", "catalog", "*"):
            raise self.insufficient(scope, "registry:catalog:*", "token does not grant the catalog")
        principal = self.principal(caller)
        if principal.anonymous:
            raise self.challenge(scope, "registry:catalog:*", "authentication required")
        if principal.is_admin:
            return None
        roles = self.authenticator.store.roles(principal.id) if principal.id else {}
        if principal.kind == "robot":
            roles = {k: v for k, v in roles.items() if k == principal.robot_namespace}
        return set(roles), True


__all__ = ["RegistryAccess", "Caller", "OPEN", "REGISTRY_ACTIONS"]
