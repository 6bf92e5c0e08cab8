"""One exception family for everything a remote registry can do wrong.

Replication, proxy caching and import record *why* an execution failed and show it to an
operator; so every error carries a one-line message that names the registry, the repository,
what was asked and what came back, and never a credential, a token or a presigned query
string. Callers print `str(error)`; they never need a stack trace.
"""

from __future__ import annotations


class RemoteError(Exception):
    """Base of every failure talking to another registry.

    `retryable` says whether trying the same thing later may succeed (an unavailable or
    throttling upstream, a timeout, a dropped connection), as opposed to a refusal or bad
    content that will come back the same.
    """

    retryable = False

    def __init__(self, message: str, *, registry: str = "", repository: str | None = None,
                 what: str = "", status: int | None = None) -> None:
        self.message = message
        self.registry = registry
        self.repository = repository
        self.what = what
        self.status = status
        super().__init__(self._text())

    def _text(self) -> str:
        where = self.registry + (f"/{self.repository}" if self.repository else "")
        parts = [p for p in (where, self.what) if p]
        head = ": ".join(parts)
        status = f" (HTTP {self.status})" if self.status else ""
        return f"{head}: {self.message}{status}" if head else f"{self.message}{status}"


class RemoteConfigError(RemoteError):
    """The client's own settings are wrong (a URL with credentials in it, a missing CA file)."""


class RemoteConnectError(RemoteError):
    """A connection that no retry can make: the registry's TLS certificate is not trusted."""


class RemoteAuthError(RemoteError):
    """The registry refused our credentials or our token (401, 403), or its token service
    answered something unusable."""


class RemoteNotFound(RemoteError):
    """The repository, manifest, blob or upload does not exist there (404)."""


class RemoteUnavailable(RemoteError):
    """The registry could not be reached, or kept answering 5xx or 429 until the attempts
    ran out."""

    retryable = True


class RemoteTimeout(RemoteUnavailable):
    """A step took longer than its timeout (connect, a gap between reads, a whole request)."""


class RemoteProtocolError(RemoteError):
    """The registry answered something that is not the Distribution API: garbage JSON, a
    missing header, a redirect loop, a pagination link that goes round in circles."""


class RemoteTooLarge(RemoteProtocolError):
    """A body was larger than the bound set for it (a manifest, a listing page, a blob
    longer than its descriptor)."""


class RemoteContentError(RemoteError):
    """Bytes that do not match what was asked: a digest mismatch or a short body. Nothing
    with this error may be stored; a later attempt may get the right bytes."""

    retryable = True


class DigestMismatch(RemoteContentError):
    """The bytes hash to another digest than the one requested."""


class ShortBody(RemoteContentError):
    """The body ended before its announced length (a dropped connection mid-blob)."""
