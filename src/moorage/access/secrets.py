"""Passwords (argon2id) and random secrets (tokens, robot secrets), stored only as hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets as _secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# argon2id with OWASP's recommended floor (19 MiB, 2 passes): the library default's 64 MiB per
# hash made every worker process peak 64 MiB higher after its first login (docs/benchmarks.md).
# Existing hashes keep verifying with the parameters stored inside them.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


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
