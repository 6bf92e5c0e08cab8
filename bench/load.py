"""Load generators: wrk (GET), ab (HEAD), curl (blob GET), and Python clients for uploads,
paged walks and image pulls. Every run is bounded in time.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.content import ACCEPT, start_upload, upload_blob, with_digest
from bench.rawhttp import Connection, HTTPError, path_of


def percentile(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[k]


# -- wrk and ab -------------------------------------------------------------------------------
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value.strip())
    if not match:
        raise ValueError(f"cannot read latency {value!r}")
    return float(match[1]) * _UNITS[match[2]]


def wrk(url: str, headers: dict[str, str], connections: int, seconds: float,
        threads: int = 2) -> dict[str, Any]:
    """GET `url` for `seconds` on `connections` connections: req/s, p99 (ms), errors."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
           "--latency", "--timeout", "10s"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True,
                         timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M)[1])  # type: ignore[index]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M)[1])  # type: ignore[index]
    requests = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m[1])
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(x) for x in m.groups())
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "requests": requests, "errors": errors,
            "tool": "wrk"}


def ab_head(url: str, headers: dict[str, str], connections: int,
            seconds: float) -> dict[str, Any]:
    """`ab -k -i -c C -t N`: HEAD with keep-alive; req/s, p99 (ms), errors.

    wrk cannot send HEAD: with a Lua script setting `wrk.method = "HEAD"` it sends them but
    waits for the body the Content-Length announces, and completes no request; h2load
    (nghttp2 1.52, `--h1 -H ':method: HEAD'`) does the same (both tried 2026-12-07: 0
    requests in 5 s against the bare handler). ab, one C thread, spends about as little CPU
    per request as wrk: 10–12 µs of user and system time a request against the bare handler,
    wrk 10.7–11.3 µs, and it is not the bound there (ab HEAD 35–42k req/s, wrk GET 26–38k
    req/s in the same minutes, on a quiet machine). hey, the Go tool used before, spent about
    15 times more, and on two cores shared with the server it capped the figure it measured.
    ab prints its percentiles in whole milliseconds."""
    limit = max(1, round(seconds))
    # -n bounds the run too, and ab allocates a record per request up front: room for 50k/s
    cmd = ["ab", "-k", "-i", "-q", "-c", str(connections), "-t", str(limit),
           "-n", str(limit * 50_000), "-s", "10"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True,
                         timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests per second:\s+([\d.]+)", out)[1])  # type: ignore[index]
    p99 = float(re.search(r"^\s+99%\s+(\d+)", out, re.M)[1])  # type: ignore[index]
    p50 = float(re.search(r"^\s+50%\s+(\d+)", out, re.M)[1])  # type: ignore[index]
    requests = int(re.search(r"Complete requests:\s+(\d+)", out)[1])  # type: ignore[index]
    errors = int(re.search(r"Failed requests:\s+(\d+)", out)[1])  # type: ignore[index]
    if m := re.search(r"Non-2xx responses:\s+(\d+)", out):
        errors += int(m[1])
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "requests": requests, "errors": errors,
            "tool": "ab"}


# -- blob GET ---------------------------------------------------------------------------------
def curl_blobs(url: str, headers: dict[str, str], streams: int, per_stream: int,
               expect_size: int, timeout: float) -> dict[str, Any]:
    """`streams` curl processes at once, each fetching the blob `per_stream` times on one
    connection into /dev/null: total GB/s (10^9 bytes) by the wall clock."""
    cmd = ["curl", "-s", "--max-time", str(int(timeout)), "-w", "%{http_code} %{size_download}\n"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    for _ in range(per_stream):
        cmd += ["-o", "/dev/null", url]
    started = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(streams)]
    outs = [p.communicate(timeout=timeout + 30)[0] for p in procs]
    wall = time.perf_counter() - started
    total = errors = 0
    for out in outs:
        for line in out.strip().splitlines():
            code, size = line.split()
            if code != "200" or int(size) != expect_size:
                errors += 1
            total += int(size)
    return {"gbps": total / wall / 1e9, "seconds": wall, "bytes": total, "errors": errors}


