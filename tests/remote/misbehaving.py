"""A tiny registry that misbehaves on purpose, run as its own process by the fixtures.

    python -m tests.remote.misbehaving PORT

Each repository name is one behaviour (below). It also runs a token service (`/token`,
Basic `user:secret`, tokens numbered t1, t2, …) and counts what it was asked:
`GET /_stats` answers the counters as JSON, `POST /_rotate` makes every token issued so far
invalid (a token revoked before its expiry), `POST /_reset` zeroes the counters. The
repository `uploads` takes blob uploads (in memory, behind the token service).
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LAYER = b"misbehaving layer bytes " * 1000
LAYER_DIGEST = "sha256:" + hashlib.sha256(LAYER).hexdigest()
BIG_LAYER = LAYER * 400  # ~9.6 MB: several chunks of any client
BIG_LAYER_DIGEST = "sha256:" + hashlib.sha256(BIG_LAYER).hexdigest()
CONFIG = b'{"architecture":"amd64","os":"linux"}'
CONFIG_DIGEST = "sha256:" + hashlib.sha256(CONFIG).hexdigest()
MANIFEST = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": CONFIG_DIGEST, "size": len(CONFIG)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": LAYER_DIGEST, "size": len(LAYER)}]}).encode()
MANIFEST_DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
USER, PASSWORD = "user", "pw-misbehaving-7731"

lock = threading.Lock()
stats: dict[str, int] = {}
tokens = {"issued": 0, "valid_from": 1}
uploads: dict[str, Any] = {"next": 0, "blobs": {}}


def count(key: str) -> int:
    with lock:
        stats[key] = stats.get(key, 0) + 1
        return stats[key]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: object) -> None:
        sys.stderr.write(f"{self.command} {self.path}\n")

    # -- answers ------------------------------------------------------------------------

    def answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
               length: int | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status: int, code: str, message: str,
              headers: dict[str, str] | None = None) -> None:
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self.answer(status, body, {"Content-Type": "application/json", **(headers or {})})

    def manifest(self, body: bytes = MANIFEST, digest: str = MANIFEST_DIGEST,
                 media_type: str = OCI_MANIFEST) -> None:
        self.answer(200, body, {"Content-Type": media_type, "Docker-Content-Digest": digest})

    def bearer_ok(self, repo: str) -> bool:
        """The token service's tokens: only those issued since the last rotation are good."""
        value = self.headers.get("Authorization", "")
        if value.startswith("Bearer t") and value[8:].isdigit():
            number = int(value[8:])
            if tokens["valid_from"] <= number <= tokens["issued"]:
                return True
        host = self.headers.get("Host")
        self.error(401, "UNAUTHORIZED", "authentication required", {
            "WWW-Authenticate": f'Bearer realm="http://{host}/token",service="misbehaving",'
                                f'scope="repository:{repo}:pull"'})
        return False

    # -- routes -------------------------------------------------------------------------

    def do_GET(self) -> None:
        self.route()

    def do_HEAD(self) -> None:
        self.route()

    def do_POST(self) -> None:
        self.route()

    def do_PATCH(self) -> None:
        self.route()

    def do_PUT(self) -> None:
        self.route()

    def do_DELETE(self) -> None:
        self.route()

    def route(self) -> None:
        path, _, query = self.path.partition("?")
        count(f"{self.command} {path}")
        if path == "/_stats":
            with lock:
                return self.answer(200, json.dumps(stats).encode())
        if path == "/_rotate":
            with lock:
                tokens["valid_from"] = tokens["issued"] + 1
            return self.answer(200)
        if path == "/_reset":
            with lock:
                stats.clear()
            return self.answer(200)
        if path == "/token":
            return self.token(query)
        if path == "/v2/":
            return self.answer(200, b"{}", {"Content-Type": "application/json"})
        if path.startswith("/redirect/"):
            # /redirect/a -> /redirect/b -> /redirect/a: a loop; /redirect/chain/N -> N+1
            step = path.rsplit("/", 1)[1]
            if path.startswith("/redirect/chain/"):
                return self.answer(307, headers={"Location": f"/redirect/chain/{int(step) + 1}"})
            other = "b" if step == "a" else "a"
            return self.answer(307, headers={"Location": f"/redirect/{other}"})
        if path.startswith("/storage/"):
            # a storage service's presigned URL: it must not be sent our credentials
            if "Authorization" in self.headers:
                return self.error(400, "CREDENTIALS_LEAKED", "an Authorization header came")
            return self.answer(200, LAYER, {"Content-Type": "application/octet-stream"})
        parts = path.split("/")
        if len(parts) < 5 or parts[1] != "v2":
            return self.error(404, "NAME_UNKNOWN", "no such route")
        repo, kind, ref = parts[2], parts[3], "/".join(parts[4:])
        return self.behaviour(repo, kind, ref, query)

    def token(self, query: str) -> None:
        if self.headers.get("Authorization") != "Basic " + base64.b64encode(
                f"{USER}:{PASSWORD}".encode()).decode():
            return self.error(401, "UNAUTHORIZED", "bad credentials")
        with lock:
            tokens["issued"] += 1
            number = tokens["issued"]
        body = json.dumps({"token": f"t{number}", "expires_in": 300}).encode()
        self.answer(200, body, {"Content-Type": "application/json"})

    def upload(self, ref: str, body: bytes, query: str) -> None:
        """POST opens a session; PATCH appends at the offset Content-Range names; GET tells
        the offset; PUT ?digest= checks and commits (the blob then answers HEAD)."""
        if self.command == "HEAD" and ref in uploads["blobs"]:
            return self.answer(200, length=len(uploads["blobs"][ref]))
        if self.command == "POST":
            with lock:
                uploads["next"] += 1
                name = f"u{uploads['next']}"
                uploads[name] = b""
            return self.answer(202, headers={"Location": f"/v2/uploads/blobs/uploads/{name}",
                                             "Range": "0-0"})
        session = ref.rsplit("/", 1)[-1]
        if not ref.startswith("uploads/") or session not in uploads:
            return self.error(404, "BLOB_UPLOAD_UNKNOWN" if ref.startswith("uploads/")
                              else "BLOB_UNKNOWN", "unknown")
        held = uploads[session]
        if self.command == "PATCH":
            start = int(self.headers.get("Content-Range", "0-0").split("-")[0])
            if start != len(held):
                return self.error(416, "RANGE_INVALID", f"offset is {len(held)}")
            uploads[session] = held = held + body
        elif self.command == "PUT":
            digest = query.partition("digest=")[2].replace("%3A", ":")
            held += body
            if "sha256:" + hashlib.sha256(held).hexdigest() != digest:
                return self.error(400, "DIGEST_INVALID", "digest mismatch")
            uploads["blobs"][digest] = held
            return self.answer(201, headers={"Docker-Content-Digest": digest})
        elif self.command == "DELETE":
            del uploads[session]
            return self.answer(204)
        end = max(len(held) - 1, 0)
        self.answer(202 if self.command == "PATCH" else 204,
                    headers={"Location": f"/v2/uploads/blobs/uploads/{session}",
                             "Range": f"0-{end}"})

    def behaviour(self, repo: str, kind: str, ref: str, query: str) -> None:
        n = count(f"{repo} {kind}")
        if repo in ("cutlayer", "badlayer", "looplayer", "good") and kind == "blobs" and \
                ref == CONFIG_DIGEST:
            return self.answer(200, CONFIG, {"Content-Type": "application/octet-stream"})
        if repo in ("cutlayer", "badlayer", "looplayer") and kind == "manifests":
            return self.manifest()  # a good manifest and config whose layer is cut / wrong /
            # behind a redirect loop
        if repo == "cutlayer":
            repo = "truncated"
        elif repo == "badlayer":
            repo = "wrongdigest"
        elif repo == "looplayer":
            repo = "loop"
        if repo == "good":
            if kind == "manifests":
                return self.manifest()
            if kind == "blobs" and ref == LAYER_DIGEST:
                return self.answer(200, LAYER, {"Content-Type": "application/octet-stream"})
        elif repo == "garbage":  # a manifest that is not JSON
            return self.manifest(b"<html>not a manifest</html>", "sha256:" + hashlib.sha256(
                b"<html>not a manifest</html>").hexdigest())
        elif repo == "schema1":  # a manifest type nobody asked for
            body = b'{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}'
            return self.manifest(body, "sha256:" + hashlib.sha256(body).hexdigest(),
                                 "application/vnd.docker.distribution.manifest.v1+prettyjws")
        elif repo == "wrongdigest":  # the bytes are not those of the digest announced/asked
            if kind == "manifests":
                tampered = MANIFEST.replace(b"amd64", b"arm64") + b" "
                return self.manifest(tampered, MANIFEST_DIGEST)
            return self.answer(200, LAYER[:-1] + b"X", {"Content-Type": "application/octet-stream"})
        elif repo == "wrongbig":  # a multi-chunk blob whose last byte is wrong
            return self.answer(200, BIG_LAYER[:-1] + b"X",
                               {"Content-Type": "application/octet-stream"})
        elif repo == "truncated":  # announces the whole blob, sends half, hangs up
            self.send_response(200)
            self.send_header("Content-Length", str(len(LAYER)))
            self.end_headers()
            self.wfile.write(LAYER[: len(LAYER) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        elif repo == "overlong":  # a manifest larger than any bound
            return self.answer(200, b"{" + b" " * (8 << 20) + b"}", {"Content-Type": OCI_MANIFEST})
        elif repo == "loop":  # a blob that redirects round in a circle
            return self.answer(307, headers={"Location": "/redirect/a"})
        elif repo == "chain":  # a blob behind an endless chain of distinct redirects
            return self.answer(307, headers={"Location": "/redirect/chain/1"})
        elif repo == "presigned":  # behind Basic auth, redirected to another origin (storage)
            if not self.headers.get("Authorization", "").startswith("Basic "):
                return self.error(401, "UNAUTHORIZED", "credentials required",
                                  {"WWW-Authenticate": 'Basic realm="misbehaving"'})
            host = self.headers.get("Host", "").replace("127.0.0.1", "localhost")
            return self.answer(307, headers={"Location": f"http://{host}/storage/{ref}?X-Sig=abc"})
        elif repo == "stalling":  # half the blob, then silence
            self.send_response(200)
            self.send_header("Content-Length", str(len(LAYER)))
            self.end_headers()
            self.wfile.write(LAYER[: len(LAYER) // 2])
            self.wfile.flush()
            time.sleep(3600)
            return
        elif repo == "stallingbig":  # most of a multi-chunk blob, then silence
            self.send_response(200)
            self.send_header("Content-Length", str(len(BIG_LAYER)))
            self.end_headers()
            self.wfile.write(BIG_LAYER[: len(BIG_LAYER) // 2])
            self.wfile.flush()
            time.sleep(3600)
            return
        elif repo == "silent":  # never answers
            time.sleep(3600)
            return
        elif repo == "throttled":  # 429 with Retry-After twice, then the manifest
            if n <= 2:
                return self.error(429, "TOOMANYREQUESTS", "slow down", {"Retry-After": "7"})
            return self.manifest()
        elif repo == "unavailable":  # 503 with an HTTP-date Retry-After, for ever
            return self.error(503, "UNAVAILABLE", "down for maintenance",
                              {"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})
        elif repo == "flaky":  # 502 without Retry-After once, then the manifest
            if n <= 1:
                return self.error(502, "BAD_GATEWAY", "upstream hiccup")
            return self.manifest()
        elif repo == "private":  # token auth
            if self.bearer_ok(repo):
                return self.manifest()
            return
        elif repo == "uploads":  # token auth, blob uploads kept in memory
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if not self.bearer_ok(repo):
                return
            return self.upload(ref, body, query)
        elif repo == "denied":  # every token refused
            host = self.headers.get("Host")
            return self.error(401, "UNAUTHORIZED", "authentication required", {
                "WWW-Authenticate": f'Bearer realm="http://{host}/token",service="misbehaving"'})
        elif repo == "pages":  # a tag list whose Link leads back to itself
            return self.answer(200, json.dumps({"name": repo, "tags": ["a"]}).encode(), {
                "Content-Type": "application/json",
                "Link": f'</v2/{repo}/tags/list?n=1>; rel="next"'})
        elif repo == "elsewhere":  # a tag list whose Link leaves for another host
            return self.answer(200, json.dumps({"name": repo, "tags": ["a"]}).encode(), {
                "Content-Type": "application/json",
                "Link": '<http://evil.invalid/v2/x/tags/list?last=a>; rel="next"'})
        self.error(404, "MANIFEST_UNKNOWN" if kind == "manifests" else "BLOB_UNKNOWN", "unknown")


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
