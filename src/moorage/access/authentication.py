"""Who is this? Passwords, personal access tokens, robot secrets and refresh tokens.

Personal access tokens and refresh tokens look like `mrg_<kind>_<id>_<secret>`: the id finds
the row in one query and only a hash of the secret is stored. Passwords are argon2id; a
successful check is remembered against the stored hash, so a client sending Basic auth on
every request pays for argon2 once, and a password change invalidates the memory by itself.
"""

from __future__ import annotations

import hashlib
import time
import uuid

from moorage.access.errors import Unauthenticated
from moorage.access.principal import Principal
from moorage.access.secrets import hash_secret, new_secret, secret_matches, verify_password
from moorage.cache.lru import LRUCache
from moorage.db.access import AccessStore, UserRow

TOKEN_PREFIX = "mrg_"
BAD_CREDENTIALS = "invalid username or password"


def principal_of(user: UserRow, robot_namespace: str | None = None) -> Principal:
    return Principal(user.id, user.username, user.kind, user.is_admin and user.kind == "user",
                     robot_namespace)


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


class Authenticator:
    def __init__(self, store: AccessStore) -> None:
        self.store = store
        self._verified: LRUCache[tuple[str, str, str], bool] = LRUCache(10_000)

    def login(self, username: str, password: str) -> Principal:
        """Check a username with a password, a personal access token or a robot secret."""
        user = self.store.user(username)
        if user is None or not password:
            raise Unauthenticated(BAD_CREDENTIALS)
        if user.expires_at is not None and user.expires_at < time.time():
            raise Unauthenticated(f"account {username} has expired")
        token = split_token(password)
        if token is not None and token[0] == "p":
            self._check_token(token, user.id, "personal")
        elif user.kind == "robot":
            if not secret_matches(user.password_hash, password):
                raise Unauthenticated(BAD_CREDENTIALS)
        elif not self._password_ok(user, password):
            raise Unauthenticated(BAD_CREDENTIALS)
        return self._principal(user)

    def _password_ok(self, user: UserRow, password: str) -> bool:
        key = (user.username, hashlib.sha256(password.encode()).hexdigest(), user.password_hash)
        if self._verified.get(key):
            return True
        if verify_password(user.password_hash, password):
            self._verified.put(key, True)
            return True
        return False

    def _check_token(self, token: tuple[str, str, str], user_id: int | None, kind: str) -> int:
        row = self.store.token(token[1])
        now = time.time()
        if row is None or row.kind != kind or not secret_matches(row.secret_hash, token[2]):
            raise Unauthenticated(BAD_CREDENTIALS if kind == "personal" else "invalid refresh token")
        if user_id is not None and row.user_id != user_id:
            raise Unauthenticated(BAD_CREDENTIALS)
        if row.revoked_at is not None:
            raise Unauthenticated(f"{'access' if kind == 'personal' else 'refresh'} token "
                                  f"{row.id} was revoked")
        if row.expires_at is not None and row.expires_at < now:
            raise Unauthenticated(f"{'access' if kind == 'personal' else 'refresh'} token "
                                  f"{row.id} has expired")
        if row.last_used_at is None or now - row.last_used_at > 60:
            self.store.touch_token(row.id)
        return row.user_id

    def login_token(self, value: str) -> Principal:
        """A personal access token on its own (as a Bearer credential for the API)."""
        token = split_token(value)
        if token is None or token[0] != "p":
            raise Unauthenticated("invalid access token")
        user = self.store.user_by_id(self._check_token(token, None, "personal"))
        if user is None:
            raise Unauthenticated("invalid access token")
        return self._principal(user)

    def refresh(self, refresh_token: str) -> Principal:
        token = split_token(refresh_token)
        if token is None or token[0] != "r":
            raise Unauthenticated("invalid refresh token")
        user = self.store.user_by_id(self._check_token(token, None, "refresh"))
        if user is None:
            raise Unauthenticated("invalid refresh token")
        return self._principal(user)

    def issue_refresh_token(self, principal: Principal, ttl_seconds: int) -> str:
        assert principal.id is not None
        token_id, token, secret_hash = make_token("refresh")
        self.store.create_token(token_id, principal.id, "refresh", "oauth2 refresh", secret_hash,
                                time.time() + ttl_seconds)
        return token

    def principal_for(self, username: str) -> Principal | None:
        user = self.store.user(username)
        return self._principal(user) if user else None

    def _principal(self, user: UserRow) -> Principal:
        robot_ns = None
        if user.kind == "robot" and user.namespace_id is not None:
            robot_ns = self.store.namespace_name(user.namespace_id)
        return principal_of(user, robot_ns)


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
