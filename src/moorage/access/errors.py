"""Refusals of the management surface, each with an HTTP status and a stable code."""

from __future__ import annotations


class AccessError(Exception):
    status = 400
    code = "INVALID"

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers: dict[str, str] = headers or {}


class Invalid(AccessError):
    status, code = 400, "INVALID"


class Unauthenticated(AccessError):
    status, code = 401, "UNAUTHORIZED"


class LoginFailed(Unauthenticated):
    """Credentials refused. `actor` is what may be recorded of the username: the name of an
    account that exists, or a keyed pseudonym of one that does not (it may be a password
    typed into the wrong field). `guess` is false when the secret was right but may not be
    used (a revoked token, an expired account): that is not a guess, and is not counted
    towards a lockout."""

    def __init__(self, message: str, actor: str, guess: bool = True) -> None:
        super().__init__(message)
        self.actor = actor
        self.guess = guess


class Throttled(AccessError):
    """Too many failed logins for an account or from an address: refused, whatever the
    credentials, until `retry_after` seconds have passed."""

    status, code = 429, "TOOMANYREQUESTS"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, {"retry-after": str(retry_after)})
        self.retry_after = retry_after


class Forbidden(AccessError):
    status, code = 403, "DENIED"


class NotFound(AccessError):
    status, code = 404, "NOT_FOUND"


class AlreadyExists(AccessError):
    status, code = 409, "CONFLICT"
