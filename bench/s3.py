"""The S3 rows: blob push and pull through Moorage on SeaweedFS beside Distribution v3's S3
driver on the same SeaweedFS, and SeaweedFS's own rate. `make bench` runs it after run.py.

    PYTHONPATH=src python bench/s3.py [--rounds 3] [--size-mib 256] [--chunk-mib 5] [--quick]
                                      [--profile push,chunked,pull]

One `weed mini` (tests/support/seaweed.py, loopback, free ports) and, on it, each in its own
bucket:
  * Moorage `stream`: `moorage serve --workers 2` (SQLite, token auth) with
    `storage_url=s3://...&redirect=false`, every blob byte through the registry;
  * Moorage `redirect`: the same with `redirect=true` (blob GETs answered with a 307 to a
    presigned URL; the client follows it like `curl -L`);
  * Distribution v3.1.1 with `storage.s3` (`regionendpoint`, `forcepathstyle`, `secure:
    false`) and `redirect: disable: true`, and v3 with its redirects on. Without a v3 binary
    (bench/servers.py find_v3) the v3 columns are left out and the table says so;
  * the limit: SeaweedFS itself with a plain client, curl PUT and GET of the same bytes on
    presigned URLs (boto3 signs them): no registry, no hashing, no SigV4 payload hash.

Rows (each round: every server in turn, the order rotating by round; medians of --rounds):
  * monolithic push: POST, then PUT with the whole `--size-mib` blob (new bytes each time);
  * chunked push: POST, PATCH×N of `--chunk-mib`, PUT ?digest= (the limit: the same PUT);
  * pull, 1 stream: curl -L of the blob pushed this round, 2 times back to back;
  * pull, 8 streams: 8 curls at once, each once.
Figures are MiB/s of blob bytes by the wall clock, and the CPU seconds the registry's
process tree and SeaweedFS spent per GiB moved (from /proc), which the machine's other load
disturbs less than the rates do. AWS_CA_BUNDLE (set on this machine) is removed from this
process's environment, so neither v3 nor Moorage sees it; everything is plain http on
127.0.0.1. `--profile` adds a py-spy profile of Moorage's workers during each named row
(bench/profile.py). Prints the table; asserts nothing. `BENCH_QUICK=1` (or --quick): one
round of an 8 MiB blob.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import load, profile  # noqa: E402
from bench.content import token, upload_blob  # noqa: E402
from bench.rawhttp import Connection  # noqa: E402
from bench.servers import (DistributionV3, Moorage, Server, cpu_seconds, find_v3,  # noqa: E402
                           process_tree, pss_kib)
from tests.support.seaweed import SeaweedS3  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
HANG = 900.0  # bounds a hang only
REPO = "bench/s3"

M_STREAM, M_REDIRECT = "moorage", "moorage-redirect"
M_BASE = "moorage-baseline"  # --baseline: the stream Moorage from another source tree
V3_STREAM, V3_REDIRECT = "v3", "v3-redirect"
LIMIT = "seaweedfs"

V3_S3_CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  s3:
    accesskey: {access_key}
    secretkey: {secret_key}
    region: {region}
    regionendpoint: {endpoint}
    forcepathstyle: true
    secure: false
    v4auth: true
    bucket: {bucket}
    rootdirectory: /v3
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  redirect:
    disable: {disable}
http:
  addr: {addr}
"""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class DistributionV3S3(DistributionV3):
    """Distribution v3.1.1 with its S3 driver on the bench's SeaweedFS."""

    seaweed: SeaweedS3 | None = None
    redirect: bool = False

    def command(self) -> tuple[list[str], dict[str, str]]:
        assert self.seaweed is not None
        s3 = self.seaweed
        config = self.work / f"{self.label}.yml"
        config.write_text(V3_S3_CONFIG.format(
            access_key=s3.access_key, secret_key=s3.secret_key, region=s3.region,
            endpoint=s3.endpoint, bucket=s3.bucket, addr=self.host,
            disable="false" if self.redirect else "true"))
        return [str(self.binary), "serve", str(config)], {"OTEL_TRACES_EXPORTER": "none"}



