"""What a `storage_url` says, checked but not connected: pure parsing, no store and no
settings imported, so that settings can check the URL without importing a store.

    ""                                   the filesystem, under data_dir (the embedded default)
    s3://BUCKET[/PREFIX][?endpoint=http://127.0.0.1:8333&region=us-east-1&redirect=true
                        &public_endpoint=https://s3.example.com&redirect_expires=300]

Credentials are deliberately not part of the URL (it is logged, exported to workers and shown
in `moorage info`): boto3 takes them from the standard AWS sources, i.e. AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY, a profile, or an instance role.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

SETTING = "storage_url"
_S3_PARAMS = {"endpoint", "region", "redirect", "public_endpoint", "redirect_expires"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class S3Location:
    """What an `s3://` storage URL says, checked but not yet connected."""

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None
    redirect: bool = False
    public_endpoint: str | None = None
    redirect_expires: int = 300


class StorageUrlInvalid(ValueError):
    """A storage URL that cannot be used; the message names the setting."""


def _fail(message: str) -> StorageUrlInvalid:
    return StorageUrlInvalid(f"setting {SETTING!r}: {message}")


def _shown(url: str) -> str:
    """The URL for an error message, without any user:password someone put in it."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()


def _http_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _fail(f"{name} must be an http:// or https:// URL, not {_shown(value)!r}")
    return value.rstrip("/")


def parse_storage_url(url: str) -> S3Location | None:
    """None for the filesystem; an S3Location for `s3://`; StorageUrlInvalid for anything
    else."""
    url = url.strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme != "s3":
        raise _fail(f"expected empty (filesystem) or s3://BUCKET/PREFIX?..., "
                    f"not {_shown(url)!r}")
    bucket = parts.netloc
    if not bucket or "@" in bucket or ":" in bucket:
        raise _fail(f"{_shown(url)!r} names no bucket (credentials belong in AWS_ACCESS_KEY_ID and "
                    f"AWS_SECRET_ACCESS_KEY, the endpoint in ?endpoint=)")
    if parts.fragment:
        raise _fail(f"unexpected fragment #{parts.fragment}")
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise _fail(f"cannot parse the query {parts.query!r}") from None
    unknown = set(query) - _S3_PARAMS
    if unknown:
        raise _fail(f"unknown parameter(s) {', '.join(sorted(unknown))}; "
                    f"known: {', '.join(sorted(_S3_PARAMS))}")
    repeated = [k for k, v in query.items() if len(v) > 1]
    if repeated:
        raise _fail(f"parameter(s) given twice: {', '.join(sorted(repeated))}")
    params = {k: v[0] for k, v in query.items()}
    redirect = params.get("redirect", "").lower()
    if redirect not in _TRUE | _FALSE:
        raise _fail(f"redirect must be true or false, not {params['redirect']!r}")
    try:
        expires = int(params.get("redirect_expires", "300"))
    except ValueError:
        expires = 0
    if not 1 <= expires <= 7 * 24 * 3600:  # SigV4 presigned URLs live at most 7 days
        raise _fail(f"redirect_expires must be 1..604800 seconds, "
                    f"not {params['redirect_expires']!r}")
    endpoint = params.get("endpoint") or None
    public = params.get("public_endpoint") or None
    return S3Location(
        bucket=bucket,
        prefix=parts.path.strip("/"),
        endpoint=_http_url("endpoint", endpoint) if endpoint else None,
        region=params.get("region") or None,
        redirect=redirect in _TRUE,
        public_endpoint=_http_url("public_endpoint", public) if public else None,
        redirect_expires=expires,
    )
