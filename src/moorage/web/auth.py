"""Authentication and authorization of registry requests, in HTTP terms.

Decides, per request, who is asking (Basic credentials, a bearer token, or nobody) and answers
refusals the way Docker and OCI clients expect: 401 with a `WWW-Authenticate: Bearer` challenge
naming the scope to ask for, or 403 DENIED with the reason when asking again would not help.

What blocks runs in a pool of worker threads of its own (AUTH_THREADS per process), never on
the event loop: logins (the database, argon2) and every decision that needs the database. What
is left on the loop is the hot path: a pull with a bearer token that grants it, which needs
nothing but the (cached) signature check, and an anonymous pull granted before with nothing
committed since (cache/decisions.py). Pushes and deletes with a bearer token look
the account up again at request time: it must still exist, be unexpired and hold the role,
and the access or refresh token the bearer token came from must not have been revoked.
Pulls keep the token's grant for its lifetime (token_ttl_seconds).

Looked up again, but not at every request: a push or delete granted to a token is kept in the
worker (`granted`) until the next commit on the database by any process (cache/decisions.py)
or the first expiry it depends on (the account's, the presented token's), whichever comes
first. Every change the decision reads (an account deleted, disabled or changed, a token
revoked, a role or a visibility changed) is a commit, so the next request after it, on any
worker or replica, is decided afresh; a chunked upload's PATCHes commit nothing, so each
costs a dictionary lookup instead of a hop to an auth thread and three queries.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from moorage.access.authentication import Authenticator, parse_basic
from moorage.access.authorization import REGISTRY_ACTIONS, Authorizer
from moorage.access.errors import LoginFailed, Throttled, Unauthenticated
from moorage.access.management import AccessManager
from moorage.access.network import (Address, Network, address_text, client_address, in_any,
                                    parse_address, parse_network)
from moorage.access.principal import ANONYMOUS, Principal
from moorage.access.tokens import Claims, TokenInvalid, TokenIssuer
from moorage.cache.decisions import KeptUntilCommit
from moorage.db.changes import signal_of
from moorage.oci.errors import RegistryError
from moorage.oci.names import namespace_of
from moorage.registry.events import Event, EventBus
from moorage.web.http import Scope, header
from moorage.web.ratelimit import RateLimiter

# With auth off, every request acts as this principal: anything goes, nobody is recorded.
OPEN = Principal(None, "", "anonymous", is_admin=True)

# Threads for blocking auth work, per process. Argon2 itself is bounded further (2 at once,
# access/secrets.py), so password guesses can never hold all of them.
AUTH_THREADS = 16

# A Host header worth naming in a challenge: a DNS name, an IPv4 or a bracketed IPv6
# address, and a port. Anything else (quotes, spaces, paths) is replaced by the address the
# request came in on, so a client cannot bend the challenge it is sent.
_HOST_RE = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
                      r"|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")

T = TypeVar("T")


def quoted(value: str) -> str:
    """An RFC 9110 quoted-string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def throttled(exc: Throttled) -> RegistryError:
    return RegistryError("TOOMANYREQUESTS", exc.message, headers=exc.headers)


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
        # the public_url setting, without a trailing slash: the start of every URL handed
        # out (the token realm, Location, Link); empty: the host and scheme the client used
        self.public_url = ""
        self._pool = ThreadPoolExecutor(AUTH_THREADS, thread_name_prefix="moorage-auth")
        # Anonymous pulls granted, by (repository, address), until the next commit anywhere
        # on the database (cache/decisions.py): a granted one then stays on the event loop.
        # Only grants are kept: a refusal is decided again each time, so what it says (and
        # records) stays exactly as it was.
        self.anonymous_pulls: KeptUntilCommit[bool] = KeptUntilCommit(
            signal_of(authorizer.store.engine))
        # Pushes and deletes granted to a token, with the last moment each holds (see the
        # module's docstring): by who the token speaks for, the repository, the action and
        # the address. Only grants are kept, as for anonymous pulls.
        self.granted: KeptUntilCommit[tuple[float, Principal]] = KeptUntilCommit(
            signal_of(authorizer.store.engine))
        self.clock: Callable[[], float] = time.time

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run blocking auth work in the auth threads, with the request's context (who is
        asking, for events published there)."""
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, functools.partial(context.run, fn, *args))

    async def limit(self, scope: Scope, address: Address | None = None) -> None:
        """The per-address request rate limit (rate_limit_per_minute), if one is set."""
        if self.limiter is not None:
            await self.limiter.check(address_text(address or self.address(scope)))

    def login(self, scope: Scope, username: str, password: str,
              target: str | None = None) -> Principal:
        """Check credentials, recording a failure (blocking: call it from a worker thread).
        A success is recorded once the token it earns is issued (`issued`): a login is a
        token issued, so the log has one row per token and none for a token refused."""
        address = address_text(self.address(scope))
        try:
            return self.authenticator.login(username, password, address or None)
        except LoginFailed as exc:
            self._failed(exc, address, target)
            raise

    def issued(self, scope: Scope, principal: Principal, grant: str, granted: str,
               refresh_token: bool) -> None:
        """Record a token issued to an account: the `login` row of the audit log, with how
        it was earned (`password`, `refresh_token`), the scopes it carries and whether a
        refresh token came with it. Anonymous tokens are no login and are not recorded."""
        if principal.anonymous:
            return
        self.bus.publish(Event("login", target=self.issuer.service, actor=principal.username,
                               address=address_text(self.address(scope)),
                               detail={"grant": grant, "scope": granted,
                                       "refresh_token": refresh_token}))

    def signed_in(self, scope: Scope, principal: Principal) -> None:
        """Record a sign-in to the web console: a `login` row, as for a token issued."""
        self.bus.publish(Event("login", target="console", actor=principal.username,
                               address=address_text(self.address(scope)),
                               detail={"grant": "password", "client": "console"}))

    def _failed(self, exc: LoginFailed, address: str, target: str | None = None) -> None:
        self.bus.publish(Event("login", result="failure", target=target or self.issuer.service,
                               actor=exc.actor[:255], address=address,
                               detail={"reason": exc.message}))

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
        """Where clients get tokens: public_url, else the scheme and host the client asked
        for, which a trusted proxy tells in X-Forwarded-Proto/-Host (nobody else is
        believed); a host that is not a host name is never echoed back."""
        if self.public_url:
            return f"{self.public_url}/auth/token"
        host = header(scope, b"host") or ""
        scheme = scope.get("scheme") if scope.get("scheme") in ("http", "https") else "http"
        if self.trusted_proxies and self._from_trusted_proxy(scope):
            forwarded_host = (header(scope, b"x-forwarded-host") or "").split(",")[0].strip()
            forwarded_proto = (header(scope, b"x-forwarded-proto") or "").split(",")[0].strip()
            host = forwarded_host or host
            if forwarded_proto in ("http", "https"):
                scheme = forwarded_proto
        if len(host) > 300 or not _HOST_RE.fullmatch(host):
            server = scope.get("server")
            if server and server[1] is not None:
                name = f"[{server[0]}]" if ":" in str(server[0]) else str(server[0])
                host = f"{name}:{server[1]}"
            else:
                host = str(server[0]) if server else "localhost"
        return f"{scheme}://{host}/auth/token"

    def _from_trusted_proxy(self, scope: Scope) -> bool:
        client = scope.get("client")
        peer = parse_address(client[0]) if client else None
        return peer is not None and in_any(peer, self.trusted_proxies)

    def challenge(self, scope: Scope, resource: str | None, message: str,
                  error: str | None = None) -> RegistryError:
        parts = [f"realm={quoted(self.realm(scope))}", f"service={quoted(self.issuer.service)}"]
        if resource:
            parts.append(f"scope={quoted(resource)}")
        if error:
            parts.append(f"error={quoted(error)}")
        return RegistryError("UNAUTHORIZED", message,
                             headers={"www-authenticate": "Bearer " + ",".join(parts)})

    def insufficient(self, scope: Scope, resource: str, message: str) -> RegistryError:
        error = self.challenge(scope, resource, message, "insufficient_scope")
        return RegistryError("DENIED", message, status=403, headers=error.headers)

    async def identify(self, scope: Scope, resource: str | None) -> Caller:
        """Parse the credentials of a request; bad credentials are a 401 challenge."""
        address = self.address(scope)
        self.authorizer.check_instance_network(address)
        await self.limit(scope, address)
        raw = header(scope, b"authorization")
        if not raw:
            return Caller(address, ANONYMOUS)
        kind, _, value = raw.partition(" ")
        kind = kind.lower()
        if kind == "basic":
            creds = parse_basic(value)
            if creds is None:
                raise self.challenge(scope, resource, "malformed Basic credentials")
            caller = Caller(address, await self.run(self._basic, scope, resource, *creds,
                                                    address_text(address)))
            scope["moorage.caller"] = caller  # who a refusal after this is recorded as
            return caller
        if kind == "bearer":
            try:
                caller = Caller(address, None, self.issuer.verify(value.strip()))
            except TokenInvalid as exc:
                raise self.challenge(scope, resource, str(exc), "invalid_token") from None
            scope["moorage.caller"] = caller
            return caller
        raise self.challenge(scope, resource, f"unsupported authorization scheme {kind[:20]!r}")

    def _basic(self, scope: Scope, resource: str | None, username: str, password: str,
               address: str) -> Principal:
        """Basic credentials on a registry request: only failures are worth recording, or
        every request of a Basic-auth client would be a login."""
        try:
            return self.authenticator.login(username, password, address or None)
        except LoginFailed as exc:
            self._failed(exc, address)
            scope["moorage.actor"] = exc.actor[:255]  # recorded: no refusal row on top
            raise self.challenge(scope, resource, exc.message) from None
        except Throttled as exc:
            raise throttled(exc) from None

    def principal(self, caller: Caller) -> Principal:
        """The account behind a caller; for a bearer token, as it is now (a deleted or
        expired account is anonymous). Blocking when it has to look the account up."""
        if caller.principal is None:
            claims = caller.claims
            try:
                caller.principal = self.authenticator.holder(
                    claims.subject, claims.user_id, None, claims.account_created) \
                    if claims and claims.subject else ANONYMOUS
            except Unauthenticated:
                caller.principal = ANONYMOUS
        return caller.principal

    # -- may they -----------------------------------------------------------------------
    async def base(self, scope: Scope) -> Caller:
        """`/v2/`: any valid credentials will do; none is a challenge, so clients log in."""
        if not self.enabled:
            return Caller(self.address(scope), OPEN)
        caller = await self.identify(scope, None)
        if caller.principal is ANONYMOUS:
            raise self.challenge(scope, None, "authentication required")
        return caller

    async def authorize(self, scope: Scope, name: str, action: str) -> Caller:
        """Check one registry action on one repository; raises 401 or 403 with the reason."""
        if not self.enabled:
            caller = Caller(self.address(scope), OPEN)
            self.authorizer.check_instance_network(caller.address)
            await self.limit(scope, caller.address)
            self.authorizer.check_namespace_network(caller.address, namespace_of(name))
            return caller
        wanted = "pull,push" if action == "push" else action
        resource = f"repository:{name}:{wanted}"
        caller = await self.identify(scope, resource)
        self.authorizer.check_namespace_network(caller.address, namespace_of(name))
        if action == "pull" and caller.claims is not None \
                and caller.claims.allows("repository", name, action):
            return caller  # the hot path: the token's own lifetime bounds it
        if action == "pull" and caller.principal is ANONYMOUS:
            # A public pull: decided from the database alone, so kept until the next commit.
            key = (name, caller.address)
            if self.anonymous_pulls.get(key):
                return caller
            version = self.anonymous_pulls.version()  # before deciding: see KeptUntilCommit
            caller = await self.run(self._decide, scope, caller, name, action, resource)
            self.anonymous_pulls.put(key, version, True)
            return caller
        claims = caller.claims
        if claims is not None and claims.allows("repository", name, action):
            key = (claims.subject, claims.user_id, claims.origin, claims.account_created, name,
                   action, address_text(caller.address))
            kept = self.granted.get(key)
            if kept is not None and self.clock() <= kept[0]:
                caller.principal = kept[1]
                return caller
            version = self.granted.version()  # before deciding: see KeptUntilCommit
            until = await self.run(self._recheck, scope, caller, name, action, resource)
            assert caller.principal is not None
            self.granted.put(key, version, (until, caller.principal))
            return caller
        return await self.run(self._decide, scope, caller, name, action, resource)

    def _recheck(self, scope: Scope, caller: Caller, name: str, action: str,
                 resource: str) -> float:
        """A push or a delete the token grants: the token's grounds checked again, now (in an
        auth thread). Returns the last moment the grant holds if nothing is committed."""
        claims = caller.claims
        assert claims is not None
        try:
            principal, until = self.authenticator.holder_until(
                claims.subject, claims.user_id, claims.origin, claims.account_created)
        except Unauthenticated as exc:
            raise self.challenge(scope, resource, exc.message, "invalid_token") from None
        caller.principal = principal
        if action in self.authorizer.permissions(principal, name, caller.address):
            return until
        raise self.authorizer.denial(principal, name, action)

    def _decide(self, scope: Scope, caller: Caller, name: str, action: str,
                resource: str) -> Caller:
        """Everything but a pull or push the token grants: looks things up, so it runs in an
        auth thread."""
        principal = self.principal(caller)
        if action in self.authorizer.permissions(principal, name, caller.address):
            if caller.claims is None:
                return caller
            # Held but not in this token: a fresh token for the scope will carry it. RFC 6750
            # answers insufficient_scope with 403 and a challenge naming the scope to ask for.
            # Not 401 (as CNCF Distribution answers): oras-py resends the token it holds after
            # a 401 and asks for a new one only after a 403. crane, which re-asks only after a
            # 401, never gets here for a delete: its push token carries delete when held
            # (access.authorization.implied).
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

    def pullable(self, caller: Caller, namespace: str, names: list[str]) -> set[str]:
        """Which of a namespace's repositories the caller may pull, as `may` answers for
        each (blocking): what a listing of the namespace shows them."""
        if not self.enabled:
            return set(names)
        claims = caller.claims
        granted = {n for n in names if claims is not None
                   and claims.allows("repository", n, "pull")}
        try:
            self.authorizer.check_namespace_network(caller.address, namespace)
        except RegistryError:
            return set()
        rest = [n for n in names if n not in granted]
        return granted | self.authorizer.pullable(self.principal(caller), namespace, rest,
                                                   caller.address)

    def prepare_push(self, caller: Caller, name: str) -> None:
        self.manager.prepare_push(self.principal(caller) if self.enabled else OPEN, name)

    async def catalog_filter(self, scope: Scope) -> tuple[set[str], bool] | None:
        """Which namespaces a caller sees in the catalog; None means all of them."""
        if not self.enabled:
            return None
        caller = await self.identify(scope, "registry:catalog:*")
        if caller.claims is not None and not caller.claims.allows("registry", "catalog", "*"):
            raise self.insufficient(scope, "registry:catalog:*", "token does not grant the catalog")
        return await self.run(self._catalog, scope, caller)

    def _catalog(self, scope: Scope, caller: Caller) -> tuple[set[str], bool] | None:
        principal = self.principal(caller)
        if principal.anonymous:
            raise self.challenge(scope, "registry:catalog:*", "authentication required")
        if principal.is_admin:
            return None
        roles = self.authenticator.store.roles(principal.id) if principal.id else {}
        if principal.kind == "robot":
            roles = {k: v for k, v in roles.items() if k == principal.robot_namespace}
        return set(roles), True


__all__ = ["RegistryAccess", "Caller", "OPEN", "REGISTRY_ACTIONS", "quoted", "throttled"]
