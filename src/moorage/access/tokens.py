"""Docker/OCI bearer tokens: short-lived ES256 JWTs whose `access` claim lists what is granted.

The signing key is generated on first start and kept in the data folder, so tokens stay valid
across restarts and every worker process of one instance signs and verifies with the same key.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from typing import TYPE_CHECKING

from moorage.access.scopes import Scope
from moorage.cache.lru import LRUCache

if TYPE_CHECKING:
    from sqlalchemy import Engine

KEY_FILE = "token-signing-es256.pem"
_TIME_CLAIMS = ("exp", "nbf", "iat")


class TokenInvalid(Exception):
    """A bearer token that cannot be trusted; the message says why (never the token)."""


def load_or_create_key(keys_dir: Path) -> ec.EllipticCurvePrivateKey:
    """Load the instance's signing key, creating it once even when workers race to start."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    path = keys_dir / KEY_FILE
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        tmp = keys_dir / f".{KEY_FILE}.{os.getpid()}.{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # fails if another process won the race; theirs is kept
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC private key")
    return loaded


def load_or_create_shared_key(engine: "Engine") -> ec.EllipticCurvePrivateKey:
    """The signing key from the shared database, created by whichever replica starts first."""
    from sqlalchemy import insert, select
    from sqlalchemy.exc import IntegrityError

    from moorage.db.schema import instance_secrets

    name = "token-signing-es256"
    with engine.connect() as conn:
        pem = conn.execute(select(instance_secrets.c.value)
                           .where(instance_secrets.c.name == name)).scalar()
    if pem is None:
        key = ec.generate_private_key(ec.SECP256R1())
        fresh = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode()
        try:
            with engine.begin() as conn:
                conn.execute(insert(instance_secrets).values(name=name, value=fresh,
                                                             created_at=time.time()))
        except IntegrityError:
            pass  # another replica won; use theirs
        with engine.connect() as conn:
            pem = conn.execute(select(instance_secrets.c.value)
                               .where(instance_secrets.c.name == name)).scalar_one()
    loaded = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ValueError("the shared token signing key is not an EC private key")
    return loaded


def derived_key(key: ec.EllipticCurvePrivateKey, purpose: str) -> bytes:
    """A secret for another purpose (keyed hashes of login names), derived from the signing
    key so that every process and replica of the instance has the same one with nothing more
    to store or rotate."""
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return hashlib.sha256(b"moorage:" + purpose.encode() + b"\0" + der).digest()


def key_id(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b32encode(hashlib.sha256(der).digest()[:15]).decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class Claims:
    subject: str
    access: dict[tuple[str, str], frozenset[str]]
    expires_at: float
    # The account's id and creation time (`uid`, `uct`): a user deleted and re-created
    # under the same name is another account, and the old one's tokens are not its. None in
    # tokens issued before these claims existed.
    user_id: int | None = None
    # The access or refresh token the login presented (`src`: "p:<id>" or "r:<id>").
    origin: str | None = None
    account_created: float | None = None

    def allows(self, resource_type: str, name: str, action: str) -> bool:
        return action in self.access.get((resource_type, name), frozenset())


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int
    issued_at: float


class TokenIssuer:
    def __init__(self, key: ec.EllipticCurvePrivateKey, service: str, issuer: str = "moorage",
                 ttl_seconds: int = 300) -> None:
        self._key = key
        self._public = key.public_key()
        self.kid = key_id(key)
        self.service = service
        self.issuer = issuer
        self.ttl = ttl_seconds
        # Verifying ES256 costs more than a manifest lookup; a verified token is remembered
        # until it expires.
        self._verified: LRUCache[str, Claims] = LRUCache(20_000)

    def issue(self, subject: str, scopes: list[Scope], user_id: int | None = None,
              origin: str | None = None, account_created: float | None = None,
              ttl_seconds: int | None = None) -> IssuedToken:
        """A signed token for `scopes`; `ttl_seconds` overrides the instance's lifetime (a
        scanner adapter's pull-only token lasts as long as its scan may)."""
        now = time.time()
        ttl = self.ttl if ttl_seconds is None else ttl_seconds
        claims: dict[str, object] = {
            "iss": self.issuer, "sub": subject, "aud": self.service,
            "iat": int(now), "nbf": int(now) - 5, "exp": int(now) + ttl,
            "jti": uuid.uuid4().hex,
            "access": [s.claim() for s in scopes if s.actions],
        }
        if user_id is not None:
            claims["uid"] = user_id
        if origin is not None:
            claims["src"] = origin
        if account_created is not None:
            claims["uct"] = account_created
        token = jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self.kid})
        return IssuedToken(token, ttl, now)

    def verify(self, token: str) -> Claims:
        cached = self._verified.get(token)
        now = time.time()
        if cached is not None:
            if cached.expires_at > now:
                return cached
            self._verified.discard(token)
            raise TokenInvalid("token has expired")
        try:
            payload = jwt.decode(token, self._public, algorithms=["ES256"], audience=self.service,
                                 issuer=self.issuer, options={"require": ["exp", "sub", "aud"]},
                                 leeway=5)
        except jwt.ExpiredSignatureError:
            raise TokenInvalid("token has expired") from None
        except jwt.InvalidSignatureError:
            raise TokenInvalid("token signature does not verify (signed by another key, "
                               "or altered)") from None
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"token is invalid: {type(exc).__name__}") from None
        # PyJWT reads a numeric string ("9999999999") as a time; we never write one.
        for claim in _TIME_CLAIMS:
            value = payload.get(claim)
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, (int, float))):
                raise TokenInvalid(f"token is invalid: its {claim} claim is not a number")
        access: dict[tuple[str, str], frozenset[str]] = {}
        for entry in payload.get("access") or []:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                key = (str(entry.get("type")), entry["name"])
                access[key] = access.get(key, frozenset()) | frozenset(
                    a for a in entry.get("actions") or [] if isinstance(a, str))
        uid, origin, created = payload.get("uid"), payload.get("src"), payload.get("uct")
        claims = Claims(str(payload["sub"]), access, float(payload["exp"]),
                        uid if isinstance(uid, int) and not isinstance(uid, bool) else None,
                        origin if isinstance(origin, str) else None,
                        float(created) if isinstance(created, (int, float))
                        and not isinstance(created, bool) else None)
        self._verified.put(token, claims)
        return claims
