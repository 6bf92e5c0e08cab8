"""One conversation with one registry: authentication, retries, timeouts and redirects
around each HTTP request, so that the operations in `client.py` only say what they ask.

Every request goes through `Session.request`:
- a token (or Basic credentials) for the scopes the request needs is attached, but only to
  the registry's own origin: a redirect to a storage service (an S3 presigned URL) carries
  no credential of ours;
- a 401 drops the token that was refused, reads the new challenge and tries once more with
  a fresh token; a second 401 is a RemoteAuthError;
- connection failures, timeouts, 408/429/5xx are tried again after a backoff (or the
  `Retry-After` the registry asked for), a bounded number of times;
- redirects are followed only where asked (blob reads), to a bound, and a loop is an error;
- small requests have a deadline for the whole exchange; streams have one until their
  headers, then a bound on each silence between reads (httpx's read timeout).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random as _random
import re
import ssl
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from typing import Union

import httpx

from moorage.remote import auth
from moorage.remote.config import RemoteConfig, is_loopback, safe_url
from moorage.remote.errors import (RemoteAuthError, RemoteConnectError, RemoteError, RemoteNotFound,
                                   RemoteProtocolError, RemoteTimeout, RemoteTooLarge,
                                   RemoteUnavailable)
from moorage.remote.retry import RETRY_STATUSES, backoff, retry_after

log = logging.getLogger("moorage.remote")

class _NoQueryInRequestLog(logging.Filter):
    """httpx logs each request's whole URL at INFO, httpcore the response headers (a
    redirect's Location) at DEBUG; a query string there may hold a presigned URL's signature
    or an upload's state. The lines keep scheme, host and path, and lose every query."""

    _QUERY = re.compile(r"\?[^\s'\"<>)]*")

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 2 and isinstance(args[1], httpx.URL):
            record.args = (args[0], safe_url(args[1]), *args[2:])
        elif record.levelno <= logging.DEBUG and "?" in str(record.msg):
            record.msg = self._QUERY.sub("?…", str(record.msg))
            if isinstance(record.args, tuple) and record.args:
                record.args = tuple(self._QUERY.sub("?…", str(a)) for a in record.args)
        return True


for _name in ("httpx", "httpcore.http11", "httpcore.http2", "httpcore.connection"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, _NoQueryInRequestLog) for f in _logger.filters):
        _logger.addFilter(_NoQueryInRequestLog())

REDIRECTS = frozenset({301, 302, 303, 307, 308})
Content = Union[bytes, AsyncIterable[bytes], None]
# bytes, or a factory giving one stream a try (both can be sent again), or a one-shot stream
Body = Union[bytes, Callable[[], AsyncIterable[bytes]], AsyncIterable[bytes], None]
Sleep = Callable[[float], Awaitable[None]]


@dataclass
class Reply:
    """A response whose (bounded) body was read within the request's deadline."""

    response: httpx.Response
    body: bytes

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def headers(self) -> httpx.Headers:
        return self.response.headers


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


def _clean(text: str, limit: int = 200) -> str:
    """A registry's words, made safe to show: printable, one line, bounded."""
    text = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(text.split())[:limit]


def error_detail(body: bytes) -> str:
    """`CODE: message` from a Distribution error body, or the start of a text body."""
    try:
        doc = json.loads(body)
        first = doc["errors"][0]
        code, message = str(first.get("code", "")), str(first.get("message", ""))
        return _clean(f"{code}: {message}" if code and message else code or message)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return _clean(body[:200].decode("utf-8", "replace"))


