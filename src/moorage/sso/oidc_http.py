"""HTTP to an OpenID provider, bounded: every answer is read up to a size limit, within a
timeout, checked against the configured CA, and must be a JSON object.

A provider is outside our control: down, slow, behind a captive portal answering HTML, or
simply wrong. Whatever it does, the caller gets a `ProviderError` whose message says what
went wrong in words a user can pass on, never a secret (no code, token or client secret is
ever put in a message) and never a stack trace. Everything here blocks: call it from a
worker thread.
"""

from __future__ import annotations

import json
import ssl
from typing import Any

import httpx

from moorage.access.identity import SignInUnavailable
from moorage.settings import SettingsError

# Discovery documents, key sets and token answers are a few KiB; 256 KiB bounds what a
# broken or hostile provider can make us hold.
MAX_ANSWER_BYTES = 256 << 10
# What of a provider's own error text is repeated to the user.
MAX_ERROR_TEXT = 200


class ProviderError(SignInUnavailable):
    """The provider could not be asked, or answered something unusable."""


def printable(text: object, limit: int = MAX_ERROR_TEXT) -> str:
    """A provider's words, cut short and stripped of control characters, to show a user."""
    cleaned = "".join(c if c.isprintable() else " " for c in str(text))
    return cleaned[:limit] + ("…" if len(cleaned) > limit else "")


class ProviderHttp:
    """One connection pool to one provider, with its timeout and trusted CAs."""

    def __init__(self, timeout: float, ca_file: str = "") -> None:
        """Raises SettingsError when `ca_file` cannot be read: found at start, not at the
        first sign-in."""
        verify: ssl.SSLContext | bool = True
        if ca_file:
            try:
                verify = ssl.create_default_context(cafile=ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise SettingsError(f"setting 'oidc_ca_file': {ca_file} is not a readable "
                                    f"PEM file of CA certificates ({exc})") from None
        # Proxies from HTTPS_PROXY/NO_PROXY are honoured, as for any outgoing request.
        self.client = httpx.Client(timeout=timeout, verify=verify, follow_redirects=False)

    def get_json(self, url: str, what: str, headers: dict[str, str] | None = None
                 ) -> dict[str, Any]:
        return self._call("GET", url, what, headers=headers)

    def post_form(self, url: str, what: str, form: dict[str, str],
                  auth: tuple[str, str] | None = None) -> dict[str, Any]:
        return self._call("POST", url, what, data=form, auth=auth)

    def _call(self, method: str, url: str, what: str, **kwargs: Any) -> dict[str, Any]:
        try:
            with self.client.stream(method, url, headers={
                    "accept": "application/json", **(kwargs.pop("headers", None) or {})},
                    **kwargs) as answer:
                body = self._read(answer, what)
                status = answer.status_code
        except ProviderError:
            raise
        except httpx.TimeoutException:
            raise ProviderError(f"the identity provider did not answer its {what} in time"
                                ) from None
        except httpx.HTTPError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise ProviderError(f"the identity provider's TLS certificate is not trusted "
                                    f"(for its {what}; oidc_ca_file names the CAs to "
                                    f"trust)") from None
            raise ProviderError(f"the identity provider could not be reached for its {what} "
                                f"({type(exc).__name__})") from None
        data = self._json(body, what, status)
        if status >= 400:
            error = data.get("error")
            detail = data.get("error_description")
            said = printable(error) if isinstance(error, str) else f"HTTP {status}"
            if isinstance(detail, str) and detail:
                said += f": {printable(detail)}"
            raise ProviderError(f"the identity provider refused the {what} ({said})")
        if status != 200:
            raise ProviderError(f"the identity provider answered its {what} with HTTP {status}")
        return data

    @staticmethod
    def _read(answer: httpx.Response, what: str) -> bytes:
        length = answer.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_ANSWER_BYTES:
            raise ProviderError(f"the identity provider's {what} is too large")
        body = bytearray()
        for chunk in answer.iter_bytes():
            body += chunk
            if len(body) > MAX_ANSWER_BYTES:
                raise ProviderError(f"the identity provider's {what} is too large")
        return bytes(body)

    @staticmethod
    def _json(body: bytes, what: str, status: int) -> dict[str, Any]:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            where = f"HTTP {status}, " if status != 200 else ""
            raise ProviderError(f"the identity provider's {what} is not a JSON object "
                                f"({where}{len(body)} bytes)")
        return data

    def close(self) -> None:
        self.client.close()
