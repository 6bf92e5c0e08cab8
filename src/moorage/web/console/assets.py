"""The console's static files, served from this package (and the API document page's, from
the `fastapi-offline` package): no page ever asks another host for anything.

Files are read once at start into memory (they are small), with a content hash in their URL
(`/static/style.css?v=<hash>`), so browsers may keep them for a year and still see a new
release at once.
"""

from __future__ import annotations

import hashlib
import mimetypes
from importlib import resources
from pathlib import Path

from starlette.responses import Response

from moorage.web.http import Receive, Scope, Send

_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon",
          ".txt": "text/plain; charset=utf-8", ".map": "application/json"}
_YEAR = 365 * 86400


class StaticAssets:
    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str, str]] = {}
        root = resources.files("moorage.web.console") / "static"
        self._load(Path(str(root)), "")
        try:  # Swagger UI's files for /api/v1/docs
            import fastapi_offline

            self._load(Path(fastapi_offline.__file__).parent / "static", "apidocs/")
        except ImportError:  # pragma: no cover - a declared dependency
            pass

    def _load(self, root: Path, prefix: str) -> None:
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.suffix == ".map":
                continue
            data = path.read_bytes()
            kind = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or \
                "application/octet-stream"
            name = prefix + path.relative_to(root).as_posix()
            self.files[name] = (data, kind, hashlib.sha256(data).hexdigest()[:12])

    def url(self, name: str) -> str:
        found = self.files.get(name)
        return f"/static/{name}?v={found[2]}" if found else f"/static/{name}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = scope["path"].removeprefix("/static/")
        found = self.files.get(name)
        if found is None or scope["method"] not in ("GET", "HEAD"):
            status = 404 if found is None else 405
            await Response(b"not found" if status == 404 else b"method not allowed",
                           status_code=status, media_type="text/plain",
                           headers={"x-content-type-options": "nosniff"})(scope, receive, send)
            return
        data, kind, tag = found
        etag = f'"{tag}"'
        headers = {"etag": etag, "x-content-type-options": "nosniff",
                   "cache-control": f"public, max-age={_YEAR}, immutable"}
        inm = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"if-none-match"),
                   None)
        if inm == etag:
            await Response(status_code=304, headers=headers)(scope, receive, send)
            return
        body = b"" if scope["method"] == "HEAD" else data
        response = Response(body, media_type=kind, headers=headers)
        if scope["method"] == "HEAD":
            response.headers["content-length"] = str(len(data))
        await response(scope, receive, send)
