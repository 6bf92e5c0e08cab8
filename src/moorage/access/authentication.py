"""Who is this? Passwords, personal access tokens, robot secrets and refresh tokens.

Personal access tokens and refresh tokens look like `mrg_<kind>_<id>_<secret>`: the id finds
the row in one query and only a hash of the secret is stored. Passwords are argon2id; a
successful check is remembered against the stored hash, so a client sending Basic auth on
every request pays for argon2 once, and a password change invalidates the memory by itself.

Every method here blocks (database, argon2) and is meant to be called from a worker thread,
never from the event loop (see access/secrets.py). A login costs the same whether the account
exists or not: which check runs (argon2, a token lookup, a robot secret) follows from the
shape of what was sent, and an unknown user's password is checked against a dummy hash. The
throttle (access/throttle.py) counts failures per account and per address and refuses
attempts during a lockout before anything is checked.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid

from moorage.access.errors import LoginFailed, Unauthenticated
from moorage.access.identity import (PasswordDirectory, Provisioner, SignInUnavailable)
from moorage.access.principal import Principal
from moorage.access.secrets import (dummy_password_hash, hash_secret, keyed_digest, new_secret,
                                    secret_matches, verify_password)
from moorage.access.throttle import LoginThrottle, Lockout
from moorage.cache.lru import LRUCache
from moorage.db.access import AccessStore, TokenRow, UserRow
from moorage.registry.events import Event, EventBus

TOKEN_PREFIX = "mrg_"
BAD_CREDENTIALS = "invalid username or password"
ROBOT_PREFIX = "robot$"
# Compared against when the account does not exist, so that the comparison still happens.
_NO_SECRET = hash_secret(new_secret())


def principal_of(user: UserRow, robot_namespace: str | None = None,
                 origin: str | None = None) -> Principal:
    return Principal(user.id, user.username, user.kind, user.is_admin and user.kind == "user",
                     robot_namespace, origin, user.created_at)


def make_token(kind: str) -> tuple[str, str, str]:
    """(token id, whole token to hand out once, hash to store)."""
    token_id = uuid.uuid4().hex[:16]
    secret = new_secret()
    return token_id, f"{TOKEN_PREFIX}{kind[0]}_{token_id}_{secret}", hash_secret(secret)


def split_token(value: str) -> tuple[str, str, str] | None:
    """(kind letter, id, secret) of a token we issued, or None."""
    if not value.startswith(TOKEN_PREFIX):
        return None
    parts = value[len(TOKEN_PREFIX):].split("_", 2)
    if len(parts) != 3 or len(parts[1]) != 16:
        return None
    return parts[0], parts[1], parts[2]


def expired(at: float | None, now: float) -> bool:
    return at is not None and at < now


def unusable(user: UserRow) -> str | None:
    """Why an account whose credentials are right may not be used now, or None: it has
    expired, or an administrator disabled it."""
    if user.disabled_at is not None:
        return f"account {user.username} is disabled"
    if expired(user.expires_at, time.time()):
        return f"account {user.username} has expired"
    return None


class Authenticator:
    def __init__(self, store: AccessStore, throttle: LoginThrottle | None = None,
                 bus: EventBus | None = None, name_key: bytes = b"") -> None:
        self.store = store
        self.throttle = throttle
        self.bus = bus
        # Keys the pseudonyms of login names (throttle counts, audit actors of unknown users).
        self.name_key = name_key or new_secret().encode()
        self._verified: LRUCache[tuple[str, str, str], bool] = LRUCache(10_000)
        # Single sign-on (access/identity.py), installed by the sso feature when configured.
        self.directory: PasswordDirectory | None = None
        self.provisioner = Provisioner(store)
        # Said with a refused password when an OpenID provider is configured: its accounts
        # have no password here, and use a CLI secret with clients.
        self.password_hint = ""

    # -- logins -------------------------------------------------------------------------
    def login(self, username: str, password: str, address: str | None = None) -> Principal:
        """Check a username with a password, a personal access token or a robot secret.

        Raises LoginFailed (401, with what may be recorded of the username) or Throttled
        (429: too many failures for this account or from this address, whatever was sent).
        """
        account = keyed_digest(self.name_key, username)
        standing = self.throttle.check(account, address) if self.throttle else None
        user = self.store.user(username) if username else None
        try:
            principal = self._check(user, username, password)
        except LoginFailed as failure:
            if self.throttle is not None and failure.guess:
                self._announce(self.throttle.failed(account, address), user, username, address)
            raise
        if self.throttle is not None and standing is not None:
            self.throttle.succeeded(account, standing)
        return principal

    def _check(self, user: UserRow | None, username: str, password: str) -> Principal:
        actor = self.actor_of(user, username)
        token = split_token(password)
        origin = None
        if token is not None and token[0] == "p":
            row = self.store.token(token[1])
            ok = self._token_ok(row, token, "personal") and user is not None \
                and row is not None and row.user_id == user.id
            if ok and row is not None:
                refusal = self._token_refusal(row, "access")
                if refusal:
                    raise LoginFailed(refusal, actor, guess=False)
                origin = f"p:{row.id}"
        elif username.startswith(ROBOT_PREFIX):
            robot = user if user is not None and user.kind == "robot" else None
            ok = secret_matches(robot.password_hash if robot else _NO_SECRET, password) \
                and robot is not None
        elif self.directory is not None and (
                (user is None and password) or (user is not None and user.kind == "user"
                                                and user.source == self.directory.source)):
            user = self._directory_login(user, username, password, actor)
            ok = True
        else:
            ok = self._password_ok(user, password)
        if not ok or user is None:
            raise LoginFailed(BAD_CREDENTIALS + self.password_hint, actor)
        # Only once the credentials are right: that an account is unusable is its owner's news.
        refusal = unusable(user)
        if refusal:
            raise LoginFailed(refusal, actor, guess=False)
        return self.principal_of_row(user, origin)

    def _directory_login(self, user: UserRow | None, username: str, password: str,
                         actor: str) -> UserRow:
        """A directory account (or a name the directory may know): its password is checked
        by the directory, and the account is found or made, with its groups' roles."""
        assert self.directory is not None
        try:
            identity = self.directory.authenticate(username, password) if password else None
        except SignInUnavailable as exc:
            # Not the user's fault and not a guess: not counted towards a lockout.
            raise LoginFailed(f"sign-in through the directory failed: {exc}", actor,
                              guess=False) from None
        if identity is None:
            raise LoginFailed(BAD_CREDENTIALS + self.password_hint, actor)
        return self.provisioner.provision(identity)

    def _password_ok(self, user: UserRow | None, password: str) -> bool:
        if user is None or user.kind != "user" or user.source != "local" or not password:
            verify_password(dummy_password_hash(), password)  # the same work, for nothing
            return False
        key = (user.username, hashlib.sha256(password.encode()).hexdigest(), user.password_hash)
        if self._verified.get(key):
            return True
        if verify_password(user.password_hash, password):
            self._verified.put(key, True)
            return True
        return False

    def actor_of(self, user: UserRow | None, username: str) -> str:
        """What the audit log may record as the actor of a failed login: an account's name,
        or, for a name no account has, a keyed pseudonym: the same name reads the same
        every time, and a password typed into the username field never shows."""
        if user is not None:
            return user.username
        return "unknown:" + keyed_digest(self.name_key, username)[:16]

    def _announce(self, lockouts: list[Lockout], user: UserRow | None, username: str,
                  address: str | None) -> None:
        if self.bus is None:
            return
        actor = self.actor_of(user, username)
        for lockout in lockouts:
            self.bus.publish(Event(
                "login.throttled", result="failure", actor=actor, address=address or "",
                target=actor if lockout.scope == "account" else (address or ""),
                detail={"scope": lockout.scope, "failures": lockout.failures,
                        "seconds": round(lockout.seconds, 3)}))

    # -- tokens -------------------------------------------------------------------------
    @staticmethod
    def _token_ok(row: TokenRow | None, token: tuple[str, str, str], kind: str) -> bool:
        """Does the secret match a token row of this kind? Compared even when there is no
        row, so that a made-up id costs what a real one does."""
        matches = secret_matches(row.secret_hash if row is not None else _NO_SECRET, token[2])
        return matches and row is not None and row.kind == kind

    def _token_refusal(self, row: TokenRow, word: str) -> str | None:
        """Why a token whose secret matched may not be used (revoked, expired), or None;
        its use is noted, at most once a minute."""
        now = time.time()
        if row.revoked_at is not None:
            return f"{word} token {row.id} was revoked"
        if expired(row.expires_at, now):
            return f"{word} token {row.id} has expired"
        if row.last_used_at is None or now - row.last_used_at > 60:
            self.store.touch_token(row.id)
        return None

    def _token_owner(self, value: str, letter: str, kind: str, word: str) -> Principal:
        """The account behind a token presented on its own, if it and the account may still
        be used: the token neither revoked nor expired, the account there and not expired."""
        token = split_token(value)
        row = self.store.token(token[1]) if token is not None and token[0] == letter else None
        if token is None or not self._token_ok(row, token, kind) or row is None:
            raise Unauthenticated(f"invalid {word} token")
        refusal = self._token_refusal(row, word)
        if refusal:
            raise Unauthenticated(refusal)
        user = self.store.user_by_id(row.user_id)
        if user is None:
            raise Unauthenticated(f"invalid {word} token")
        refusal = unusable(user)
        if refusal:
            raise Unauthenticated(refusal)
        return self.principal_of_row(user, f"{letter}:{row.id}")

    def login_token(self, value: str) -> Principal:
        """A personal access token on its own (as a Bearer credential for the API)."""
        return self._token_owner(value, "p", "personal", "access")

    def refresh(self, refresh_token: str) -> Principal:
        """The OAuth2 refresh grant. A password change revokes the account's refresh tokens
        (AccessStore.change_password); deletion removes them with the account."""
        return self._token_owner(refresh_token, "r", "refresh", "refresh")

    def issue_refresh_token(self, principal: Principal, ttl_seconds: int,
                            name: str = "oauth2 refresh") -> str:
        assert principal.id is not None
        token_id, token, secret_hash = make_token("refresh")
        self.store.create_token(token_id, principal.id, "refresh", name[:100] or "oauth2 refresh",
                                secret_hash, time.time() + ttl_seconds)
        return token

    # -- bearer tokens ------------------------------------------------------------------
    def holder(self, subject: str, user_id: int | None, origin: str | None,
               created_at: float | None = None) -> Principal:
        """The account a bearer token speaks for, as it is now; Unauthenticated if it is gone
        or expired, or if the token the login presented has been revoked since. For the
        checks made at request time (pushes, deletes), not for every pull.

        An account re-created under the same name, even with the same id (SQLite reuses the
        highest id after a deletion), is told apart by its creation time."""
        return self.holder_until(subject, user_id, origin, created_at)[0]

    def holder_until(self, subject: str, user_id: int | None, origin: str | None,
                     created_at: float | None = None) -> tuple[Principal, float]:
        """holder(), and the last moment its answer holds if nothing is committed meanwhile:
        the earliest expiry among the account's and the presented token's (inf if neither
        expires). Only a commit (a deletion, a revocation, a change) or that moment can
        change the answer."""
        user = self.store.user_by_id(user_id) if user_id is not None else \
            self.store.user(subject)
        if user is None or user.username != subject or \
                (created_at is not None and user.created_at != created_at):
            raise Unauthenticated(f"the account {subject} no longer exists")
        refusal = unusable(user)
        if refusal:
            raise Unauthenticated(refusal)
        expiries = [user.expires_at]
        if origin is not None:
            _, _, token_id = origin.partition(":")
            row = self.store.token(token_id)
            word = "refresh" if origin.startswith("r:") else "access"
            if row is None or row.user_id != user.id:
                raise Unauthenticated(f"the {word} token this token came from is gone")
            if row.revoked_at is not None:
                raise Unauthenticated(f"the {word} token this token came from was revoked")
            if expired(row.expires_at, time.time()):
                raise Unauthenticated(f"the {word} token this token came from has expired")
            expiries.append(row.expires_at)
        until = min((at for at in expiries if at is not None), default=math.inf)
        return self.principal_of_row(user, origin), until

    def principal_for(self, username: str) -> Principal | None:
        user = self.store.user(username)
        return self.principal_of_row(user) if user else None

    def principal_of_row(self, user: UserRow, origin: str | None = None) -> Principal:
        robot_ns = None
        if user.kind == "robot" and user.namespace_id is not None:
            robot_ns = self.store.namespace_name(user.namespace_id)
        return principal_of(user, robot_ns, origin)


def parse_basic(value: str) -> tuple[str, str] | None:
    """(username, password) from a Basic Authorization header value, or None if malformed."""
    import base64
    import binascii

    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None
