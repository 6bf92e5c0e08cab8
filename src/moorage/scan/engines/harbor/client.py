"""An async HTTP client for one Harbor scanner adapter: metadata, scan request, report.

Every call has its own timeout (connect, read, write, pool: `step_timeout`) and every answer
is read up to a bound before it is parsed, so an adapter that hangs or floods cannot hold a
scan or the process's memory. Redirects are not followed (302 is the spec's "not ready").
How Moorage authenticates to the adapter (`AdapterAuth`) is separate from the credential the
adapter gets for pulling from Moorage (in the scan request's body).
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from moorage.scan.engines.harbor.protocol import (METADATA_ACCEPT, REPORT_V11, SCAN_REQUEST,
                                                  AdapterError, Metadata, error_message,
                                                  parse_metadata)

AUTH_KINDS = ("none", "bearer", "basic", "apikey")
API_KEY_HEADER = "X-ScannerAdapter-API-Key"
MAX_METADATA_BYTES = 1 << 20
MAX_SCAN_RESPONSE_BYTES = 64 << 10
MAX_REPORT_BYTES = 64 << 20
DEFAULT_STEP_TIMEOUT = 30.0
# Refresh-After: what the adapter asks for, within reason
MIN_REFRESH, MAX_REFRESH, DEFAULT_REFRESH = 0.2, 60.0, 2.0


@dataclass(frozen=True)
class AdapterAuth:
    """How Moorage authenticates to an adapter: `bearer` (token), `basic` ("user:password"),
    `apikey` (the X-ScannerAdapter-API-Key header) or `none`."""

    kind: str = "none"
    secret: str = ""

    def __repr__(self) -> str:  # never a secret in a log or a traceback
        return f"AdapterAuth(kind={self.kind!r})"

    def headers(self) -> dict[str, str]:
        if self.kind == "bearer":
            return {"Authorization": f"Bearer {self.secret}"}
        if self.kind == "basic":
            return {"Authorization": "Basic " + base64.b64encode(self.secret.encode()).decode()}
        if self.kind == "apikey":
            return {API_KEY_HEADER: self.secret}
        return {}


@dataclass(frozen=True)
class Pending:
    """The report is not ready: ask again after `refresh_after` seconds."""

    refresh_after: float


class AdapterClient:
    def __init__(self, url: str, auth: AdapterAuth = AdapterAuth(),
                 step_timeout: float = DEFAULT_STEP_TIMEOUT,
                 max_report_bytes: int = MAX_REPORT_BYTES,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base = url.rstrip("/") + "/api/v1"
        self.auth = auth
        self.step_timeout = step_timeout
        self.max_report_bytes = max_report_bytes
        self.transport = transport

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=httpx.Timeout(self.step_timeout),
                                 follow_redirects=False, transport=self.transport,
                                 headers=self.auth.headers(), trust_env=False)

    async def _call(self, method: str, path: str, limit: int, what: str,
                    **kwargs: Any) -> tuple[httpx.Response, bytes]:
        """One request, its body read up to `limit` bytes."""
        try:
            async with self._client() as client:
                async with client.stream(method, self.base + path, **kwargs) as response:
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > limit:
                        raise AdapterError(f"its {what} is larger than the {limit} bytes "
                                           f"allowed ({int(declared)} bytes)")
                    body = bytearray()
                    async for chunk in response.aiter_bytes():  # decoded: bounds a gzip bomb
                        body += chunk
                        if len(body) > limit:
                            raise AdapterError(f"its {what} is larger than the {limit} bytes "
                                               f"allowed")
                    return response, bytes(body)
        except httpx.TimeoutException:
            raise AdapterError(f"it did not answer the {what} request within "
                               f"{self.step_timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise AdapterError(f"the {what} request failed: {type(exc).__name__}: "
                               f"{str(exc)[:200]}") from None

    @staticmethod
    def _json(body: bytes, what: str) -> Any:
        try:
            return json.loads(body)
        except ValueError:
            raise AdapterError(f"its {what} is not JSON") from None

    def _refusal(self, response: httpx.Response, body: bytes, what: str) -> AdapterError:
        try:
            detail = error_message(json.loads(body))
        except ValueError:
            detail = ""
        if response.status_code in (401, 403):
            detail = detail or "check the credential Moorage uses to call the adapter"
        return AdapterError(f"it answered the {what} request with HTTP {response.status_code}"
                            + (f": {detail}" if detail else ""))

    async def metadata(self) -> Metadata:
        response, body = await self._call("GET", "/metadata", MAX_METADATA_BYTES, "metadata",
                                          headers={"Accept": METADATA_ACCEPT})
        if response.status_code != 200:
            raise self._refusal(response, body, "metadata")
        return parse_metadata(self._json(body, "metadata"))

    async def scan(self, request: dict[str, Any]) -> str:
        """Ask for a scan; the id to poll its report by."""
        response, body = await self._call(
            "POST", "/scan", MAX_SCAN_RESPONSE_BYTES, "scan",
            content=json.dumps(request).encode(),
            headers={"Content-Type": SCAN_REQUEST, "Accept": "application/json"})
        if response.status_code != 202:
            raise self._refusal(response, body, "scan")
        data = self._json(body, "scan answer")
        ident = data.get("id") if isinstance(data, dict) else None
        if not isinstance(ident, str) or not ident or len(ident) > 255:
            raise AdapterError("its scan answer has no scan id")
        return ident

    async def report(self, scan_id: str) -> Pending | Any:
        """The v1.1 report (parsed JSON), or Pending while the adapter is still at it."""
        response, body = await self._call(
            "GET", f"/scan/{quote(scan_id, safe='')}/report", self.max_report_bytes, "report",
            headers={"Accept": REPORT_V11})
        if response.status_code == 302:
            return Pending(refresh_after(response.headers.get("refresh-after")))
        if response.status_code == 404:
            raise AdapterError(f"it no longer knows scan {scan_id[:80]} (HTTP 404)")
        if response.status_code != 200:
            raise self._refusal(response, body, "report")
        return await asyncio.to_thread(self._json, body, "report")  # up to 64 MiB: off the loop


def refresh_after(value: str | None) -> float:
    """Refresh-After is whole seconds; a missing or odd value is the default, and what an
    adapter asks for is kept within bounds."""
    try:
        seconds = float(value) if value is not None else DEFAULT_REFRESH
    except ValueError:
        seconds = DEFAULT_REFRESH
    if seconds != seconds:  # NaN
        seconds = DEFAULT_REFRESH
    return min(MAX_REFRESH, max(MIN_REFRESH, seconds))
