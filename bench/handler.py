"""CPU per manifest GET and HEAD inside the app, with no server and no network.

Builds a Moorage in a temporary folder (advanced edition: token auth and the audit log on),
pushes one small image to a public namespace through the ASGI app, takes a pull token, then calls the app the way
granian does, one request after another on one event loop, and reads CPU time around the
loop: this thread's (`time.thread_time`) and the whole process's (`time.process_time`: the
auth threads a request may hop to, the pull clock's writes). The figure is the app's own Python cost per request:
what the profiles say is most of Moorage's CPU per manifest GET, measured without wrk,
granian or the other helpers' load sharing the cores (CPU time, not wall time, so a busy
machine slows it far less than it slows a wrk run). The audit flusher thread is measured
apart: the entries the loop produced, written the way the recorder writes them.

    PYTHONPATH=src python bench/handler.py [--requests N] [--rounds N] [--quick]

Prints one line for people, and the raw figures as JSON last on stderr (bench/smoke.py).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

ADMIN = "admin"
PASSWORD = "bench-handler-password-1"


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]],
           query: bytes = b"") -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": query, "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 5000)}


async def _call(app: Any, scope: dict[str, Any], body: bytes = b"") -> tuple[int, bytes,
                                                                            dict[bytes, bytes]]:
    sent: list[dict[str, Any]] = []
    given = False

    async def receive() -> dict[str, Any]:
        nonlocal given
        if given:
            await asyncio.sleep(3600)
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    return (start["status"], b"".join(m.get("body", b"") for m in sent[1:]),
            dict(start.get("headers", [])))


def _image() -> tuple[list[bytes], bytes]:
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    layer = b"bench layer " * 100

    def desc(media: str, data: bytes) -> dict[str, Any]:
        return {"mediaType": media, "size": len(data),
                "digest": "sha256:" + hashlib.sha256(data).hexdigest()}
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", config),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", layer)]}).encode()
    return [config, layer], manifest


async def _prepare(app: Any) -> str:
    """Push the image, return a bearer token that grants pulls of public/app."""
    basic = b"Basic " + base64.b64encode(f"{ADMIN}:{PASSWORD}".encode())
    auth = [(b"host", b"127.0.0.1:5000"), (b"authorization", basic)]
    status, body, _ = await _call(app, _scope(
        "POST", "/api/v1/namespaces", [*auth, (b"content-type", b"application/json")]),
        b'{"name": "public", "visibility": "public"}')
    assert status == 201, (status, body)
    blobs, manifest = _image()
    for blob in blobs:
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        status, _, _ = await _call(app, _scope("POST", "/v2/public/app/blobs/uploads/",
                                               [*auth, (b"content-length", str(len(blob)).encode())],
                                               f"digest={digest}".encode()), blob)
        assert status == 201, status
    status, _, _ = await _call(app, _scope(
        "PUT", "/v2/public/app/manifests/latest",
        [*auth, (b"content-type", b"application/vnd.oci.image.manifest.v1+json")]), manifest)
    assert status == 201, status
    status, body, _ = await _call(app, _scope(
        "GET", "/auth/token", auth,
        b"service=moorage&scope=repository:public/app:pull"))
    assert status == 200, (status, body)
    return str(json.loads(body)["token"])


async def _measure(app: Any, method: str, token: str | None, n: int) -> tuple[float, float]:
    """(µs of this thread's CPU, µs of the whole process's CPU) per request."""
    headers = [(b"host", b"127.0.0.1:5000"), (b"user-agent", b"wrk"),
               (b"accept", b"application/vnd.oci.image.manifest.v1+json")]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    path = "/v2/public/app/manifests/latest"

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None
    # warm-up: caches filled, first-call costs paid
    for _ in range(200):
        await app(_scope(method, path, list(headers)), receive, send)
    status, _, _ = await _call(app, _scope(method, path, list(headers)))
    assert status == 200, status
    started, started_all = time.thread_time(), time.process_time()
    for _ in range(n):
        await app(_scope(method, path, list(headers)), receive, send)
    return ((time.thread_time() - started) / n * 1e6,
            (time.process_time() - started_all) / n * 1e6)


def _flusher_cost(recorder: Any) -> tuple[int, float, dict[str, float]]:
    """Write what the GETs left in the audit buffer, timed on this thread; and, on a copy of
    the same events, the writer's first two steps alone (making the entries, chaining them),
    so that the rest of the flush is the database's part."""
    from moorage.audit.chain import GENESIS, chain, entry_from_event
    with recorder._lock:
        events = list(recorder._buffer)
    steps: dict[str, float] = {}
    if events:
        started = time.thread_time()
        entries = [entry_from_event(e) for e in events]
        steps["audit_build_us"] = (time.thread_time() - started) / len(events) * 1e6
        started = time.thread_time()
        chain(0, GENESIS, entries)
        steps["audit_chain_us"] = (time.thread_time() - started) / len(events) * 1e6
    started = time.thread_time()
    recorder.flush()
    return len(events), (time.thread_time() - started) * 1e6, steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=20_000, help="requests per measure [20000]")
    p.add_argument("--rounds", type=int, default=3, help="measures of each kind [3]")
    p.add_argument("--quick", action="store_true", help="a few hundred requests, one round")
    p.add_argument("--only", choices=("get", "head", "anon"),
                   help="measure one kind only (for a profile of it: bench/profile.py)")
    args = p.parse_args(argv)
    if args.quick:
        args.requests, args.rounds = 300, 1
    with tempfile.TemporaryDirectory(prefix="moorage-handler-") as work:
        os.environ.update({"MOORAGE_DATA_DIR": work, "MOORAGE_ADMIN_PASSWORD": PASSWORD,
                           "MOORAGE_LOG_LEVEL": "warning"})
        from moorage.app import MoorageApp, prepare_instance
        from moorage.settings import load_settings
        settings = load_settings()
        prepare_instance(settings, PASSWORD)
        app = MoorageApp(settings)
        recorder = app.instance.audit
        loop = asyncio.new_event_loop()
        token = loop.run_until_complete(_prepare(app))
        figures: dict[str, list[float]] = {}

        def note(name: str, measured: tuple[float, float]) -> None:
            figures.setdefault(f"{name}_us", []).append(measured[0])
            figures.setdefault(f"{name}_process_us", []).append(measured[1])
        for _ in range(args.rounds):
            if recorder is not None:
                recorder.flush()
            if args.only in (None, "get"):
                note("get", loop.run_until_complete(_measure(app, "GET", token, args.requests)))
            if recorder is not None:
                waiting, cpu, steps = _flusher_cost(recorder)
                if waiting:
                    figures.setdefault("audit_us", []).append(cpu / waiting)
                    for name, value in steps.items():
                        figures.setdefault(name, []).append(value)
            if args.only in (None, "head"):
                note("head", loop.run_until_complete(_measure(app, "HEAD", token, args.requests)))
            if args.only in (None, "anon"):
                note("anon_get", loop.run_until_complete(_measure(app, "GET", None,
                                                                  args.requests)))
        loop.close()
    result = {k: round(statistics.median(v), 1) for k, v in figures.items() if v}
    result["requests"] = args.requests
    result["rounds"] = args.rounds
    print(f"CPU per request inside the app ({args.rounds} x {args.requests}, median), "
          f"request thread / whole process: "
          f"GET with a token {result.get('get_us')} / {result.get('get_process_us')} µs, "
          f"HEAD {result.get('head_us')} / {result.get('head_process_us')} µs, "
          f"anonymous GET {result.get('anon_get_us')} / {result.get('anon_get_process_us')} µs; "
          f"audit writer {result.get('audit_us', '-')} µs per entry (making it "
          f"{result.get('audit_build_us', '-')}, chaining it {result.get('audit_chain_us', '-')})")
    print(json.dumps(result), file=sys.stderr)  # the raw figures, last on stderr
    return 0


if __name__ == "__main__":
    sys.exit(main())