class Session:
    """HTTP to one registry with its credentials and policies. Close it (`aclose` or
    `async with`) to release its connections."""

    def __init__(self, config: RemoteConfig, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Sleep = asyncio.sleep, random: Callable[[], float] = _random.random,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self.base = config.check()
        self.registry = self.base.host + (f":{self.base.port}" if self.base.port else "")
        self.clock, self.sleep, self.random = clock, sleep, random
        t = config.timeouts
        if config.insecure:
            verify: ssl.SSLContext | bool = False
        elif config.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(config.ca_file))
        else:
            verify = True
        # trust_env off: no proxy, netrc or CA bundle picked up from the environment behind
        # the configuration's back; what is configured is what is used.
        self.http = httpx.AsyncClient(
            verify=verify, trust_env=False, follow_redirects=False, transport=transport,
            timeout=httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool),
            headers={"user-agent": config.user_agent})
        self._challenge: auth.Challenge | None = None
        self._pinged = False
        self._tokens = auth.TokenCache()
        self._token_lock = asyncio.Lock()
        # held while /v2/ is asked how to authenticate: requests started meanwhile wait for
        # the answer instead of going out without credentials
        self._ping_lock = asyncio.Lock()
        self.token_requests = 0  # how many tokens were fetched (for callers' metrics)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> "Session":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def url(self, path: str) -> httpx.URL:
        return self.base.join(path)

    def same_origin(self, url: httpx.URL) -> bool:
        return _origin(url) == _origin(self.base)

    def error(self, kind: type[RemoteError], message: str, what: str,
              repository: str | None = None, status: int | None = None) -> RemoteError:
        return kind(message, registry=self.registry, repository=repository, what=what,
                    status=status)

    # -- authentication --------------------------------------------------------------------

    async def _ping(self, what: str, repository: str | None) -> None:
        """GET /v2/ once, anonymously, to learn how this registry authenticates; a failure
        is reported as one of the operation that needed it."""
        self._pinged = True
        reply = await self.request("GET", self.url("/v2/"), scopes=(), what=what,
                                   repository=repository,
                                   read_limit=self.config.limits.error_bytes, _auth=False)
        if reply.status == 401:
            self._challenge = auth.pick_challenge(reply.headers.get("www-authenticate", ""))
            if self._challenge is None:
                raise self.error(RemoteAuthError, "401 without a Basic or Bearer challenge",
                                 what, repository, 401)
        elif reply.status >= 400:
            raise self.fail(reply, what, repository)

    async def _authorization(self, scopes: tuple[auth.Scope, ...], what: str,
                             repository: str | None) -> tuple[str | None, str | None]:
        """(Authorization header, token used) for a request needing `scopes`."""
        if self._challenge is None and not self._pinged:
            async with self._ping_lock:
                if self._challenge is None and not self._pinged:
                    await self._ping(what, repository)
        challenge, cfg = self._challenge, self.config
        if challenge is None:
            return None, None
        if challenge.scheme == "basic":
            if cfg.username is None or cfg.password is None:
                raise self.error(RemoteAuthError, "the registry asks for credentials and none "
                                 "are configured", what, repository, 401)
            return auth.basic_header(cfg.username, cfg.password), None
        wanted = auth.merge_scopes(scopes)
        async with self._token_lock:
            token = self._tokens.find(wanted, self.clock())
            if token is None:
                token = await self._fetch_token(challenge, wanted, what, repository)
        return f"Bearer {token}", token

    async def _fetch_token(self, challenge: auth.Challenge, scopes: tuple[auth.Scope, ...],
                           what: str, repository: str | None) -> str:
        cfg = self.config
        try:
            realm = httpx.URL(challenge.realm)
        except (httpx.InvalidURL, TypeError):
            realm = httpx.URL("")
        if realm.scheme not in ("http", "https") or not realm.host:
            raise self.error(RemoteAuthError, f"unusable token realm {challenge.realm[:100]!r}",
                             what, repository)
        headers = {}
        if cfg.username is not None and cfg.password is not None:
            if realm.scheme == "http" and not (is_loopback(realm.host) or cfg.insecure):
                raise self.error(RemoteAuthError, "refusing to send credentials over plain "
                                 f"http to the token service {safe_url(realm)}", what, repository)
            headers["authorization"] = auth.basic_header(cfg.username, cfg.password)
        params: list[tuple[str, str]] = []
        if challenge.service:
            params.append(("service", challenge.service))
        params += [("scope", auth.scope_text(s)) for s in scopes]
        started = self.clock()
        self.token_requests += 1
        reply = await self.request("GET", realm.copy_merge_params(params), scopes=(),
                                   what=f"{what} (token)", repository=repository,
                                   headers=headers, read_limit=cfg.limits.token_bytes,
                                   _auth=False)
        if reply.status in (401, 403):
            raise self.error(RemoteAuthError, "the token service refused the credentials"
                             if headers else "the token service refused an anonymous token",
                             what, repository, reply.status)
        if reply.status != 200:
            raise self.fail(reply, f"{what} (token)", repository)
        try:
            doc = json.loads(reply.body)
            token = doc.get("token") or doc.get("access_token")
            expires_in = doc.get("expires_in")
        except (ValueError, AttributeError):
            token, expires_in = None, None
        if not isinstance(token, str) or not token or len(token) > 65536 or \
                not token.isascii() or not token.isprintable():
            raise self.error(RemoteAuthError, "the token service answered no usable token",
                             what, repository, reply.status)
        if not isinstance(expires_in, (int, float)) or isinstance(expires_in, bool) \
                or expires_in <= 0:
            expires_in = auth.DEFAULT_EXPIRES_IN
        margin = min(auth.EXPIRY_MARGIN, expires_in / 2)
        self._tokens.add(scopes, token, started + expires_in - margin)
        return token

    # -- requests ----------------------------------------------------------------------------

    async def request(self, method: str, url: httpx.URL, *, scopes: tuple[auth.Scope, ...],
                      what: str, repository: str | None = None,
                      headers: dict[str, str] | None = None, body: Body = None,
                      read_limit: int | None = None, follow_redirects: bool = False,
                      retry: bool = True, deadline: bool = True,
                      _auth: bool = True) -> Reply:
        """Send one request, with authentication, retries and redirects.

        With `read_limit`, the body is read (at most that many bytes, else RemoteTooLarge)
        within the deadline and the connection released; without it the response is left
        open for streaming (`Reply.body` empty) and the caller must `aclose` it.
        `deadline` bounds each try's whole exchange (or, for a stream, until its headers).
        429 and 5xx answers are tried again when `retry`; any other status is the caller's.
        """
        cfg = self.config
        failures = 0
        auth_retried = False
        extra: tuple[auth.Scope, ...] = ()
        target = url
        seen = {str(url)}
        while True:
            sent = dict(headers or {})
            token = None
            if _auth and self.same_origin(target):
                authorization, token = await self._authorization(scopes + extra, what,
                                                                 repository)
                if authorization:
                    sent["authorization"] = authorization
            content = body() if callable(body) else body
            try:
                reply = await self._exchange(method, target, sent, content, read_limit,
                                             deadline, what, repository)
            except (httpx.TimeoutException, TimeoutError) as exc:
                failures += 1
                kind = type(exc).__name__ if isinstance(exc, httpx.TimeoutException) else \
                    "no answer within the request deadline"
                if not retry or failures >= cfg.retry.attempts:
                    raise self.error(RemoteTimeout, f"timed out ({kind}) after {failures} "
                                     f"attempt{'s' if failures > 1 else ''}",
                                     what, repository) from None
                await self._backoff(failures, None, what)
                continue
            except httpx.TransportError as exc:
                if _untrusted(exc):
                    raise self.error(RemoteConnectError, "the registry's TLS certificate is "
                                     "not trusted (configure its CA file, or insecure)", what,
                                     repository) from None
                failures += 1
                if not retry or failures >= cfg.retry.attempts:
                    raise self.error(RemoteUnavailable, f"connection failed "
                                     f"({type(exc).__name__}) after {failures} attempt"
                                     f"{'s' if failures > 1 else ''}", what, repository) from None
                await self._backoff(failures, None, what)
                continue
            status = reply.status
            if status == 401 and _auth and self.same_origin(target):
                challenge = auth.pick_challenge(reply.headers.get("www-authenticate", ""))
                await reply.response.aclose()
                if token is not None:
                    self._tokens.drop(token)
                if challenge is None:
                    raise self.error(RemoteAuthError, "401 without a Basic or Bearer challenge",
                                     what, repository, 401)
                # refused: credentials of that scheme were sent (a request that went out
                # without any, before the challenge was known, simply tries again with them)
                refused = sent.get("authorization", "").lower().startswith(challenge.scheme)
                if auth_retried or (challenge.scheme == "basic" and refused):
                    raise self.error(RemoteAuthError, "the registry refused our "
                                     + ("token" if challenge.scheme == "bearer" else
                                        "credentials"), what, repository, 401)
                auth_retried = True
                self._challenge = challenge
                extra = challenge.scopes
                if body is not None and not callable(body) and not isinstance(body, bytes):
                    # a one-shot stream was spent on the refused try: the caller sends it
                    # again (an upload resumes), and will find a fresh token then
                    raise self.error(RemoteUnavailable, "the registry refused our token "
                                     "during a streamed upload", what, repository, 401)
                continue
            if follow_redirects and status in REDIRECTS:
                location = reply.headers.get("location", "")
                await reply.response.aclose()
                try:
                    target = target.join(location)
                except httpx.InvalidURL:
                    raise self.error(RemoteProtocolError, "redirect to an invalid location",
                                     what, repository, status) from None
                if not location or target.scheme not in ("http", "https"):
                    raise self.error(RemoteProtocolError, "redirect without a usable location",
                                     what, repository, status)
                if str(target) in seen:
                    raise self.error(RemoteProtocolError, f"redirect loop (back to "
                                     f"{safe_url(target)})", what, repository, status)
                seen.add(str(target))
                if len(seen) > cfg.limits.redirects + 1:
                    raise self.error(RemoteProtocolError, f"more than {cfg.limits.redirects} "
                                     "redirects", what, repository, status)
                continue
            if retry and status in RETRY_STATUSES:
                failures += 1
                wait = retry_after(reply.headers.get("retry-after"), cfg.retry) \
                    if status in (429, 503) else None
                await reply.response.aclose()
                if failures >= cfg.retry.attempts:
                    raise self.error(RemoteUnavailable, f"still answering {status} after "
                                     f"{failures} attempts", what, repository, status)
                await self._backoff(failures, wait, what)
                continue
            return reply

    async def _exchange(self, method: str, url: httpx.URL, headers: dict[str, str],
                        content: Content, read_limit: int | None, deadline: bool, what: str,
                        repository: str | None) -> Reply:
        request = self.http.build_request(method, url, headers=headers, content=content)
        timeout = self.config.timeouts.request if deadline else None
        async with asyncio.timeout(timeout):
            response = await self.http.send(request, stream=True)
            if read_limit is None:
                return Reply(response, b"")
            if method == "HEAD":  # no body, whatever its Content-Length says
                await response.aclose()
                return Reply(response, b"")
            try:
                body = await read_bounded(response, read_limit)
            except RemoteTooLarge as exc:
                raise self.error(RemoteTooLarge, exc.message, what, repository,
                                 response.status_code) from None
            finally:
                await response.aclose()
            return Reply(response, body)

    async def _backoff(self, failures: int, wait: float | None, what: str) -> None:
        delay = wait if wait is not None else backoff(self.config.retry, failures, self.random)
        log.info("remote %s: %s failed (attempt %d), trying again in %.1f s",
                 self.registry, what, failures, delay)
        await self.sleep(delay)

    def fail(self, reply: Reply, what: str, repository: str | None = None) -> RemoteError:
        """The error for an answer the operation did not expect."""
        status = reply.status
        detail = error_detail(reply.body) if reply.body else ""
        message = detail or "unexpected answer"
        if status == 404:
            return self.error(RemoteNotFound, detail or "not found", what, repository, status)
        if status in (401, 403):
            return self.error(RemoteAuthError, detail or "access denied", what, repository,
                              status)
        if status in RETRY_STATUSES:
            return self.error(RemoteUnavailable, message, what, repository, status)
        return self.error(RemoteError, message, what, repository, status)

    async def fail_stream(self, reply: Reply, what: str, repository: str | None = None
                          ) -> RemoteError:
        """As `fail`, for a response still open: reads a bounded part of its body first."""
        try:
            async with asyncio.timeout(self.config.timeouts.request):
                body = await read_bounded(reply.response, self.config.limits.error_bytes,
                                          truncate=True)
        except (httpx.HTTPError, TimeoutError):
            body = b""
        finally:
            await reply.response.aclose()
        return self.fail(Reply(reply.response, body), what, repository)


def _untrusted(exc: BaseException) -> bool:
    """Whether a connection failed on TLS verification (no retry can fix that)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def read_bounded(response: httpx.Response, limit: int, truncate: bool = False) -> bytes:
    """The body, refusing (or, with `truncate`, cutting) more than `limit` bytes."""
    length = response.headers.get("content-length", "")
    if not truncate and length.isdigit() and int(length) > limit:
        raise RemoteTooLarge(f"the answer is {int(length)} bytes, more than the bound of "
                             f"{limit}")
    buffer = bytearray()
    async for chunk in response.aiter_bytes():
        buffer += chunk
        if len(buffer) > limit:
            if truncate:
                return bytes(buffer[:limit])
            raise RemoteTooLarge(f"the answer is more than the bound of {limit} bytes")
    return bytes(buffer)
