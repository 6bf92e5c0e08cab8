"""Moorage against CNCF Distribution, side by side on loopback: `make bench`.

    PYTHONPATH=src python bench/run.py [--workers 2] [--rounds 3] [--duration 8] [--quick]

Starts `moorage serve` (embedded defaults, token auth on, an admin password, N workers) and
Distribution 2.8.2 (`docker-registry serve`, filesystem storage) on free loopback ports, and
CNCF Distribution v3.1.1 too when its binary is at hand ($DISTRIBUTION_V3, or the workspace's
../shared/peers/distribution-v3.1.1/registry.xz, unpacked and checked against its sha256).
Gives each the same content through the same API calls, then runs every scenario against each
in alternation (Moorage, 2.8.2, v3, Moorage, … for `--rounds` rounds) and reports the median.
Beside the small-request and blob GET rows it measures the machine's limit in the same rounds
(bench/limits.py: a bare granian handler; a plain loop.sendfile server) and shows Moorage as a
share of it. Prints one table and saves it, with every round's raw figures, as JSON (and
Markdown) under bench/results/. `BENCH_QUICK=1` (or --quick) is a smoke run: tiny content,
1 round, 2-second loads. Nothing but 127.0.0.1 is contacted; every load is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import direct, load  # noqa: E402
from bench.content import (ACCEPT, Image, mount_blob, pool, push_image, push_layout,  # noqa: E402
                           put_manifest, small_image, token, tokens_for, walk)
from bench.rawhttp import Connection  # noqa: E402
from bench.servers import (ADMIN_PASSWORD, ADMIN_USER, BareHandler, Distribution,  # noqa: E402
                           DistributionV3, Moorage, SendfileServer, Server, find_v3)

RESULTS = ROOT / "bench" / "results"
PROFILE_GROUPS = ("manifest", "anon", "head", "tags", "catalog", "pulls", "sustained", "upload",
                  "push", "blob")
M, D, V3 = "moorage", "distribution", "distribution-v3"
LIMIT = "limit"  # the machine's bound for a row (bench/limits.py)
LIMIT_FILE = "limit-granian-file"  # blob rows: granian's own file response, a second bound
BARE, SENDFILE = "bare", "sendfile"
HASHWRITE = "hash-and-write"  # the upload rows' limit: bench/limits.py hashwrite
SKOPEO_DIR = "skopeo to dir"  # the push row's bound: the client alone, to a local folder


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- options ----------------------------------------------------------------------------------
@dataclass
class Options:
    workers: int = 2
    rounds: int = 3
    duration: float = 8.0  # seconds of each load run
    manifest_connections: int = 64
    list_connections: int = 16
    tags: int = 10_000
    repositories: int = 10_000
    pull_images: int = 1_000
    pull_clients: int = 32
    sustained_seconds: float = 60.0
    sustained_rate: float = 1_000.0
    big_mib: int = 256
    small_layers: int = 20
    small_kib: int = 64
    chunk_mib: int = 5
    blob_repeats: int = 4  # downloads per stream, one stream
    blob_repeats_parallel: int = 2  # downloads per stream, 8 streams
    profile_seconds: float = 10.0
    profile: list[str] = field(default_factory=lambda: ["manifest"])
    seed_connections: int = 16
    seed_http: bool = False  # seed bulk tags and repositories through the API too (slow)
    quick: bool = False
    work_dir: str | None = None
    keep: bool = False
    only: list[str] = field(default_factory=list)

    @classmethod
    def quick_options(cls) -> dict[str, Any]:
        return dict(rounds=1, duration=2.0, tags=300, repositories=200, pull_images=50,
                    sustained_seconds=5.0, big_mib=16, small_layers=20, small_kib=16,
                    blob_repeats=2, blob_repeats_parallel=1, profile_seconds=3.0, quick=True)


def parse_options(argv: list[str] | None = None) -> Options:
    defaults = Options()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int,
                   default=int(os.environ.get("BENCH_WORKERS", defaults.workers)),
                   help="Moorage worker processes (env BENCH_WORKERS) [2]")
    p.add_argument("--rounds", type=int, help="rounds of A/B alternation [3; quick 1]")
    p.add_argument("--duration", type=float, help="seconds of each load run [8; quick 2]")
    p.add_argument("--sustained-seconds", type=float, help="the sustained pull run [60; quick 5]")
    p.add_argument("--big-mib", type=int,
                   help="MiB of the big blob (push, uploads, blob GET) [256; quick 16]")
    p.add_argument("--quick", action="store_true",
                   default=os.environ.get("BENCH_QUICK", "") not in ("", "0"),
                   help="smoke run: tiny content, 1 round (env BENCH_QUICK=1)")
    p.add_argument("--profile", default="manifest",
                   help=f"loads to profile with py-spy after the rounds, comma-separated: "
                   f"{','.join(PROFILE_GROUPS)} [manifest]; 'none' for no profile")
    p.add_argument("--no-profile", action="store_true", help="same as --profile none")
    p.add_argument("--seed-http", action="store_true",
                   help="seed the 10,000 tags and repositories through the API (slow) instead "
                   "of straight into each registry's storage")
    p.add_argument("--work-dir", help="where the servers keep their data [a temp folder]")
    p.add_argument("--keep", action="store_true", help="keep the work folder afterwards")
    p.add_argument("--only", default="", help="comma-separated scenario groups: push,chunked,"
                   "blob,manifest,tags,catalog,pulls,sustained (seeding always runs)")
    args = p.parse_args(argv)
    values: dict[str, Any] = {}
    if args.quick:
        values.update(Options.quick_options())
    for name in ("rounds", "duration", "sustained_seconds", "big_mib"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    groups = [] if args.no_profile else [g for g in args.profile.split(",") if g and g != "none"]
    unknown = set(groups) - set(PROFILE_GROUPS)
    if unknown:
        p.error(f"unknown profile loads: {', '.join(sorted(unknown))}")
    values.update(workers=args.workers, profile=groups, work_dir=args.work_dir,
                  seed_http=args.seed_http,
                  keep=args.keep, only=[s for s in args.only.split(",") if s])
    return Options(**{**defaults.__dict__, **values})


# -- results ----------------------------------------------------------------------------------
def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each numeric figure over the rounds; errors are summed."""
    if not runs:
        return {}
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        values = [r[key] for r in runs if key in r]
        if key in ("errors", "pulls", "requests"):
            out[key] = sum(values)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = statistics.median(values)
        else:
            out[key] = value
    return out