# -- uploads ----------------------------------------------------------------------------------
async def chunked_upload(host: str, port: int, repo: str, data: bytes, chunk: int,
                         auth: dict[str, str]) -> dict[str, Any]:
    """POST, PATCH×N with Content-Range, PUT ?digest=: seconds and MB/s (10^6 bytes/s)."""
    import hashlib

    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    view = memoryview(data)
    conn = Connection(host, port)
    try:
        started = time.perf_counter()
        location = await start_upload(conn, repo, auth)
        patches = 0
        for offset in range(0, len(data), chunk):
            piece = view[offset:offset + chunk]
            resp = await conn.request("PATCH", path_of(location), {
                **auth, "content-type": "application/octet-stream",
                "content-range": f"{offset}-{offset + len(piece) - 1}"}, piece)
            if resp.status != 202:
                raise HTTPError(f"PATCH at {offset}: HTTP {resp.status} {resp.body[:200]!r}")
            location = resp.headers["location"]
            patches += 1
        resp = await conn.request("PUT", with_digest(location, digest), auth)
        if resp.status != 201:
            raise HTTPError(f"PUT: HTTP {resp.status} {resp.body[:200]!r}")
        seconds = time.perf_counter() - started
    finally:
        await conn.close()
    return {"seconds": seconds, "mbps": len(data) / seconds / 1e6, "patches": patches}


async def monolithic_upload(host: str, port: int, repo: str, data: bytes,
                            auth: dict[str, str]) -> dict[str, Any]:
    """POST, then one PUT ?digest= with the whole blob (the spec's monolithic upload, which
    Distribution and Moorage both take): seconds and MB/s (10^6 bytes/s)."""
    import hashlib

    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    conn = Connection(host, port)
    try:
        started = time.perf_counter()
        await upload_blob(conn, repo, digest, memoryview(data), auth)
        seconds = time.perf_counter() - started
    finally:
        await conn.close()
    return {"seconds": seconds, "mbps": len(data) / seconds / 1e6}


def hash_and_write(folder: str, mib: int, chunk_mib: float, timeout: float) -> dict[str, Any]:
    """The upload rows' limit (bench/limits.py hashwrite), in its own process."""
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, str(root / "bench" / "limits.py"), "hashwrite", "--dir", folder,
         "--mib", str(mib), "--chunk-mib", str(chunk_mib)], capture_output=True, text=True,
        timeout=timeout, env={**os.environ, "PYTHONPATH": f"{root}:{root / 'src'}"},
        # its own session, as the servers have (bench/servers.py): with the kernel's
        # scheduler autogroups, a process in the bench's session shares one CPU share with
        # the bench and its clients, and on a loaded machine measured 20-40 MB/s while the
        # registries, each in its own session, took 40-110 MB/s
        start_new_session=True)
    if out.returncode != 0:
        raise RuntimeError(f"limits.py hashwrite failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def skopeo_to_dir(layout: str, tag: str, dest: str, timeout: float) -> dict[str, Any]:
    """skopeo copy of the same layout to a local `dir:` (no registry): the client's own time."""
    cmd = ["skopeo", "copy", "--quiet", f"oci:{layout}:{tag}", f"dir:{dest}"]
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"skopeo copy to dir:{dest} failed: {out.stderr[-2000:]}")
    return {"seconds": seconds}


def skopeo_push(layout: str, tag: str, dest: str, creds: str | None,
                timeout: float) -> dict[str, Any]:
    cmd = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
    if creds:
        cmd += ["--dest-creds", creds]
    cmd += [f"oci:{layout}:{tag}", f"docker://{dest}"]
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"skopeo copy to {dest} failed: {out.stderr[-2000:]}")
    return {"seconds": seconds}


# -- paged walks ------------------------------------------------------------------------------
async def walks(host: str, port: int, first: str, key: str, auth: dict[str, str],
                seconds: float, expect: int) -> dict[str, Any]:
    """Walk a paged list (following Link) again and again for `seconds`, on one connection."""
    from bench.content import walk

    conn = Connection(host, port)
    times: list[float] = []
    items = pages = errors = 0
    deadline = time.perf_counter() + seconds
    try:
        while True:
            started = time.perf_counter()
            try:
                items, pages = await walk(conn, first, key, auth)
                if items != expect:
                    errors += 1
            except HTTPError:
                errors += 1
            times.append(time.perf_counter() - started)
            if time.perf_counter() >= deadline:
                break
    finally:
        await conn.close()
    total = sum(times)
    return {"walks_per_s": len(times) / total, "walk_ms": percentile(times, 50) * 1e3,
            "walks": len(times), "items": items, "pages": pages, "errors": errors}


