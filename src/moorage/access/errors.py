"""Refusals of the management surface, each with an HTTP status and a stable code."""

from __future__ import annotations


class AccessError(Exception):
    status = 400
    code = "INVALID"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Invalid(AccessError):
    status, code = 400, "INVALID"


class Unauthenticated(AccessError):
    status, code = 401, "UNAUTHORIZED"


class Forbidden(AccessError):
    status, code = 403, "DENIED"


class NotFound(AccessError):
    status, code = 404, "NOT_FOUND"


class AlreadyExists(AccessError):
    status, code = 409, "CONFLICT"
