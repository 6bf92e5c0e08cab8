"""A small stand-in for Harbor's management API, run by tests as a separate process on
loopback: `python -m tests.support.harbor_api --port P --upstream URL [--ca FILE]
--user U --password PW --record FILE`.

It answers what an import reads of Harbor, in Harbor's shapes (its swagger, API v2.0):
- `GET /api/v2.0/projects?page=&page_size=`: a JSON list of projects (`project_id`, `name`,
  `public`, `owner_id`, `owner_name`, `repo_count`, `creation_time`, `update_time`,
  `metadata`), with `X-Total-Count` and `Link: <…>; rel="next"` (and "prev");
- `GET /api/v2.0/projects/{project_name}/repositories?page=&page_size=`: a list of
  repositories (`id`, `project_id`, `name` with the project in front, `description`,
  `artifact_count`, `pull_count`, `creation_time`, `update_time`), paged the same way;
  an unknown project is 404 with Harbor's `{"errors": [{code, message}]}`;
both behind HTTP Basic (401 otherwise). Projects and repositories are what a real CNCF
Distribution (the upstream) holds: its catalog, read with the same credentials, grouped by
the first path segment. `/v2/…` is forwarded to that Distribution as it is (credentials
included), so the pulls are real; `/v2/_catalog` is refused as Harbor refuses it to users
who are not administrators, so an import must list through the API above.

Every request is appended to the record file (method, path, query, status), without its
credentials. Standard library only, as tests/support/harbor_adapter.py.
"""

from __future__ import annotations

import argparse
import base64
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.error import HTTPError
from urllib.parse import parse_qs, quote, unquote, urlsplit
from urllib.request import Request, urlopen

FORWARDED = ("authorization", "accept", "range", "content-type")
ANSWERED = ("content-type", "content-length", "docker-content-digest", "www-authenticate",
            "link", "docker-distribution-api-version", "content-range", "etag")
CREATED = "2026-01-01T00:00:00.000Z"
MAX_PAGE_SIZE = 100  # Harbor's own bound


class State:
    def __init__(self, args: argparse.Namespace) -> None:
        self.upstream = args.upstream.rstrip("/")
        self.context = ssl.create_default_context(cafile=args.ca) if args.ca else None
        self.basic = "Basic " + base64.b64encode(
            f"{args.user}:{args.password}".encode()).decode()
        self.record = args.record
        self.lock = threading.Lock()

    def log(self, entry: dict[str, Any]) -> None:
        with self.lock, open(self.record, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")

    def catalog(self) -> list[str]:
        """The upstream's repositories, every page."""
        names: list[str] = []
        path = "/v2/_catalog?n=1000"
        while path:
            request = Request(self.upstream + path, headers={"authorization": self.basic})
            with urlopen(request, context=self.context, timeout=60) as reply:
                names += json.loads(reply.read()).get("repositories") or []
                link = reply.headers.get("link") or ""
            path = link.split(";")[0].strip("<> ") if 'rel="next"' in link else ""
        return sorted(names)

    def projects(self) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for name in self.catalog():
            grouped.setdefault(name.split("/", 1)[0], []).append(name)
        return grouped


def _page(query: dict[str, list[str]]) -> tuple[int, int]:
    try:
        page = max(1, int(query.get("page", ["1"])[0]))
        size = min(MAX_PAGE_SIZE, max(1, int(query.get("page_size", ["10"])[0])))
    except ValueError:
        page, size = 1, 10
    return page, size


class Handler(BaseHTTPRequestHandler):
    state: State
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        self._record(status)

    def _record(self, status: int) -> None:
        parts = urlsplit(self.path)
        self.state.log({"method": self.command, "path": parts.path, "query": parts.query,
                        "status": status})

    def _error(self, status: int, code: str, message: str,
               headers: dict[str, str] | None = None) -> None:
        self._answer(status, {"errors": [{"code": code, "message": message}]}, headers)

    def _paged(self, items: list[dict[str, Any]], path: str,
               query: dict[str, list[str]]) -> None:
        page, size = _page(query)
        chosen = items[(page - 1) * size: page * size]
        links = []
        if page * size < len(items):
            links.append(f'<{path}?page={page + 1}&page_size={size}>; rel="next"')
        if page > 1:
            links.append(f'<{path}?page={page - 1}&page_size={size}>; rel="prev"')
        headers = {"x-total-count": str(len(items))}
        if links:
            headers["link"] = ", ".join(links)
        self._answer(200, chosen, headers)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        parts = urlsplit(self.path)
        if parts.path.startswith("/v2"):
            return self._forward()
        if not parts.path.startswith("/api/v2.0/"):
            return self._error(404, "NOT_FOUND", "not found")
        if self.headers.get("authorization") != self.state.basic:
            return self._error(401, "UNAUTHORIZED", "unauthorized",
                               {"www-authenticate": 'Basic realm="harbor"'})
        query = parse_qs(parts.query)
        grouped = self.state.projects()
        if parts.path == "/api/v2.0/projects":
            items = [{"project_id": i + 1, "name": name, "public": False, "owner_id": 1,
                      "owner_name": "admin", "repo_count": len(repos),
                      "creation_time": CREATED, "update_time": CREATED,
                      "metadata": {"public": "false"}}
                     for i, (name, repos) in enumerate(sorted(grouped.items()))]
            return self._paged(items, parts.path, query)
        segments = parts.path.split("/")
        if len(segments) == 6 and segments[3] == "projects" and segments[5] == "repositories":
            project = unquote(segments[4])
            if project not in grouped:
                return self._error(404, "NOT_FOUND", f"project {project} not found")
            number = sorted(grouped).index(project) + 1
            items = [{"id": number * 10000 + i, "project_id": number, "name": name,
                      "description": "", "artifact_count": 1, "pull_count": 0,
                      "creation_time": CREATED, "update_time": CREATED}
                     for i, name in enumerate(grouped[project])]
            return self._paged(items, f"/api/v2.0/projects/{quote(project)}/repositories",
                               query)
        return self._error(404, "NOT_FOUND", "not found")

    def do_HEAD(self) -> None:  # noqa: N802
        if urlsplit(self.path).path.startswith("/v2"):
            return self._forward()
        self.send_response(405)
        self.send_header("content-length", "0")
        self.end_headers()

    def _forward(self) -> None:
        """The v2 API of the upstream, as it answers (Harbor's core proxies it too)."""
        if urlsplit(self.path).path.rstrip("/") == "/v2/_catalog":
            return self._error(401, "UNAUTHORIZED", "catalog is for system administrators")
        headers = {k: v for k, v in self.headers.items() if k.lower() in FORWARDED}
        request = Request(self.state.upstream + self.path, headers=headers,
                          method=self.command)
        try:
            reply = urlopen(request, context=self.state.context, timeout=60)
        except HTTPError as exc:
            reply = exc
        with reply:
            status = reply.status if hasattr(reply, "status") else reply.code
            self.send_response(status)
            length = reply.headers.get("content-length")
            for key, value in reply.headers.items():
                if key.lower() in ANSWERED:
                    self.send_header(key, value)
            if length is None:
                self.send_header("connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD":
                while chunk := reply.read(1 << 16):
                    self.wfile.write(chunk)
        self._record(status)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--ca")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--record", required=True)
    args = parser.parse_args()
    Handler.state = State(args)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
