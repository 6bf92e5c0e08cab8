"""A small Harbor scanner adapter (pluggable scanner API, v1.1 report), run by tests as a
separate process on loopback: `python -m tests.support.harbor_adapter --port P --db DB.json
--record DIR [--mode MODE] [--api-key KEY]`.

It does what a real adapter does, with its own code and nothing of Moorage's: answers
`/api/v1/metadata`; accepts `POST /api/v1/scan` with 202 and then, in a thread, pulls the
image's manifest and layers from the registry named in the request *with the Authorization
header it was given*, reads the dpkg and apk databases out of the layers, and matches their
packages against its "vulnerability database" (a JSON file the test writes: a list of
{package, version, id, fix_version, severity, description, links, score_v3, vector_v3});
answers the report with 302 + Refresh-After until the scan is done and at least once, then
200 with the v1.1 report.

Everything it received and every registry request it made is written to the record folder
(`requests.jsonl`, `pulls.jsonl`), so tests can check what credential it got and what it
could do with it.

Modes: `normal`; `never` (the report is never ready); `malformed` (a report that is not one);
`oversized` (a report of ~3 MiB); `wrong-types` (metadata offering only the v1.0 report);
`not-adapter` (metadata that is not an adapter's); `hang` (metadata answered after 2 min).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import tarfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

REPORT_TYPE = "application/vnd.security.vulnerability.report; version=1.1"
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json")
DB_PATHS = ("var/lib/dpkg/status", "lib/apk/db/installed")


class State:
    def __init__(self, args: argparse.Namespace) -> None:
        self.mode: str = args.mode
        self.api_key: str = args.api_key
        self.db: list[dict[str, Any]] = json.loads(Path(args.db).read_text()) if args.db else []
        self.record = Path(args.record)
        self.record.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.jobs: dict[str, dict[str, Any]] = {}

    def log(self, name: str, entry: dict[str, Any]) -> None:
        with self.lock, open(self.record / name, "a") as f:
            f.write(json.dumps(entry) + "\n")


def registry_get(url: str, authorization: str, accept: str = "") -> tuple[int, bytes]:
    headers = {"Authorization": authorization} if authorization else {}
    if accept:
        headers["Accept"] = accept
    try:
        with urlopen(Request(url, headers=headers), timeout=60) as response:
            return response.status, response.read()
    except HTTPError as exc:
        return exc.code, exc.read()


def parse_dpkg(text: str) -> list[tuple[str, str]]:
    found = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line and not line[0].isspace() and ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if "Package" in fields and "installed" in fields.get("Status", "installed"):
            found.append((fields["Package"], fields.get("Version", "")))
    return found


def parse_apk(text: str) -> list[tuple[str, str]]:
    found = []
    for stanza in text.split("\n\n"):
        fields = dict(line.split(":", 1) for line in stanza.splitlines() if line[1:2] == ":")
        if "P" in fields:
            found.append((fields["P"], fields.get("V", "")))
    return found


def packages_of_layer(blob: bytes) -> dict[str, list[tuple[str, str]]]:
    if blob[:2] == b"\x1f\x8b":
        blob = gzip.decompress(blob)
    found = {}
    tar = tarfile.open(fileobj=io.BytesIO(blob), mode="r|")
    try:
        for member in tar:
            name = member.name.lstrip("./")
            if name in DB_PATHS and member.isfile():
                data = tar.extractfile(member)
                text = data.read().decode(errors="replace") if data else ""
                found[name] = parse_dpkg(text) if name.startswith("var") else parse_apk(text)
    except tarfile.ReadError:
        pass  # a layer without the tar end-of-archive blocks: what was read counts
    return found


def scan(state: State, job_id: str, request: dict[str, Any]) -> None:
    registry = request["registry"]["url"].rstrip("/")
    authorization = request["registry"].get("authorization", "")
    repo, digest = request["artifact"]["repository"], request["artifact"]["digest"]
    job = state.jobs[job_id]
    try:
        url = f"{registry}/v2/{repo}/manifests/{digest}"
        status, body = registry_get(url, authorization, ", ".join(MANIFEST_TYPES))
        state.log("pulls.jsonl", {"url": url, "status": status})
        if status != 200:
            raise RuntimeError(f"manifest: HTTP {status}")
        databases: dict[str, list[tuple[str, str]]] = {}
        for layer in json.loads(body)["layers"]:
            url = f"{registry}/v2/{repo}/blobs/{layer['digest']}"
            status, blob = registry_get(url, authorization)
            state.log("pulls.jsonl", {"url": url, "status": status})
            if status != 200:
                raise RuntimeError(f"layer: HTTP {status}")
            databases.update(packages_of_layer(blob))  # upper layers win
        installed = {p for packages in databases.values() for p in packages}
        vulns = [{"id": e["id"], "package": e["package"], "version": e["version"],
                  "fix_version": e.get("fix_version", ""), "severity": e["severity"],
                  "description": e.get("description", ""), "links": e.get("links", []),
                  "preferred_cvss": {k: e[k] for k in ("score_v3", "vector_v3") if k in e},
                  "cwe_ids": e.get("cwe_ids", []), "vendor_attributes": {}}
                 for e in state.db if (e["package"], e["version"]) in installed]
        job["report"] = {"generated_at": "2026-12-07T00:00:00Z",
                         "artifact": request["artifact"],
                         "scanner": {"name": "Tiny", "vendor": "Tests", "version": "0.1"},
                         "severity": "High", "vulnerabilities": vulns}
    except Exception as exc:  # noqa: BLE001 - reported as the spec's 500
        job["error"] = str(exc)
    job["done"] = True


class Handler(BaseHTTPRequestHandler):
    state: State

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def answer(self, status: int, body: Any = None, content_type: str = "application/json",
               headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else (body if isinstance(body, bytes)
                                         else json.dumps(body).encode())
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def authorized(self) -> bool:
        if self.state.api_key and self.headers.get("X-ScannerAdapter-API-Key") != \
                self.state.api_key:
            self.answer(401, {"error": {"message": "API key required"}})
            return False
        return True

    def do_GET(self) -> None:
        state = self.state
        if self.path == "/api/v1/metadata":
            if not self.authorized():
                return
            if state.mode == "hang":
                time.sleep(120)
            if state.mode == "not-adapter":
                self.answer(200, {"hello": "world"})
                return
            produces = (["application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0"]
                        if state.mode == "wrong-types" else [REPORT_TYPE])
            self.answer(200, {"scanner": {"name": "Tiny", "vendor": "Tests", "version": "0.1"},
                              "capabilities": [{"type": "vulnerability",
                                                "consumes_mime_types": list(MANIFEST_TYPES),
                                                "produces_mime_types": produces}],
                              "properties": {"harbor.scanner-adapter/scanner-type":
                                             "os-package-vulnerability"}},
                        "application/vnd.scanner.adapter.metadata+json; version=1.0")
            return
        parts = self.path.split("/")
        if len(parts) == 6 and parts[1:4] == ["api", "v1", "scan"] and parts[5] == "report":
            if not self.authorized():
                return
            state.log("requests.jsonl", {"report": parts[4], "accept": self.headers.get("Accept")})
            job = state.jobs.get(parts[4])
            if job is None:
                self.answer(404, {"error": {"message": "no such scan"}})
            elif state.mode == "never" or not job["done"] or not job["polled"]:
                job["polled"] = True
                self.answer(302, None, headers={"Refresh-After": "1"})
            elif state.mode == "malformed":
                self.answer(200, b'{"vulnerabilities": "none of them"}', REPORT_TYPE)
            elif state.mode == "oversized":
                item = {"id": "CVE-0000-0000", "package": "x" * 200, "version": "1"}
                self.answer(200, {"vulnerabilities": [item] * 15000}, REPORT_TYPE)
            elif "error" in job:
                self.answer(500, {"error": {"message": job["error"]}})
            else:
                self.answer(200, job["report"], REPORT_TYPE)
            return
        self.answer(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        if self.path != "/api/v1/scan":
            self.answer(404, {"error": {"message": "not found"}})
            return
        if not self.authorized():
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > 1 << 20:
            self.answer(400, {"error": {"message": "too large"}})
            return
        try:
            request = json.loads(self.rfile.read(length))
            request["registry"]["url"], request["artifact"]["digest"]  # noqa: B018
        except (ValueError, KeyError, TypeError):
            self.answer(400, {"error": {"message": "not a scan request"}})
            return
        job_id = uuid.uuid4().hex
        self.state.jobs[job_id] = {"done": False, "polled": False}
        self.state.log("requests.jsonl", {"scan": job_id, "content_type":
                                          self.headers.get("Content-Type"), "request": request})
        threading.Thread(target=scan, args=(self.state, job_id, request), daemon=True).start()
        self.answer(202, {"id": job_id},
                    "application/vnd.scanner.adapter.scan.response+json; version=1.0")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", default="")
    parser.add_argument("--record", required=True)
    parser.add_argument("--mode", default="normal")
    parser.add_argument("--api-key", default="")
    args = parser.parse_args()
    Handler.state = State(args)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
