"""The signing service's refusals, each mapped to one HTTP status by the API."""

from __future__ import annotations


class SigningError(ValueError):
    """A request the service refuses; the message says why (400 at the API)."""


class Missing(LookupError):
    """A key, identity or image that does not exist (404 at the API)."""


class Taken(ValueError):
    """A name already used in its scope (409 at the API)."""