class Meter:
    """CPU of a server's process tree and of SeaweedFS across one measured run, and the
    server tree's peak PSS during it (sampled 4 times a second), so that each row shows
    what it needs rather than the whole run's peak."""

    def __init__(self, server: Server | None, seaweed: SeaweedS3) -> None:
        self.server_pids = process_tree(server.proc.pid) if server and server.proc else []
        assert seaweed.proc is not None
        self.seaweed_pids = process_tree(seaweed.proc.pid)
        self.peak_pss_kib = 0
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak_pss_kib = max(self.peak_pss_kib,
                                    sum(pss_kib(p) for p in self.server_pids))
            if self._done.wait(0.25):
                return

    def __enter__(self) -> "Meter":
        self.started = time.perf_counter()
        self.cpu0 = (cpu_seconds(self.server_pids), cpu_seconds(self.seaweed_pids))
        if self.server_pids:
            self._sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.started
        self.server_cpu = cpu_seconds(self.server_pids) - self.cpu0[0]
        self.seaweed_cpu = cpu_seconds(self.seaweed_pids) - self.cpu0[1]
        self._done.set()
        if self._sampler.is_alive():
            self._sampler.join()

    def result(self, moved: int, **extra: Any) -> dict[str, Any]:
        gib = moved / GiB
        return {"mib_s": moved / MiB / self.wall, "seconds": self.wall, "bytes": moved,
                "cpu_s_per_gib": self.server_cpu / gib, "seaweed_cpu_s_per_gib":
                self.seaweed_cpu / gib, "peak_pss_mib": round(self.peak_pss_kib / 1024, 1),
                **extra}


# -- clients --------------------------------------------------------------------------------
def curl_get(urls: list[str], headers: dict[str, str], expect_size: int,
             timeout: float) -> tuple[int, int]:
    """One curl per list entry, all at once; each follows redirects (-L) and fetches its URLs
    into /dev/null on one connection. (bytes received, errors). curl does not pass a custom
    Authorization header on to another host:port, so a presigned URL goes out unchanged."""
    procs = []
    for group in urls:
        cmd = ["curl", "-s", "-L", "--max-time", str(int(timeout)),
               "-w", "%{http_code} %{size_download}\n"]
        for k, v in headers.items():
            cmd += ["-H", f"{k}: {v}"]
        for url in group.split(" "):
            cmd += ["-o", "/dev/null", url]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
    total = errors = 0
    for p in procs:
        out = p.communicate(timeout=timeout + 30)[0]
        for line in out.strip().splitlines():
            code, size = line.split()
            if code != "200" or int(size) != expect_size:
                errors += 1
            total += int(size)
    return total, errors


def presigner(seaweed: SeaweedS3) -> Any:
    """A boto3 client that presigns with SigV4 (UNSIGNED-PAYLOAD: curl sends the bytes as
    they are, nothing hashes them on the client side)."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3", endpoint_url=seaweed.endpoint, region_name=seaweed.region,
        aws_access_key_id=seaweed.access_key, aws_secret_access_key=seaweed.secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))


def curl_put(url: str, path: Path, timeout: float) -> None:
    out = subprocess.run(["curl", "-s", "--max-time", str(int(timeout)), "-T", str(path),
                          "-o", "/dev/null",
                          "-w", "%{http_code}", url], capture_output=True, text=True,
                         timeout=timeout + 30)
    if out.returncode != 0 or out.stdout.strip() != "200":
        raise RuntimeError(f"PUT to SeaweedFS: curl {out.returncode} HTTP {out.stdout!r} "
                           f"{out.stderr[-300:]}")


async def push(server: Server, data: bytes, chunk: int | None, auth: dict[str, str]) -> str:
    """A blob of `data` pushed monolithically (chunk None) or in PATCHes of `chunk` bytes."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if chunk is not None:
        await load.chunked_upload("127.0.0.1", server.port, REPO, data, chunk, auth)
        return digest
    conn = Connection("127.0.0.1", server.port)
    try:
        await upload_blob(conn, REPO, digest, data, auth)
    finally:
        await conn.close()
    return digest


# -- the bench ------------------------------------------------------------------------------
ROWS = {
    "push": "monolithic push",
    "chunked": "chunked push",
    "pull_1": "pull, 1 stream",
    "pull_8": "pull, 8 streams",
}


