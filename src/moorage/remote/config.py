"""How to reach one remote registry: its address, credentials, TLS, timeouts, retries and
the bounds on everything read from it.

A configuration is plain data, checked once (`check`) before any connection is made, so a
wrong setting is a clear error at configuration time rather than a failed transfer later.
The password is kept out of `repr`, so a configuration printed in a log shows no secret.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from moorage.remote.errors import RemoteConfigError

MiB = 1 << 20


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. Every step has one: a hung upstream (Harbor's most-filed replication
    complaint) fails the step instead of holding a job forever."""

    connect: float = 10.0
    read: float = 60.0  # the longest silence between two reads of a body (or before headers)
    write: float = 60.0  # the longest a send may block
    pool: float = 30.0  # waiting for a free connection of the pool
    request: float = 120.0  # a whole small request: token, manifest, HEAD, listing page


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, and `Retry-After` honoured up to a bound."""

    attempts: int = 4  # tries of one request, the first included
    base_delay: float = 0.5  # seconds before the 2nd try; doubled each time after
    max_delay: float = 30.0  # no computed backoff is longer
    max_retry_after: float = 300.0  # a longer Retry-After is cut to this


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what is read from a registry and how blobs are moved."""

    manifest_bytes: int = 4 * MiB  # Distribution's own limit for a manifest
    page_bytes: int = 4 * MiB  # one page of a catalog, tag or referrers listing
    pages: int = 10_000  # pages followed through `Link` in one listing
    token_bytes: int = 1 * MiB  # a token service's answer
    error_bytes: int = 64 << 10  # the part of an error body read for its message
    read_chunk: int = 1 * MiB  # largest chunk a blob download yields
    monolithic_max: int = 16 * MiB  # blobs up to this size go in one PUT
    upload_chunk: int = 32 * MiB  # one PATCH of a chunked upload
    redirects: int = 5  # redirects followed for one blob request
    resumes: int = 5  # times one chunked upload is resumed after an interruption


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class RemoteConfig:
    """One registry: `url` is its base (`https://registry.example.com`, or `http://` for a
    loopback peer or when `insecure`). Credentials, when given, are used as Basic auth or to
    get Docker tokens from the registry's token service."""

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | Path | None = None  # a PEM bundle to trust instead of the system's
    insecure: bool = False  # no TLS verification, and plain http to any host
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    limits: Limits = field(default_factory=Limits)
    user_agent: str = "moorage-remote"

    def check(self) -> httpx.URL:
        """The base URL, after refusing settings that cannot work or would leak a secret."""
        try:
            url = httpx.URL(self.url.rstrip("/"))
        except (httpx.InvalidURL, TypeError):
            raise RemoteConfigError(f"not a registry URL: {self.url[:100]!r}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise RemoteConfigError(f"a registry URL is http(s)://host[:port], not {_safe(url)}")
        if url.userinfo:
            raise RemoteConfigError("put credentials in username and password, not in the URL")
        if url.query or url.fragment or url.path not in ("", "/"):
            raise RemoteConfigError(f"a registry URL has no path or query: {_safe(url)}")
        if url.scheme == "http" and not (_loopback(url.host) or self.insecure):
            raise RemoteConfigError(f"plain http to {url.host} is refused: use https, "
                                    "or set insecure for a registry without TLS")
        if (self.username is None) != (self.password is None):
            raise RemoteConfigError("give both a username and a password, or neither")
        if self.ca_file is not None and not Path(self.ca_file).is_file():
            raise RemoteConfigError(f"CA file {str(self.ca_file)!r} does not exist")
        if self.retry.attempts < 1 or self.limits.read_chunk < 1 or self.limits.upload_chunk < 1:
            raise RemoteConfigError("attempts, read_chunk and upload_chunk must be positive")
        return url.copy_with(path="/")


def _safe(url: httpx.URL) -> str:
    """A URL fit for a message: no credentials, no query (presigned URLs sign there)."""
    host = url.host + (f":{url.port}" if url.port else "")
    return f"{url.scheme}://{host}{url.path}"


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine (where plain http is accepted)."""
    return _loopback(host)


def safe_url(url: httpx.URL | str) -> str:
    """`url` without credentials or query string, for messages and logs."""
    return _safe(httpx.URL(str(url)))