# -- pulls ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PullTarget:
    repo: str
    tag: str


async def pull_load(host: str, port: int | list[int], images: list[PullTarget],
                    tokens: dict[str, str] | None, clients: int, seconds: float,
                    rate: float | None = None,
                    follow_redirects: bool = False) -> dict[str, Any]:
    """Pull images (manifest by tag, then its config and its layer) for `seconds`.

    Closed loop when `rate` is None: `clients` clients pull back to back. With a `rate`,
    pulls are scheduled every 1/rate seconds and the next free client takes each one; a pull's
    latency then counts from its scheduled start, so a stall shows up in the p99.

    Several ports (replicas of one registry): pull n goes to ports[n % len(ports)], as a
    round-robin load balancer would send it; each client keeps one connection per port.
    `follow_redirects`: a blob answered with a redirect (S3 presigned URL) is fetched from
    where it points, without the registry's Authorization, as a client does; that fetch is
    part of the pull.
    """
    ports = port if isinstance(port, list) else [port]
    latencies: list[float] = []
    errors: list[str] = []
    counter = 0
    cpu_started = time.process_time()  # this process runs only the client meanwhile
    started = time.perf_counter()
    deadline = started + seconds

    def headers_for(repo: str) -> dict[str, str]:
        return {"authorization": f"Bearer {tokens[repo]}"} if tokens else {}

    async def pull(conns: dict[tuple[str, int], Connection], conn: Connection,
                   image: PullTarget) -> None:
        auth = headers_for(image.repo)
        resp = await conn.request("GET", f"/v2/{image.repo}/manifests/{image.tag}",
                                  {**auth, "accept": ACCEPT})
        if resp.status != 200:
            raise HTTPError(f"manifest {image.repo}:{image.tag}: HTTP {resp.status}")
        manifest = json.loads(resp.body)
        for desc in (manifest["config"], manifest["layers"][0]):
            resp = await conn.request("GET", f"/v2/{image.repo}/blobs/{desc['digest']}", auth,
                                      keep_body=False)
            if follow_redirects and resp.status in (302, 307) and resp.header("location"):
                location = urlsplit(resp.header("location") or "")
                if location.hostname != "127.0.0.1" or location.port is None:
                    raise HTTPError(f"blob {desc['digest'][:19]}: redirect off loopback")
                key = (location.hostname, location.port)
                if key not in conns:
                    conns[key] = Connection(*key)
                resp = await conns[key].request("GET", path_of(resp.header("location") or ""),
                                                {}, keep_body=False)
            if resp.status != 200 or resp.length != desc["size"]:
                raise HTTPError(f"blob {desc['digest'][:19]}: HTTP {resp.status}, "
                                f"{resp.length} bytes")

    async def client() -> None:
        nonlocal counter
        conns = {(host, p): Connection(host, p) for p in ports}
        try:
            while True:
                n = counter
                counter += 1
                if rate is not None:
                    due = started + n / rate
                    if due >= deadline or time.perf_counter() >= deadline:
                        return  # behind schedule at the end: the rest count as not started
                    delay = due - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    begin = due
                else:
                    begin = time.perf_counter()
                    if begin >= deadline:
                        return
                conn = conns[(host, ports[n % len(ports)])]
                try:
                    await pull(conns, conn, images[n % len(images)])
                    latencies.append(time.perf_counter() - begin)
                except (HTTPError, OSError, asyncio.IncompleteReadError, KeyError,
                        ValueError) as exc:
                    errors.append(str(exc)[:200])
                    for each in conns.values():
                        await each.close()
        finally:
            for each in conns.values():
                await each.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - started
    done = len(latencies)
    extra = {}
    if rate is not None:
        extra["not_started"] = max(0, math.ceil(seconds * rate) - done - len(errors))
    extra["client_cpu"] = (time.process_time() - cpu_started) / wall  # cores the client used
    return {"pulls_per_s": done / wall, "pulls": done, "errors": len(errors), **extra,
            "error_samples": sorted(set(errors))[:5], "seconds": wall,
            "p50_ms": percentile(latencies, 50) * 1e3, "p99_ms": percentile(latencies, 99) * 1e3,
            "target_rate": rate, "clients": clients}