@dataclass
class Row:
    key: str
    title: str
    metric: str  # the figure the ratio compares (higher is better)
    goal: str
    fmt: Callable[[dict[str, Any]], str]
    check: Callable[[dict[str, Any], dict[str, Any] | None, float | None], bool] | None = None
    runs: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {M: [], D: [], V3: [], LIMIT: [], LIMIT_FILE: []})
    compare_to: str | None = None  # take the peers' figures from this row
    note: str = ""
    error: str | None = None
    limit: str | None = None  # BARE or SENDFILE: the row has a machine limit beside it
    v3_note: str = ""  # why v3 has no figure for this row, when it has none by design
    every_round: bool = False  # the goal holds in every round: show the worst round's ratio

    def peer_runs(self, rows: dict[str, "Row"], label: str) -> list[dict[str, Any]]:
        return rows[self.compare_to].runs[label] if self.compare_to else self.runs[label]

    def medians(self, rows: dict[str, "Row"], label: str) -> dict[str, Any] | None:
        runs = self.runs[M] if label == M else self.peer_runs(rows, label)
        return median_of(runs) if runs else None


def fmt_rps(r: dict[str, Any]) -> str:
    s = f"{r['rps']:,.0f} req/s, p99 {r['p99_ms']:.1f} ms"
    return s + (f", {r['errors']} errors" if r.get("errors") else "")


def fmt_gbps(r: dict[str, Any]) -> str:
    return f"{r['gbps']:.2f} GB/s" + (f", {r['errors']} errors" if r.get("errors") else "")


def fmt_upload(r: dict[str, Any]) -> str:
    return f"{r['seconds']:.2f} s, {r['mbps']:,.0f} MB/s"


def fmt_walk(r: dict[str, Any]) -> str:
    s = f"{r['walks_per_s']:,.1f} walks/s ({r['walk_ms']:,.0f} ms, {r['pages']} page" \
        f"{'s' if r['pages'] != 1 else ''})"
    return s + (f", {r['errors']} errors" if r.get("errors") else "")


def fmt_pulls(r: dict[str, Any]) -> str:
    return f"{r['pulls_per_s']:,.0f} pulls/s, p99 {r['p99_ms']:.0f} ms, {r['errors']} errors"


def fmt_mem(r: dict[str, Any]) -> str:
    procs = r.get("processes", [])
    text = f"{r['peak_pss_mib']:.0f} MiB; sum of each process's VmHWM {r['total_peak_mib']:.0f} MiB"
    if len(procs) > 1:
        parts = " + ".join(f"{p['peak_mib']:.0f}" for p in procs)
        text += f" ({parts})"
    return text


def ratio_at_least(goal: float, p99_ms: float | None = None):  # type: ignore[no-untyped-def]
    def check(m: dict[str, Any], d: dict[str, Any] | None, ratio: float | None) -> bool:
        ok = ratio is not None and ratio >= goal and not m.get("errors")
        if p99_ms is not None:
            ok = ok and m["p99_ms"] < p99_ms
        return ok
    return check


def make_rows(o: Options) -> dict[str, Row]:
    mc, lc = o.manifest_connections, o.list_connections
    rows = [
        Row("manifest_get_anon", f"manifest GET by tag, {mc} conns, anonymous (wrk)", "rps",
            "≥10× and p99 < 20 ms", fmt_rps, ratio_at_least(10, 20), limit=BARE),
        Row("manifest_get_token", f"manifest GET by tag, {mc} conns, bearer token (wrk)", "rps",
            "≥10× and p99 < 20 ms", fmt_rps, ratio_at_least(10, 20),
            compare_to="manifest_get_anon",
            note="Distribution has no auth: compared with its anonymous figure",
            limit=BARE),
        Row("manifest_head_anon", f"manifest HEAD by tag, {mc} conns, anonymous (ab)", "rps",
            "≥10× and p99 < 20 ms", fmt_rps, ratio_at_least(10, 20), limit=BARE),
        Row("manifest_head_token", f"manifest HEAD by tag, {mc} conns, bearer token (ab)", "rps",
            "≥10× and p99 < 20 ms", fmt_rps, ratio_at_least(10, 20),
            compare_to="manifest_head_anon",
            note="Distribution has no auth: compared with its anonymous figure",
            limit=BARE),
        Row("blob_get_1", f"blob GET {o.big_mib} MiB, 1 stream (curl)", "gbps", "≥1.0×",
            fmt_gbps, ratio_at_least(1.0), limit=SENDFILE),
        Row("blob_get_8", f"blob GET {o.big_mib} MiB, 8 parallel streams (curl)", "gbps",
            "≥1.0×", fmt_gbps, ratio_at_least(1.0), limit=SENDFILE),
        Row("push_skopeo", f"push {o.big_mib} MiB + {o.small_layers} small layers "
            f"(skopeo copy)", "mbps", "≥1.5×", fmt_upload, ratio_at_least(1.5),
            limit=SKOPEO_DIR),
        Row("chunked_upload", f"chunked upload {o.big_mib} MiB in {o.chunk_mib} MiB chunks",
            "mbps", "≥1.5×", fmt_upload, ratio_at_least(1.5), limit=HASHWRITE,
            every_round=True),
        Row("monolithic_upload", f"monolithic upload {o.big_mib} MiB (POST, one PUT)",
            "mbps", "≥1.5×", fmt_upload, ratio_at_least(1.5), limit=HASHWRITE,
            every_round=True),
        Row("tags_first_page", f"tags list, {o.tags:,} tags: first page n=100, {lc} conns (wrk)",
            "rps", "≥5×", fmt_rps, ratio_at_least(5)),
        Row("tags_walk", f"tags list, {o.tags:,} tags: full walk n=1000", "walks_per_s", "≥5×",
            fmt_walk, ratio_at_least(5)),
        Row("tags_all", f"tags list, {o.tags:,} tags: full walk without n (each registry's own "
            "page size, following Link)", "walks_per_s", "≥5×", fmt_walk, ratio_at_least(5)),
        Row("catalog_first_page", f"catalog, {o.repositories:,} repositories: first page n=100, "
            f"{lc} conns (wrk)", "rps", "≥5×", fmt_rps, ratio_at_least(5)),
        Row("catalog_walk", f"catalog, {o.repositories:,} repositories: full walk n=1000",
            "walks_per_s", "≥5×", fmt_walk, ratio_at_least(5)),
        Row("catalog_all", f"catalog, {o.repositories:,} repositories: full walk without n "
            "(each registry's own page size, following Link)", "walks_per_s", "≥5×", fmt_walk,
            ratio_at_least(5)),
        Row("pulls", f"pulls of {o.pull_images:,} distinct small images, {o.pull_clients} "
            f"clients", "pulls_per_s", "— (no errors)", fmt_pulls,
            lambda m, d, r: not m.get("errors")),
        Row("sustained", f"sustained {o.sustained_rate:,.0f} pulls/s for "
            f"{o.sustained_seconds:.0f} s (Moorage only)", "pulls_per_s",
            f"{o.sustained_rate:,.0f} pulls/s, no error",
            lambda r: f"{r['pulls_per_s']:,.0f} pulls/s, {r['errors']} errors, "
                      f"{r.get('not_started', 0):,} not started in time, p99 {r['p99_ms']:.0f} ms",
            lambda m, d, r: m["pulls_per_s"] >= 0.98 * o.sustained_rate and not m["errors"]
            and not m.get("not_started"),
            note="p99 counts from each pull's scheduled start"),
        Row("memory", "peak memory of the server process tree (PSS summed over its processes, "
            "sampled every second through the whole run)", "peak_pss_mib",
            "< 300 MiB", fmt_mem, lambda m, d, r: m["peak_pss_mib"] < 300,
            note="Moorage: granian main + workers"),
    ]
    return {r.key: r for r in rows}


