"""The CLI's HTTP client for the management API.

Where the server and the credentials come from, in this order: the environment
(MOORAGE_URL, MOORAGE_USERNAME, MOORAGE_PASSWORD), then the file `moorage login` wrote. The
stored token is only ever sent to the server it was issued by.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from moorage.cli import credentials
from moorage.cli.output import REFUSED, CliError, usage

if TYPE_CHECKING:
    import httpx

# httpx (~40 ms to import) is imported when a client is made, not with this module: `main`
# imports every command module, and `moorage --help` talks to no server.
TIMEOUT_SECONDS, CONNECT_TIMEOUT_SECONDS = 30.0, 10.0


class ApiError(CliError):
    """The API refused: its status, stable code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, REFUSED)
        self.status = status
        self.code = code


def normalize_url(url: str) -> str:
    """`host:port` alone means https, except on loopback where registries run plain http."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        host = url.split("/", 1)[0].rsplit(":", 1)[0]
        scheme = "http" if host in ("localhost", "127.0.0.1", "[::1]") else "https"
        url = f"{scheme}://{url}"
    return url


def segment(value: str) -> str:
    """One path segment, escaped (usernames such as robot$team+ci)."""
    return quote(value, safe="")


def repo_path(name: str) -> str:
    return quote(name, safe="/")


class ApiClient:
    def __init__(self, url: str, auth: httpx.Auth | None = None,
                 headers: dict[str, str] | None = None, login_hint: bool = True) -> None:
        import httpx

        self.url = url
        self.login_hint = login_hint
        # Plain http needs no CA bundle, and loading one costs ~70 ms a command. Redirects
        # are not followed, so this never downgrades a TLS connection.
        self.http = httpx.Client(base_url=f"{url}/api/v1", auth=auth, headers=headers,
                                 timeout=httpx.Timeout(TIMEOUT_SECONDS,
                                                       connect=CONNECT_TIMEOUT_SECONDS),
                                 verify=not url.startswith("http://"))

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded JSON answer (None for 204); ApiError or CliError otherwise."""
        import httpx

        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach {self.url}: {exc}") from None
        if resp.status_code == 204:
            return None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.is_success:
            return body
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and "message" in error:
            code, message = str(error.get("code", "")), str(error["message"])
        else:
            code, message = "", f"{method} {path} failed: HTTP {resp.status_code}"
        if resp.status_code == 401 and self.login_hint:
            message += f" (run `moorage login {self.url}`)"
        raise ApiError(resp.status_code, code, message)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items()
                                                 if v is not None})

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", path, json=body)

    def put(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("PUT", path, json=body)

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str, **params: Any) -> Any:
        return self.request("DELETE", path, params=params)


def connect() -> ApiClient:
    """A client for the configured server, with the environment winning over the file."""
    stored = credentials.load()
    env_url = os.environ.get("MOORAGE_URL")
    url = normalize_url(env_url) if env_url else (stored.url if stored else None)
    if not url:
        raise usage("no server configured: run `moorage login URL` or set MOORAGE_URL")
    same_server = stored is not None and stored.url == url
    password = os.environ.get("MOORAGE_PASSWORD")
    if password:
        username = os.environ.get("MOORAGE_USERNAME") or (stored.username if same_server
                                                          and stored else None)
        if not username:
            raise usage("MOORAGE_PASSWORD is set but MOORAGE_USERNAME is not")
        import httpx

        return ApiClient(url, auth=httpx.BasicAuth(username, password))
    if same_server and stored is not None:
        return ApiClient(url, headers={"Authorization": f"Bearer {stored.token}"})
    return ApiClient(url)
