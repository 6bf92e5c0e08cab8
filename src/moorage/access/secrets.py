"""Passwords (argon2id) and random secrets (tokens, robot secrets), stored only as hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets as _secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_secret(nbytes: int = 32) -> str:
    return _secrets.token_urlsafe(nbytes)


def hash_secret(secret: str) -> str:
    """Random secrets carry their own entropy, so a fast hash is enough and keeps auth cheap."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret_hash: str, secret: str) -> bool:
    return hmac.compare_digest(secret_hash, hash_secret(secret))