def table(rows: dict[str, Row], v3: bool) -> tuple[str, list[dict[str, Any]]]:
    """The Markdown table (a v3 column and ratio only when v3 ran) and its JSON entries."""
    head = ["scenario", "Moorage", "Distribution 2.8.2"] + (["Distribution v3.1.1"] if v3 else [])
    head += ["Moorage ÷ 2.8.2"] + (["Moorage ÷ v3"] if v3 else [])
    head += ["limit (bench/limits.py)", "Moorage % of limit", "goal (vs 2.8.2)", "met?"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out = []
    for row in rows.values():
        entry: dict[str, Any] = {"key": row.key, "scenario": row.title, "goal": row.goal,
                                 "metric": row.metric, "note": row.note}
        if row.error or not row.runs[M]:
            reason = row.error or "not run"
            cells = [row.title, f"failed: {reason[:120]}"] + [""] * (len(head) - 4)
            lines.append("| " + " | ".join(cells + [row.goal, "not met"]) + " |")
            entry.update(error=reason, met=False)
            out.append(entry)
            continue
        m = row.medians(rows, M)
        assert m is not None
        figures = {label: row.medians(rows, label) for label in (D, V3, LIMIT, LIMIT_FILE)}

        def ratio_to(other: dict[str, Any] | None) -> float | None:
            return m[row.metric] / other[row.metric] if other and other.get(row.metric) else None

        ratios = {label: ratio_to(figures[label]) for label in (D, V3)}
        met = row.check(m, figures[D], ratios[D]) if row.check else None
        title = row.title + (f" ({row.note})" if row.note else "")
        cells = [title, row.fmt(m), row.fmt(figures[D]) if figures[D] else "—"]
        if v3:
            cells.append(row.fmt(figures[V3]) if figures[V3] else (row.v3_note or "—"))
        cells.append(f"{ratios[D]:.2f}×" if ratios[D] is not None else "—")
        worst = worst_round(row, rows) if row.every_round else None
        if v3:
            cells.append((f"{ratios[V3]:.2f}×" if ratios[V3] is not None else "—")
                         + (f" (worst round {worst:.2f}×)" if worst is not None else ""))
        limit, second = figures[LIMIT], figures[LIMIT_FILE]
        limit_text = f"{row.limit}: {row.fmt(limit)}" if limit else "—"
        if limit and second:  # the share is of the higher of the two bounds
            limit_text += f"; granian file: {row.fmt(second)}"
            limit = max(limit, second, key=lambda f: f[row.metric])
        share = ratio_to(limit)
        cells.append(limit_text)
        cells.append(f"{share:.0%}" if share is not None else "—")
        cells += [row.goal, "yes" if met else "NOT MET"]
        lines.append("| " + " | ".join(cells) + " |")
        entry.update(moorage=m, distribution=figures[D], distribution_v3=figures[V3],
                     limit=limit, limit_sendfile=figures[LIMIT],
                     limit_granian_file=figures[LIMIT_FILE], limit_kind=row.limit, ratio=ratios[D], ratio_v3=ratios[V3],
                     share_of_limit=share, met=met, worst_round_ratio_v3=worst,
                     rounds={M: row.runs[M], **{label: row.peer_runs(rows, label)
                                                for label in (D, V3, LIMIT, LIMIT_FILE)}})
        out.append(entry)
    return "\n".join(lines), out


def worst_round(row: Row, rows: dict[str, Row]) -> float | None:
    """The lowest Moorage ÷ v3 ratio over the rounds, each round against its own v3 run."""
    pairs = zip(row.runs[M], row.peer_runs(rows, V3))
    ratios = [m[row.metric] / v[row.metric] for m, v in pairs if v.get(row.metric)]
    return min(ratios) if ratios else None


# -- machine ----------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))

    def version(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"

    commit = version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = version(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"])
    return {
        "cpus": os.cpu_count(), "cpu_model": cpu, "ram_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(), "python": platform.python_version(),
        "granian": metadata.version("granian"), "distribution": Distribution.version(),
        "wrk": version(["wrk", "-v"]), "skopeo": version(["skopeo", "--version"]),
        "curl": version(["curl", "--version"]).split(" (")[0],
        "moorage_commit": commit + ("+changes" if dirty not in ("", "?") else ""),
    }


def cpu_busy(seconds: float = 2.0) -> float:
    """Share of all CPUs busy over `seconds` (before the servers start: other load)."""
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields), idle
    t0, i0 = sample()
    time.sleep(seconds)
    t1, i1 = sample()
    return round(1 - (i1 - i0) / max(1, t1 - t0), 3)


# -- the benchmark ----------------------------------------------------------------------------
class Bench:
    def __init__(self, o: Options, work: Path, v3_binary: Path | None = None) -> None:
        self.o = o
        self.work = work
        self.moorage = Moorage(M, work, workers=o.workers)
        self.dist = Distribution(D, work)
        self.rows = make_rows(o)
        self.servers: dict[str, Server] = {M: self.moorage, D: self.dist}
        if v3_binary is not None:
            self.servers[V3] = DistributionV3(V3, work, binary=v3_binary)
        self.peers = [label for label in self.servers if label != M]
        self.labels = list(self.servers)  # the order of each round: Moorage, 2.8.2, v3
        self.pull_repos = [f"pull/img-{i:04d}" for i in range(o.pull_images)]
        self.blob: tuple[str, str, int] | None = None  # repo, digest, size
        self.catalog_total = 0
        self.profiles: dict[str, dict[str, Any]] = {}
        self.facts: dict[str, Any] = {}

    def wanted(self, group: str) -> bool:
        return not self.o.only or group in self.o.only

    # -- helpers ----------------------------------------------------------------------------
    def auth(self, label: str) -> dict[str, str]:
        """Headers for seeding: Basic admin on Moorage, nothing on Distribution."""
        return {"authorization": self.moorage.basic} if label == M else {}

    async def bearer(self, label: str, *scopes: str) -> dict[str, str]:
        if label != M:
            return {}
        tok = await token("127.0.0.1", self.moorage.port, self.moorage.basic, list(scopes))
        return {"authorization": f"Bearer {tok}"}

    async def listed(self, label: str, path: str, key: str, scope: str) -> int:
        """How many items a full walk of a listing finds on one registry (seeding checks)."""
        auth = await self.bearer(label, scope)
        conn = Connection("127.0.0.1", self.servers[label].port)
        try:
            found, _ = await walk(conn, path, key, auth)
        finally:
            await conn.close()
        return found

    def record(self, key: str, label: str, result: dict[str, Any]) -> None:
        self.rows[key].runs[label].append(result)
        main = self.rows[key].metric
        figure = result.get(main)
        log(f"  {key:20} {label:12} {main}={figure:,.2f} "
            + " ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in result.items() if k not in (main, "error_samples")))

    def fail(self, keys: list[str], exc: BaseException) -> None:
        text = f"{type(exc).__name__}: {exc}"
        log(f"  FAILED {', '.join(keys)}: {text}\n{traceback.format_exc()}")
        for key in keys:
            self.rows[key].error = text

    # -- seeding ----------------------------------------------------------------------------
    async def seed(self) -> None:
        o = self.o
        started = time.perf_counter()
        import httpx

        resp = httpx.post(f"{self.moorage.url}/api/v1/namespaces",
                          json={"name": "public", "visibility": "public"},
                          headers={"authorization": self.moorage.basic}, timeout=30)
        if resp.status_code != 201:
            raise RuntimeError(f"create public namespace: {resp.status_code} {resp.text}")
        app = small_image("app")
        tags_image = small_image("tags")
        chunked_image = small_image("chunked")
        pulls = [small_image(f"pull-{i}") for i in range(o.pull_images)]

        async def seed_one(label: str) -> None:
            server, auth = self.servers[label], self.auth(label)
            conn = Connection("127.0.0.1", server.port)
            try:
                await push_image(conn, "public/app", "latest", app, auth)
                await push_image(conn, "bench/tags", "t00000", tags_image, auth)
                await push_image(conn, "bench/chunked", "latest", chunked_image, auth)
            finally:
                await conn.close()
            tag_names = [f"t{i:05d}" for i in range(1, o.tags)]
            if o.seed_http:
                await pool("127.0.0.1", server.port, o.seed_connections, tag_names,
                           lambda c, t: put_manifest(c, "bench/tags", t, tags_image.manifest,
                                                     auth))
            elif label == M:  # OCI 1.1: one PUT by digest may set many tags (?tag=…)
                batches = [tag_names[i:i + 100] for i in range(0, len(tag_names), 100)]
                await pool("127.0.0.1", server.port, 4, batches,
                           lambda c, batch: put_manifest(
                               c, "bench/tags", tags_image.digest + "?" +
                               "&".join(f"tag={t}" for t in batch), tags_image.manifest, auth))
            else:  # Distribution has no ?tag=: write its tag links directly (same layout in v3)
                await asyncio.to_thread(direct.distribution_tags, server.data_dir,  # type: ignore[attr-defined]
                                        "bench/tags", tags_image.digest, tag_names)
            await pool("127.0.0.1", server.port, o.seed_connections,
                       list(zip(self.pull_repos, pulls)),
                       lambda c, item: push_image(c, item[0], "v1", item[1], auth,
                                                  one_request=label == M and not o.seed_http))
            log(f"seeded {label}: public/app, bench/tags ({o.tags:,} tags), bench/chunked, "
                f"{o.pull_images:,} pull images ({time.perf_counter() - started:.0f} s)")

        await asyncio.gather(*(seed_one(label) for label in self.labels))
        for label in self.labels:  # what the API shows is what we seeded, on each
            found = await self.listed(label, "/v2/bench/tags/tags/list?n=1000", "tags",
                                      "repository:bench/tags:pull")
            if found != o.tags:
                raise RuntimeError(f"{label} lists {found} tags of bench/tags, not {o.tags}")

    async def seed_catalog(self) -> None:
        """Fill both catalogs up to `repositories` with a tiny image mounted into new repos."""
        o = self.o
        started = time.perf_counter()
        counts = {}
        for label in self.labels:
            counts[label] = await self.listed(label, "/v2/_catalog?n=1000", "repositories",
                                              "registry:catalog:*")
        if len(set(counts.values())) != 1:
            raise RuntimeError(f"the registries hold different repositories before the catalog "
                               f"seeding: {counts}")
        missing = o.repositories - counts[M]
        source: Image = small_image("app")  # public/app holds it on both
        names = [f"cat/r{i:05d}" for i in range(max(0, missing))]

        async def one(label: str) -> None:
            auth = self.auth(label)

            async def job(conn: Connection, name: str) -> None:
                for digest, _ in source.blobs:
                    await mount_blob(conn, name, digest, "public/app", auth)
                await put_manifest(conn, name, "latest", source.manifest, auth)

            # the first through the API (it creates the namespace the normal way), the rest
            # through the API too with --seed-http, or else straight into the storage
            via_api = names if o.seed_http else names[:1]
            await pool("127.0.0.1", self.servers[label].port, o.seed_connections, via_api, job)
            rest = names[len(via_api):]
            if not rest:
                return
            if label == M:
                await asyncio.to_thread(
                    direct.moorage_repos, self.moorage.data_dir, rest, source.manifest,
                    "application/vnd.oci.image.manifest.v1+json",
                    {d: len(b) for d, b in source.blobs}, "latest")
            else:
                await asyncio.to_thread(direct.distribution_repos,
                                        self.servers[label].data_dir, rest,  # type: ignore[attr-defined]
                                        source.digest, [d for d, _ in source.blobs], "latest")

        await asyncio.gather(*(one(label) for label in self.labels))
        self.catalog_total = counts[M] + len(names)
        for label in self.labels:
            found = await self.listed(label, "/v2/_catalog?n=1000", "repositories",
                                      "registry:catalog:*")
            if found != self.catalog_total:
                raise RuntimeError(f"{label} lists {found} repositories, not "
                                   f"{self.catalog_total}")
        log(f"seeded catalogs: {counts[M]} repositories + {len(names):,} = "
            f"{self.catalog_total:,} on both ({time.perf_counter() - started:.0f} s)")

    # -- scenarios --------------------------------------------------------------------------
    async def push(self) -> None:
        o = self.o
        for r in range(1, o.rounds + 1):
            layout = self.work / f"layout-r{r}"
            t0 = time.perf_counter()
            digest, total, big = await asyncio.to_thread(
                push_layout, layout, "bench", o.big_mib, o.small_layers, o.small_kib, 1000 + r)
            log(f"round {r}: built an OCI layout of {total / 1e6:,.0f} MB in "
                f"{time.perf_counter() - t0:.1f} s")
            for label in self.round_order(r):
                server = self.servers[label]
                repo = f"bench/push-r{r}"
                creds = f"{ADMIN_USER}:{ADMIN_PASSWORD}" if label == M else None
                await settle()
                result = await asyncio.to_thread(load.skopeo_push, str(layout), "bench",
                                                 f"{server.host}/{repo}:latest", creds, 600)
                result["mbps"] = total / result["seconds"] / 1e6
                self.record("push_skopeo", label, result)
            # the client's own time: the same copy to a local folder, no registry
            await settle()
            result = await asyncio.to_thread(load.skopeo_to_dir, str(layout), "bench",
                                             str(self.work / f"skopeo-dir-r{r}"), 600)
            result["mbps"] = total / result["seconds"] / 1e6
            self.record("push_skopeo", LIMIT, result)
            shutil.rmtree(self.work / f"skopeo-dir-r{r}", ignore_errors=True)
            if self.blob is None:
                self.blob = ("bench/push-r1", big.digest, big.size)
            shutil.rmtree(layout, ignore_errors=True)

    def round_order(self, r: int) -> list[str]:
        """The registries in the order round `r` (from 1) takes them for the upload and push
        rows: Moorage first in round 1, second in round 2 … Whatever a turn leaves behind for
        the next one (the disk's cache still writing a peer's files, page cache to give back)
        then falls on each registry in turn rather than always on the same one. Each turn
        still starts with the same settle()."""
        shift = (r - 1) % len(self.labels)
        return self.labels[shift:] + self.labels[:shift]

    async def chunked(self) -> None:
        """Chunked and monolithic uploads of a new blob on each registry in turn, then the
        hash-and-write limit of the same sizes in the same round (on the same filesystem)."""
        o = self.o
        data = bytearray(os.urandom(o.big_mib << 20))
        scratch = str(self.work / "hashwrite")
        for r in range(1, o.rounds + 1):
            for label in self.round_order(r):
                n = self.labels.index(label)
                auth = await self.bearer(label, "repository:bench/chunked:pull,push")
                data[:16] = f"round {r} {n} c".ljust(16).encode()  # a new blob every time
                await settle()
                result = await load.chunked_upload("127.0.0.1", self.servers[label].port,
                                                   "bench/chunked", bytes(data),
                                                   o.chunk_mib << 20, auth)
                self.record("chunked_upload", label, result)
                data[:16] = f"round {r} {n} m".ljust(16).encode()
                await settle()
                result = await load.monolithic_upload("127.0.0.1", self.servers[label].port,
                                                      "bench/chunked", bytes(data), auth)
                self.record("monolithic_upload", label, result)
            for key, chunk in (("chunked_upload", o.chunk_mib), ("monolithic_upload", o.big_mib)):
                await settle()
                result = await asyncio.to_thread(load.hash_and_write, scratch, o.big_mib, chunk,
                                                 300)
                self.record(key, LIMIT, result)
            disk = {}
            for mode in ("fsync", "direct"):
                await settle()
                disk[mode] = await asyncio.to_thread(dd_write, self.work, o.big_mib, mode)
            self.facts.setdefault("disk_rounds", []).append(disk)
            log(f"  disk, round {r}: dd {o.big_mib} MiB buffered + fsync {disk['fsync']:.2f} s, "
                f"O_DIRECT + fsync {disk['direct']:.2f} s")

    async def blob_get(self) -> None:
        o = self.o
        if self.blob is None:
            raise RuntimeError("no blob to read: the push scenario did not run")
        repo, digest, size = self.blob
        # the limit: the same blob's file (in Distribution 2.8's store) through loop.sendfile
        hexdigest = digest.partition(":")[2]
        blob_file = (self.dist.data_dir / "docker" / "registry" / "v2" / "blobs" / "sha256" /
                     hexdigest[:2] / hexdigest / "data")
        limit = SendfileServer("sendfile-limit", self.work, workers=o.workers, file=blob_file)
        manifest = self.work / "limit-manifest.json"
        manifest.write_bytes(small_image("app").manifest)
        # and granian's own file response (ASGI pathsend), the way Moorage sends a whole blob
        file_limit = BareHandler("file-limit", self.work, workers=o.workers, manifest=manifest,
                                 file=blob_file)
        limits = {LIMIT: limit, LIMIT_FILE: file_limit}
        limit.start()
        file_limit.start()
        try:
            for r in range(o.rounds):
                for label in [*self.labels, LIMIT, LIMIT_FILE]:
                    server = limits.get(label) or self.servers[label]
                    auth = await self.bearer(label, f"repository:{repo}:pull")
                    url = f"{server.url}/v2/{repo}/blobs/{digest}"
                    for key, streams, repeats in (("blob_get_1", 1, o.blob_repeats),
                                                  ("blob_get_8", 8, o.blob_repeats_parallel)):
                        result = await asyncio.to_thread(load.curl_blobs, url, auth, streams,
                                                         repeats, size, 300)
                        self.record(key, label, result)
        finally:
            limit.stop()
            file_limit.stop()

    async def manifests(self) -> None:
        o = self.o
        path = "/v2/public/app/manifests/latest"
        accept = {"accept": ACCEPT}
        # the limit: granian with the same workers and a handler returning the same bytes
        manifest = self.work / "limit-manifest.json"
        manifest.write_bytes(small_image("app").manifest)
        limit = BareHandler("bare-limit", self.work, workers=o.workers, manifest=manifest)
        limit.start()
        try:
            for r in range(o.rounds):
                for label in [*self.labels, LIMIT]:
                    url = (limit if label == LIMIT else self.servers[label]).url + path
                    variants = [("anon", {})]
                    if label == M:
                        variants.append(("token", await self.bearer(
                            M, "repository:public/app:pull")))
                    for kind, auth in variants:
                        res = await asyncio.to_thread(load.wrk, url, {**accept, **auth},
                                                      o.manifest_connections, o.duration)
                        self.record(f"manifest_get_{kind}", label, res)
                        res = await asyncio.to_thread(load.ab_head, url, {**accept, **auth},
                                                      o.manifest_connections, o.duration)
                        self.record(f"manifest_head_{kind}", label, res)
        finally:
            limit.stop()

    async def listing(self, key: str, first_page: str, walk_first: str, items_key: str,
                      expect: int, scope: str) -> None:
        """First page (n=100), a walk in pages of n=1000, and a walk as a client that leaves
        the page size to the registry does it (no n; Distribution 2.8 answers the tags list
        in one page whatever n says, so only this walk asks both for the same thing)."""
        o = self.o
        for r in range(o.rounds):
            for label in self.labels:
                server = self.servers[label]
                auth = await self.bearer(label, scope)
                res = await asyncio.to_thread(load.wrk, server.url + first_page, auth,
                                              o.list_connections, o.duration)
                self.record(f"{key}_first_page", label, res)
                res = await load.walks("127.0.0.1", server.port, walk_first, items_key, auth,
                                       o.duration, expect)
                self.record(f"{key}_walk", label, res)
                res = await load.walks("127.0.0.1", server.port, walk_first.partition("?")[0],
                                       items_key, auth, o.duration, expect)
                self.record(f"{key}_all", label, res)
        items = self.facts[f"{key}_first_page_items"] = {}
        for label in self.labels:
            auth = await self.bearer(label, scope)
            conn = Connection("127.0.0.1", self.servers[label].port)
            try:
                resp = await conn.request("GET", first_page, auth)
                items[label] = len(json.loads(resp.body)[items_key] or [])
            finally:
                await conn.close()
        ignoring = [label for label in self.peers if items[label] > 100]
        if ignoring:
            names = " and ".join("2.8.2" if label == D else "v3" for label in ignoring)
            self.rows[f"{key}_first_page"].note = (
                f"Distribution {names} ignore{'s' if len(ignoring) == 1 else ''} n here: its "
                f"'first page' holds all {items[ignoring[0]]:,}")
            self.rows[f"{key}_walk"].note = f"Distribution {names}: one page"

    async def pulls(self) -> None:
        o = self.o
        targets = [load.PullTarget(repo, "v1") for repo in self.pull_repos]
        for r in range(o.rounds):
            for label in self.labels:
                tokens = None
                if label == M:
                    tokens = await tokens_for("127.0.0.1", self.moorage.port, self.moorage.basic,
                                              self.pull_repos)
                res = await load.pull_load("127.0.0.1", self.servers[label].port, targets, tokens,
                                           o.pull_clients, o.duration)
                self.record("pulls", label, res)

    async def sustained(self) -> None:
        o = self.o
        targets = [load.PullTarget(repo, "v1") for repo in self.pull_repos]
        tokens = await tokens_for("127.0.0.1", self.moorage.port, self.moorage.basic,
                                  self.pull_repos)
        # enough clients that a slow pull never holds back the schedule
        res = await load.pull_load("127.0.0.1", self.moorage.port, targets, tokens,
                                   max(o.pull_clients, 64), o.sustained_seconds,
                                   rate=o.sustained_rate)
        self.record("sustained", M, res)

    async def profile_load(self, group: str) -> tuple[str, float, Callable[[float], Any]]:
        """(what, seconds to record, a load that runs for the seconds it is given)."""
        o, url, port = self.o, self.moorage.url, self.moorage.port
        seconds = o.profile_seconds
        pull_auth = await self.bearer(M, "repository:public/app:pull")
        manifest = url + "/v2/public/app/manifests/latest"
        if group == "manifest":
            return ("manifest GET by tag with a bearer token (wrk)", seconds,
                    lambda s: load.wrk(manifest, {"accept": ACCEPT, **pull_auth},
                                       o.manifest_connections, s))
        if group == "anon":
            return ("manifest GET by tag, anonymous (wrk)", seconds,
                    lambda s: load.wrk(manifest, {"accept": ACCEPT}, o.manifest_connections, s))
        if group == "head":
            return ("manifest HEAD by tag with a bearer token (ab)", seconds,
                    lambda s: load.ab_head(manifest, {"accept": ACCEPT, **pull_auth},
                                           o.manifest_connections, s))
        if group in ("tags", "catalog"):  # the full walk: n=1000 pages, one after another
            path, key, scope, expect = (
                ("/v2/bench/tags/tags/list?n=1000", "tags", "repository:bench/tags:pull", o.tags)
                if group == "tags" else
                ("/v2/_catalog?n=1000", "repositories", "registry:catalog:*", self.catalog_total))
            auth = await self.bearer(M, scope)
            return (f"{group} full walks (n=1000), 2 clients", seconds,
                    lambda s: asyncio.run(_gather(*(load.walks("127.0.0.1", port, path, key,
                                                               auth, s, expect)
                                                    for _ in range(2)))))
        if group in ("pulls", "sustained"):
            targets = [load.PullTarget(repo, "v1") for repo in self.pull_repos]
            tokens = await tokens_for("127.0.0.1", port, self.moorage.basic, self.pull_repos)
            rate = o.sustained_rate if group == "sustained" else None
            return (f"pulls, {'%d/s' % rate if rate else f'{o.pull_clients} clients'}", seconds,
                    lambda s: asyncio.run(load.pull_load(
                        "127.0.0.1", port, targets, tokens,
                        max(o.pull_clients, 64) if rate else o.pull_clients, s, rate=rate)))
        if group == "upload":
            data = bytearray(os.urandom(o.big_mib << 20))
            auth = await self.bearer(M, "repository:bench/chunked:pull,push")

            def uploads(s: float) -> list[dict[str, Any]]:
                done, deadline = [], time.perf_counter() + s
                while time.perf_counter() < deadline:
                    data[:16] = os.urandom(16)
                    done.append(asyncio.run(load.chunked_upload(
                        "127.0.0.1", port, "bench/chunked", bytes(data), o.chunk_mib << 20,
                        auth)))
                return done
            return (f"chunked uploads of {o.big_mib} MiB", seconds, uploads)
        if group == "push":
            layout = self.work / "layout-profile"
            _, total, _ = await asyncio.to_thread(push_layout, layout, "bench", o.big_mib,
                                                  o.small_layers, o.small_kib, 99)
            pushes = [r["seconds"] for r in self.rows["push_skopeo"].runs[M]]
            record = min(seconds, statistics.median(pushes)) if pushes else seconds
            return (f"one skopeo push of {total / 1e6:,.0f} MB", max(1.0, record),
                    lambda s: load.skopeo_push(str(layout), "bench", f"{self.moorage.host}/"
                                               "bench/push-profile:latest",
                                               f"{ADMIN_USER}:{ADMIN_PASSWORD}", 600))
        if group == "blob":
            if self.blob is None:
                raise RuntimeError("no blob: the push scenario did not run")
            repo, digest, size = self.blob
            auth = await self.bearer(M, f"repository:{repo}:pull")

            def fetches(s: float) -> list[dict[str, Any]]:
                done, deadline = [], time.perf_counter() + s
                while time.perf_counter() < deadline:
                    done.append(load.curl_blobs(f"{url}/v2/{repo}/blobs/{digest}", auth, 8, 1,
                                                size, 300))
                return done
            return ("blob GET, 8 streams (curl)", seconds, fetches)
        raise ValueError(f"no profile load named {group!r}; choose from {PROFILE_GROUPS}")

    async def profile_groups(self) -> None:
        """py-spy on every Moorage worker under each chosen load, after the measured rounds."""
        from bench.profile import record_workers

        for group in self.o.profile:
            started = time.perf_counter()
            try:
                what, seconds, run_load = await self.profile_load(group)
                log(f"profile {group}: {what}, py-spy for {seconds:.0f} s")
                result = await record_workers(self.moorage.worker_pids(), seconds, RESULTS,
                                              run_load, what)
            except Exception as exc:
                log(f"profile {group} failed: {type(exc).__name__}: {exc}")
                result = {"error": f"{type(exc).__name__}: {exc}"}
            self.profiles[group] = result
            log(f"profile {group} done in {time.perf_counter() - started:.0f} s")

    # -- the whole run ----------------------------------------------------------------------
    async def run(self) -> None:
        o = self.o
        groups: list[tuple[str, list[str], Callable[[], Any]]] = [
            ("push", ["push_skopeo"], self.push),
            ("chunked", ["chunked_upload", "monolithic_upload"], self.chunked),
            ("blob", ["blob_get_1", "blob_get_8"], self.blob_get),
            ("catalog-seed", [], self.seed_catalog),
            ("manifest", ["manifest_get_anon", "manifest_get_token", "manifest_head_anon",
                          "manifest_head_token"], self.manifests),
            ("tags", ["tags_first_page", "tags_walk", "tags_all"],
             lambda: self.listing("tags", "/v2/bench/tags/tags/list?n=100",
                                  "/v2/bench/tags/tags/list?n=1000", "tags", o.tags,
                                  "repository:bench/tags:pull")),
            ("catalog", ["catalog_first_page", "catalog_walk", "catalog_all"],
             lambda: self.listing("catalog", "/v2/_catalog?n=100", "/v2/_catalog?n=1000",
                                  "repositories", self.catalog_total, "registry:catalog:*")),
            ("pulls", ["pulls"], self.pulls),
            ("sustained", ["sustained"], self.sustained),
        ]
        if self.wanted("blob") and not self.wanted("push"):
            self.o.only.append("push")
        for group, keys, action in groups:
            if group != "catalog-seed" and not self.wanted(group):
                continue
            if group == "catalog-seed" and not self.wanted("catalog"):
                continue
            started = time.perf_counter()
            log(f"{group} …")
            try:
                await action()
            except Exception as exc:  # report the scenario as failed and go on
                self.fail(keys or ["catalog_first_page", "catalog_walk", "catalog_all"], exc)
            peaks = {label: server.memory()["peak_pss_mib"]
                     for label, server in self.servers.items()}
            self.facts.setdefault("peak_mib_after", {})[group] = peaks
            log(f"{group} done in {time.perf_counter() - started:.0f} s; peak PSS so far: "
                + ", ".join(f"{label} {peak:.0f} MiB" for label, peak in peaks.items()))
        if o.profile:
            await self.profile_groups()
        for label in self.labels:
            self.rows["memory"].runs[label].append(self.servers[label].memory())


async def settle() -> None:
    """Write every dirty page back before a timed upload or push starts (sync(2), outside
    the timing). Distribution does not fsync what it stores and Moorage does: without this,
    the fsync of Moorage's next upload waited for the gigabyte the peers had just left in the
    page cache (ext4 commits its journal with the data of other files), and its rounds after
    the first ran 3× slower than the first."""
    await asyncio.to_thread(os.sync)


def dd_write(folder: Path, mib: int, mode: str) -> float:
    """Seconds for `dd` to write `mib` MiB of zeros in 1 MiB blocks into `folder` and fsync
    them, through the page cache (mode "fsync") or around it ("direct"): the disk's own state
    in the round, beside the registries' upload figures (no Python, no hashing)."""
    target = folder / "dd-baseline"
    flags = ["conv=fsync"] + (["oflag=direct"] if mode == "direct" else [])
    started = time.perf_counter()
    subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={mib}", *flags],
                   capture_output=True, check=True, timeout=300)
    seconds = time.perf_counter() - started
    target.unlink()
    return seconds


async def _gather(*aws: Any) -> list[Any]:
    return list(await asyncio.gather(*aws))


def main(argv: list[str] | None = None) -> int:
    o = parse_options(argv)
    for tool in ("wrk", "ab", "curl", "skopeo", "docker-registry"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} is missing; run scripts/install-system-deps.sh", file=sys.stderr)
            return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            "machine": machine(), "options": dict(o.__dict__),
                            "background_cpu_busy": cpu_busy(), "loadavg_start": os.getloadavg()}
    log(f"machine: {meta['machine']}; other load before start: "
        f"{meta['background_cpu_busy']:.0%} CPU busy, loadavg {meta['loadavg_start'][0]:.1f}")
    if meta["background_cpu_busy"] > 0.15:
        log("WARNING: the machine is busy with other work; figures will be lower and noisier")
    work = Path(o.work_dir or tempfile.mkdtemp(prefix="moorage-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    v3_binary, v3_source = find_v3(ROOT, work)
    meta["distribution_v3"] = v3_source
    log(f"Distribution v3: {v3_source}" if v3_binary else v3_source)
    bench = Bench(o, work, v3_binary)
    if v3_binary is not None:
        meta["machine"]["distribution_v3"] = bench.servers[V3].binary_version()  # type: ignore[attr-defined]
    began = time.perf_counter()
    try:
        log(f"starting Moorage ({o.workers} workers) and {', '.join(bench.peers)} in {work}")
        for server in bench.servers.values():
            server.start(timeout=300)  # a loaded 2-core machine may take minutes
        log(f"Moorage at {bench.moorage.url} (pid {bench.moorage.proc.pid}, workers "  # type: ignore[union-attr]
            f"{bench.moorage.worker_pids()}), "
            + ", ".join(f"{label} at {bench.servers[label].url}" for label in bench.peers))
        bench.facts["peak_mib_after"] = {"start": {
            label: server.memory()["peak_pss_mib"] for label, server in bench.servers.items()}}
        asyncio.run(bench.seed())
        bench.facts["peak_mib_after"]["seed"] = {
            label: server.memory()["peak_pss_mib"] for label, server in bench.servers.items()}
        asyncio.run(bench.run())
    except BaseException:
        log(f"bench aborted; the servers' logs and data stay in {work}")
        raise
    finally:
        for server in bench.servers.values():
            server.stop()
    if not o.keep:  # 10,000 repositories are many folders: remove them in the background
        cleaner = subprocess.Popen(["rm", "-rf", str(work)])
    text, entries = table(bench.rows, v3_binary is not None)
    meta.update(seconds=round(time.perf_counter() - began), loadavg_end=os.getloadavg(),
                facts=bench.facts, catalog_total=bench.catalog_total,
                server_log_errors={label: server.log_errors()
                                   for label, server in bench.servers.items()})
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S") + ("-quick" if o.quick else "")
    result = {"meta": meta, "table": entries, "markdown": text, "profiles": bench.profiles}
    path = RESULTS / f"bench-{stamp}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    (RESULTS / f"bench-{stamp}.md").write_text(text + "\n")
    shutil.copyfile(path, RESULTS / "latest.json")
    print()
    peers = f"CNCF Distribution {meta['machine']['distribution']}" + (
        f" and {meta['machine']['distribution_v3']}" if v3_binary else "")
    print(f"Moorage ({o.workers} workers, token auth on) vs {peers}; median of {o.rounds} round"
          f"{'s' if o.rounds > 1 else ''}; {meta['machine']['cpus']} CPUs "
          f"({meta['machine']['cpu_model']}); {meta['seconds']} s"
          + (" — QUICK SMOKE RUN, figures not comparable" if o.quick else ""))
    print()
    if v3_binary is None:
        print(f"(Distribution 2.8.2 only: {v3_source})")
    print(text)
    for group, profile in bench.profiles.items():
        print()
        print(profile.get("summary") or f"profile {group}: {profile.get('error')}")
    for label, errors in meta["server_log_errors"].items():
        if errors:
            print(f"\n{label} logged {len(errors)} error lines, e.g.: {errors[:3]}")
    print(f"\nsaved {path.relative_to(ROOT)}")
    if not o.keep:
        log(f"removing {work} …")
        cleaner.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