class Bench:
    def __init__(self, o: argparse.Namespace, work: Path, seaweed: SeaweedS3,
                 v3_binary: Path | None) -> None:
        self.o, self.work, self.seaweed = o, work, seaweed
        self.servers: dict[str, Server] = {}
        for label, redirect in ((M_STREAM, False), (M_REDIRECT, True)):
            view = seaweed.view(f"bench-{label}")
            env = {**view.env(), "MOORAGE_STORAGE_URL": view.storage_url("registry", redirect),
                   "MOORAGE_SCAN_ON_PUSH": "false", "MOORAGE_SCAN_SYFT": "off"}
            self.servers[label] = Moorage(label, work / label, workers=o.workers, extra_env=env)
        if o.baseline:
            view = seaweed.view(f"bench-{M_BASE}")
            env = {**view.env(), "MOORAGE_STORAGE_URL": view.storage_url("registry", False),
                   "MOORAGE_SCAN_ON_PUSH": "false", "MOORAGE_SCAN_SYFT": "off",
                   "PYTHONPATH": str(Path(o.baseline).resolve())}
            self.servers[M_BASE] = Moorage(M_BASE, work / M_BASE, workers=o.workers,
                                           extra_env=env)
        if v3_binary is not None:
            for label, redirect in ((V3_STREAM, False), (V3_REDIRECT, True)):
                self.servers[label] = DistributionV3S3(
                    label, work / label, binary=v3_binary,
                    seaweed=seaweed.view(f"bench-{label}"), redirect=redirect)
        self.limit_bucket = seaweed.make_bucket("bench-limit")
        self.client = presigner(seaweed)
        self.runs: dict[str, dict[str, list[dict[str, Any]]]] = {
            row: {label: [] for label in [*self.servers, LIMIT]} for row in ROWS}
        self.profiles: dict[str, Any] = {}

    async def auth(self, label: str) -> dict[str, str]:
        server = self.servers[label]
        if not isinstance(server, Moorage):
            return {}
        tok = await token("127.0.0.1", server.port, server.basic,
                          [f"repository:{REPO}:pull,push"])
        return {"authorization": f"Bearer {tok}"}

    def record(self, row: str, label: str, result: dict[str, Any]) -> None:
        self.runs[row][label].append(result)
        log(f"  {row:8} {label:17} {result['mib_s']:8.1f} MiB/s  "
            f"cpu {result['cpu_s_per_gib']:.2f} s/GiB  seaweed "
            f"{result['seaweed_cpu_s_per_gib']:.2f} s/GiB  errors {result.get('errors', 0)}"
            f"  peak {result.get('peak_pss_mib', 0):.0f} MiB")

    def presigned(self, method: str, key: str) -> str:
        return str(self.client.generate_presigned_url(
            method, Params={"Bucket": self.limit_bucket, "Key": key}, ExpiresIn=3600))

    # -- one round ------------------------------------------------------------------------
    async def round(self, r: int, data: bytearray, blob_file: Path) -> None:
        o = self.o
        labels = [*self.servers, LIMIT]
        shift = r % len(labels)
        labels = labels[shift:] + labels[:shift]
        size = len(data)
        pulled: dict[str, str] = {}
        for row, chunk in (("push", None), ("chunked", o.chunk_mib * MiB)):
            if row not in o.push_rows:
                continue
            for n, label in enumerate(labels):
                data[:32] = f"round {r} {row} {n} {label}".ljust(32).encode()[:32]
                body = bytes(data)
                if label == LIMIT:
                    blob_file.write_bytes(body)
                    key = f"limit/r{r}-{row}"
                    url = self.presigned("put_object", key)
                    with Meter(None, self.seaweed) as meter:
                        await asyncio.to_thread(curl_put, url, blob_file, HANG)
                    pulled[label] = self.presigned("get_object", key)
                else:
                    auth = await self.auth(label)
                    with Meter(self.servers[label], self.seaweed) as meter:
                        digest = await asyncio.wait_for(
                            push(self.servers[label], body, chunk, auth), HANG)
                    pulled[label] = f"{self.servers[label].url}/v2/{REPO}/blobs/{digest}"
                self.record(row, label, meter.result(size))
        for row, streams, repeats in (("pull_1", 1, o.pull_repeats), ("pull_8", 8, 1)):
            for label in labels:
                server = self.servers.get(label)
                auth = await self.auth(label) if server else {}
                groups = [" ".join([pulled[label]] * repeats)] * streams
                with Meter(server, self.seaweed) as meter:
                    moved, errors = await asyncio.to_thread(curl_get, groups, auth, size, HANG)
                self.record(row, label, meter.result(moved, errors=errors))

    # -- profiles -------------------------------------------------------------------------
    async def profile_row(self, row: str, data: bytearray) -> None:
        """py-spy on the stream Moorage's workers (the one every byte passes through) while
        the row runs again and again."""
        server = self.servers[M_STREAM]
        assert isinstance(server, Moorage)
        auth = await self.auth(M_STREAM)
        chunk = self.o.chunk_mib * MiB if row == "chunked" else None
        digest = await push(server, bytes(data), None, auth)
        url = f"{server.url}/v2/{REPO}/blobs/{digest}"

        def run(seconds: float) -> int:
            deadline, n = time.monotonic() + seconds, 0
            while time.monotonic() < deadline:
                n += 1
                if row.startswith("pull"):
                    curl_get([url] * (8 if row == "pull_8" else 1), auth, len(data), HANG)
                else:
                    data[:32] = f"profile {row} {n}".ljust(32).encode()
                    asyncio.run(push(server, bytes(data), chunk, auth))
            return n

        result = await profile.record_workers(server.worker_pids(), self.o.profile_seconds,
                                              ROOT / "bench" / "results", run,
                                              what=f"S3 {ROWS[row]} through Moorage")
        self.profiles[row] = {k: v for k, v in result.items() if k != "load_during_profile"}
        print(result.get("summary", result.get("error")), file=sys.stderr)

    # -- the table ------------------------------------------------------------------------
    def medians(self, row: str, label: str) -> dict[str, float] | None:
        runs = self.runs[row][label]
        if not runs:
            return None
        return {key: statistics.median(r[key] for r in runs)
                for key in ("mib_s", "cpu_s_per_gib", "seaweed_cpu_s_per_gib")} | {
                "errors": sum(r.get("errors", 0) for r in runs)}

    def table(self) -> str:
        v3 = V3_STREAM in self.servers
        head = ["row", "Moorage", "Moorage redirect"]  # (+ baseline after Moorage)
        if v3:
            head += ["v3 S3", "v3 S3 redirect"]
        head += ["SeaweedFS (curl)"]
        base = M_BASE in self.servers
        if base:
            head[2:2] = ["Moorage baseline"]
        if v3:
            head += ["Moorage / v3", "redirect / v3 redirect"]
        if base:
            head += ["Moorage / baseline"]
        head += ["Moorage / SeaweedFS", "SeaweedFS CPU s/GiB (" + " · ".join(self.servers)
                 + ")", "registry CPU s/GiB (" + " · ".join(self.servers) + ")"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row, name in ROWS.items():
            if not any(self.runs[row].values()):
                continue
            med = {label: self.medians(row, label) for label in [*self.servers, LIMIT]}

            def cell(label: str) -> str:
                m = med.get(label)
                if m is None:
                    return "–"
                return f"{m['mib_s']:,.1f} MiB/s" + (f" ({m['errors']} errors)"
                                                      if m["errors"] else "")

            def ratio(a: str, b: str) -> str:
                ma, mb = med.get(a), med.get(b)
                return f"{ma['mib_s'] / mb['mib_s']:.2f}×" if ma and mb and mb["mib_s"] else "–"

            best = max((M_STREAM, M_REDIRECT), key=lambda x: med[x]["mib_s"] if med[x] else 0)
            cells = [f"{name}, {self.o.size_mib} MiB"
                     + (f" in {self.o.chunk_mib} MiB PATCHes" if row == "chunked" else ""),
                     cell(M_STREAM), *([cell(M_BASE)] if base else []), cell(M_REDIRECT)]
            if v3:
                cells += [cell(V3_STREAM), cell(V3_REDIRECT)]
            cells.append(cell(LIMIT))
            if v3:
                cells += [ratio(M_STREAM, V3_STREAM), ratio(M_REDIRECT, V3_REDIRECT)]
            if base:
                cells.append(ratio(M_STREAM, M_BASE))
            ml, mb = med[LIMIT], med[best]
            cells.append(f"{100 * mb['mib_s'] / ml['mib_s']:.0f}%" if ml and mb and ml["mib_s"]
                         else "–")
            cells.append(" · ".join(f"{med[x]['seaweed_cpu_s_per_gib']:.2f}" if med[x] else "–"
                                    for x in self.servers))
            cpu = [f"{med[x]['cpu_s_per_gib']:.2f}" if med[x] else "–"
                   for x in self.servers]
            cells.append(" · ".join(cpu))
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--chunk-mib", type=int, default=5)
    parser.add_argument("--pull-repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--profile", default="", help="rows to profile: push,chunked,pull_1")
    parser.add_argument("--profile-seconds", type=float, default=10.0)
    parser.add_argument("--no-v3", action="store_true", help="leave Distribution v3 out")
    parser.add_argument("--baseline", default="",
                        help="a `src` folder of another Moorage (e.g. main's, from git "
                             "archive) run beside this one in every round, for before/after")
    parser.add_argument("--push-rows", default="push,chunked",
                        help="push rows to run (push,chunked); the pulls follow the last")
    parser.add_argument("--quick", action="store_true",
                        default=os.environ.get("BENCH_QUICK", "") not in ("", "0"))
    o = parser.parse_args(argv)
    o.push_rows = [row.strip() for row in o.push_rows.split(",") if row.strip()]
    if o.quick:
        o.rounds, o.size_mib, o.chunk_mib, o.pull_repeats, o.profile_seconds = 1, 8, 5, 1, 3.0
    return o


async def amain(o: argparse.Namespace) -> int:
    os.environ.pop("AWS_CA_BUNDLE", None)  # plain http on loopback; v3 must not see it
    work = Path(tempfile.mkdtemp(prefix="moorage-bench-s3-"))
    seaweed: SeaweedS3 | None = None
    bench: Bench | None = None
    try:
        v3_binary, v3_source = (None, "left out (--no-v3)") if o.no_v3 else find_v3(ROOT, work)
        log(f"Distribution v3: {v3_source}")
        seaweed = await asyncio.to_thread(SeaweedS3.start, work / "seaweed")
        log(f"SeaweedFS at {seaweed.endpoint}")
        bench = Bench(o, work, seaweed, v3_binary)
        for server in bench.servers.values():
            server.work.mkdir(parents=True, exist_ok=True)
        await asyncio.gather(*(asyncio.to_thread(s.start, 300.0)
                               for s in bench.servers.values()))
        log("started " + ", ".join(f"{k} at {s.url}" for k, s in bench.servers.items()))
        data = bytearray(os.urandom(o.size_mib * MiB))
        blob_file = work / "blob"
        for r in range(o.rounds):
            log(f"round {r + 1}/{o.rounds}")
            await bench.round(r, data, blob_file)
        for row in [x.strip() for x in o.profile.split(",") if x.strip()]:
            if row not in ROWS:
                raise SystemExit(f"--profile: no row {row!r} (one of {', '.join(ROWS)})")
            await bench.profile_row(row, data)
        errors = {label: s.log_errors() for label, s in bench.servers.items()}
        memory = {label: s.memory()["peak_pss_mib"] for label, s in bench.servers.items()}
    finally:
        if bench is not None:
            for server in bench.servers.values():
                server.stop()
        if seaweed is not None:
            seaweed.stop()
        shutil.rmtree(work, ignore_errors=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print()
    print(f"S3 rows ({stamp}; medians of {o.rounds} round(s); {o.size_mib} MiB blobs; "
          f"Moorage --workers {o.workers}; one SeaweedFS on loopback"
          + ("; QUICK SMOKE RUN, figures not comparable" if o.quick else "") + ")")
    if V3_STREAM not in bench.servers:
        print(f"(no Distribution v3 columns: {v3_source})")
    print(bench.table())
    print(f"peak memory (PSS, MiB): {json.dumps(memory)}")
    by_row = {row: {label: max((r.get("peak_pss_mib", 0) for r in runs), default=0)
                    for label, runs in bench.runs[row].items() if label in bench.servers}
              for row in ROWS if any(bench.runs[row].values())}
    print(f"peak memory by row (PSS, MiB): {json.dumps(by_row)}")
    print(json.dumps({"runs": bench.runs, "server_errors": errors, "profiles": bench.profiles},
                     default=str), file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(amain(options(argv)))


if __name__ == "__main__":
    sys.exit(main())
