"""Scale-out: the sustained pull run on two replicas beside the embedded defaults (issue 20).

    PYTHONPATH=src python bench/scaleout.py [--seconds 60] [--rate 1000] [--images 1000]
        [--rounds 1] [--embedded-workers 2] [--replica-workers 1] [--blobs redirect|proxy]
        [--profile] [--quick]

Two deployments run side by side, and the same load alternates between them, round by round:

- **embedded**: one `moorage serve` on its defaults (SQLite and the data folder);
- **scale-out**: two `moorage serve` replicas sharing one PostgreSQL, one Redis and one
  SeaweedFS bucket (S3), each with its own data folder, configured as in README "Scale-out"
  and tests/support/scaleout.py (the bench starts the three services with the test suite's
  starters, on loopback, and stops them by PID).

The load is bench/load.py's scheduled pull generator (run.py's "sustained" row): a pull
(manifest by tag, then its config and its layer, each with a bearer token) is due every
1/rate seconds, and a pull's latency counts from when it was due. On the scale-out, pull n
goes to replica n % 2, as a round-robin load balancer would send it, with the tokens one
replica issued (the signing key lives in PostgreSQL). With `--blobs redirect` (the default,
as packaging/scale-out/ configures S3) a blob GET answers 307 to a presigned SeaweedFS URL
and the client fetches it there; `--blobs proxy` has the replicas stream blobs from S3.

Reported per deployment: achieved rate, errors, pulls not started in time, p50/p99 from the
scheduled start; peak memory (PSS) of each Moorage server's process tree and of the shared
services; CPU seconds each process tree spent per 1,000 pulls (the figure to compare on a
shared machine; each tree's CPU while idle, measured for 5 s before each run, is taken
out). Scanning on push is off in both (it would start `syft` while seeding).
`--profile` records py-spy on the replicas' workers during one extra scale-out run.
Every run is bounded in time; only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402
from bench.content import pool, push_image, small_image, tokens_for  # noqa: E402
from bench.servers import (Moorage, cpu_seconds, process_tree, pss_kib,  # noqa: E402
                           status_kib)

RESULTS = ROOT / "bench" / "results"
EMBEDDED, SCALEOUT = "embedded", "scale-out"
BASELINE = "scale-out-baseline"  # --baseline: the same replicas run from another source tree
HANG = 600.0  # bounds a hang only
IDLE_SECONDS = 5.0  # each tree's CPU without load is measured this long before each run


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- process accounting -----------------------------------------------------------------------



class Service:
    """A shared service (PostgreSQL, Redis, SeaweedFS) seen as a process tree: its CPU time
    and a sampled peak PSS, like bench/servers.py does for the servers."""

    def __init__(self, name: str, root_pid: int) -> None:
        self.name, self.root_pid = name, root_pid
        self.peak_pss_kib = 0

    def pids(self) -> list[int]:
        return process_tree(self.root_pid)

    def sample(self) -> None:
        self.peak_pss_kib = max(self.peak_pss_kib, sum(pss_kib(p) for p in self.pids()))

    def memory(self) -> dict[str, Any]:
        self.sample()
        return {"peak_pss_mib": round(self.peak_pss_kib / 1024, 1),
                "total_peak_mib": round(sum(status_kib(p, "VmHWM") for p in self.pids())
                                        / 1024, 1)}


# -- the deployments --------------------------------------------------------------------------
class Deployment:
    def __init__(self, label: str, servers: list[Moorage], services: list[Service]) -> None:
        self.label, self.servers, self.services = label, servers, services

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.servers]

    def trees(self) -> dict[str, list[int]]:
        out = {s.label: s.pids() for s in self.servers}
        out.update({svc.name: svc.pids() for svc in self.services})
        return out

    def cpu(self) -> dict[str, float]:
        return {name: cpu_seconds(pids, waited_children=True)
                for name, pids in self.trees().items()}


def start_embedded(work: Path, workers: int) -> Deployment:
    server = Moorage("embedded", work / "embedded", workers=workers,
                     extra_env={"MOORAGE_SCAN_ON_PUSH": "false"})
    server.work.mkdir(parents=True, exist_ok=True)
    server.start(timeout=HANG)
    return Deployment(EMBEDDED, [server], [])


class SharedServices:
    """PostgreSQL, Redis and SeaweedFS of the scale-out, started with the test suite's
    starters (tests/support/) and stopped by PID."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.postgres: Any = None
        self.redis: Any = None
        self.s3: Any = None

    def start(self) -> "SharedServices":
        from tests.support.postgres import PostgresCluster
        from tests.support.redis_server import RedisServer
        from tests.support.seaweed import SeaweedS3

        self.postgres = PostgresCluster().start()
        self.redis = RedisServer().start()
        self.s3 = SeaweedS3.start(self.work / "s3")
        return self

    def env(self, redirect: bool) -> dict[str, str]:
        return {"MOORAGE_DATABASE_URL": self.postgres.url(),
                "MOORAGE_STORAGE_URL": self.s3.storage_url("moorage", redirect=redirect),
                "MOORAGE_REDIS_URL": self.redis.url, **self.s3.env()}

    def services(self) -> list[Service]:
        pg_pid = int((self.postgres.data / "postmaster.pid").read_text().split()[0])
        return [Service("postgresql", pg_pid), Service("redis", self.redis.proc.pid),
                Service("seaweedfs", self.s3.proc.pid)]

    def stop(self) -> None:
        for part in (self.s3, self.redis, self.postgres):
            if part is not None:
                try:
                    part.stop()
                except Exception:  # noqa: BLE001 - keep stopping the others
                    log(f"stopping {type(part).__name__}: {traceback.format_exc(limit=1)}")


def start_scaleout(work: Path, shared: SharedServices, replicas: int, workers: int,
                   redirect: bool, baseline: str = "") -> Deployment:
    """With `baseline` (a `src` folder), replicas of that code on the same services and
    data (for before/after in alternation; migrated once, by this tree's code)."""
    env = {**shared.env(redirect), "MOORAGE_SCAN_ON_PUSH": "false"}
    if baseline:
        env["PYTHONPATH"] = str(Path(baseline).resolve())
        servers = []
        for i in range(replicas):
            replica = Moorage(f"base{i}", work / f"base{i}", workers=workers, extra_env=env)
            replica.work.mkdir(parents=True, exist_ok=True)
            replica.start(timeout=HANG)
            servers.append(replica)
        return Deployment(BASELINE, servers, shared.services())
    migrate = subprocess.run([sys.executable, "-m", "moorage", "migrate"],
                             env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **env},
                             capture_output=True, text=True, timeout=HANG)
    if migrate.returncode != 0:
        raise RuntimeError(f"moorage migrate failed: {migrate.stderr[-2000:]}")
    servers = []
    for i in range(replicas):  # one after the other: the first creates the administrator
        replica = Moorage(f"replica{i}", work / f"replica{i}", workers=workers, extra_env=env)
        replica.work.mkdir(parents=True, exist_ok=True)
        replica.start(timeout=HANG)
        servers.append(replica)
    return Deployment(SCALEOUT, servers, shared.services())


# -- seeding and the load ---------------------------------------------------------------------
async def seed(dep: Deployment, repos: list[str], connections: int) -> None:
    """The same small one-layer images on each deployment, pushed through its replicas in
    turn (a push through one replica is served by every other one)."""
    images = [small_image(f"pull-{i}") for i in range(len(repos))]
    items = list(zip(repos, images))
    per = [items[i::len(dep.servers)] for i in range(len(dep.servers))]
    await asyncio.gather(*(
        pool("127.0.0.1", server.port, connections, part,
             lambda c, item, server=server: push_image(c, item[0], "v1", item[1],
                                                       {"authorization": server.basic},
                                                       one_request=True))
        for server, part in zip(dep.servers, per) if part))


async def sustained(dep: Deployment, repos: list[str], seconds: float, rate: float,
                    clients: int, redirect: bool) -> dict[str, Any]:
    first = dep.servers[0]
    tokens = await tokens_for("127.0.0.1", first.port, first.basic, repos)
    targets = [load.PullTarget(repo, "v1") for repo in repos]
    # what each tree spends doing nothing (job polling, health loops): subtracted below, or
    # a slow run would charge it to its few pulls
    idle_before, idle_started = dep.cpu(), time.perf_counter()
    await asyncio.sleep(IDLE_SECONDS)
    before = dep.cpu()
    idle = {name: (before[name] - idle_before.get(name, 0.0))
            / (time.perf_counter() - idle_started) for name in before}
    res = await load.pull_load("127.0.0.1", dep.ports, targets, tokens, clients, seconds,
                               rate=rate, follow_redirects=redirect)
    after = dep.cpu()
    for svc in dep.services:
        svc.sample()
    pulls = max(1, res["pulls"])
    res["idle_cores"] = {name: round(v, 3) for name, v in idle.items()}
    res["cpu_s_per_1k_pulls"] = {
        name: round(max(0.0, after[name] - before.get(name, 0.0) - idle[name] * res["seconds"])
                    / pulls * 1000, 2) for name in after}
    res["cpu_s_per_1k_pulls_total"] = round(sum(res["cpu_s_per_1k_pulls"].values()), 2)
    return res


def fmt(res: dict[str, Any]) -> str:
    return (f"{res['pulls_per_s']:,.0f} pulls/s, {res['errors']} errors, "
            f"{res.get('not_started', 0):,} not started in time, p50 {res['p50_ms']:.0f} ms, "
            f"p99 {res['p99_ms']:.0f} ms")


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate (its own p50/p99, errors summed over the runs)."""
    ordered = sorted(runs, key=lambda r: r["pulls_per_s"])
    mid = dict(ordered[len(ordered) // 2])
    mid["errors_all_rounds"] = sum(r["errors"] for r in runs)
    mid["not_started_all_rounds"] = sum(r.get("not_started", 0) for r in runs)
    return mid


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="each sustained run [60]")
    p.add_argument("--rate", type=float, default=1000.0, help="pulls per second [1000]")
    p.add_argument("--images", type=int, default=1000, help="distinct images pulled [1000]")
    p.add_argument("--rounds", type=int, default=1, help="alternating rounds [1]")
    p.add_argument("--clients", type=int, default=64, help="concurrent pull clients [64]")
    p.add_argument("--embedded-workers", type=int, default=2)
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--replica-workers", type=int, default=1,
                   help="workers per replica [1: two cores also run PostgreSQL and Redis]")
    p.add_argument("--blobs", choices=("redirect", "proxy"), default="redirect",
                   help="S3 blobs: 307 to a presigned URL, or streamed by the replica")
    p.add_argument("--profile", action="store_true",
                   help="py-spy the replicas' workers during one more scale-out run")
    p.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1",
                   help="tiny sizes, 3-second runs: checks the harness, not the figures")
    p.add_argument("--only", choices=(EMBEDDED, SCALEOUT), help="run one deployment only")
    p.add_argument("--baseline", default="",
                   help="a `src` folder of another Moorage (e.g. main's, from git archive): "
                        "its replicas run on the same services and data, alternating with "
                        "this tree's, for before/after")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    o = p.parse_args(argv)
    if o.quick:
        o.seconds, o.rate, o.images, o.rounds = 3.0, 100.0, 20, 1
    redirect = o.blobs == "redirect"
    repos = [f"pull/img-{i:04d}" for i in range(o.images)]
    work = Path(tempfile.mkdtemp(prefix="moorage-bench-scaleout-"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                 capture_output=True, text=True).stdout.strip(),
        "options": vars(o), "loadavg_start": os.getloadavg(), "cpus": os.cpu_count()}
    log(f"work folder {work}; load average {meta['loadavg_start'][0]:.1f} on {meta['cpus']} CPUs")
    shared = SharedServices(work)
    deps: list[Deployment] = []
    runs: dict[str, list[dict[str, Any]]] = {EMBEDDED: [], SCALEOUT: [], BASELINE: []}
    profile: dict[str, Any] | None = None
    try:
        if o.only != SCALEOUT:
            deps.append(start_embedded(work, o.embedded_workers))
            log(f"embedded: {deps[0].servers[0].url}, {o.embedded_workers} workers")
        if o.only != EMBEDDED:
            shared.start()
            log(f"PostgreSQL :{shared.postgres.port}, Redis :{shared.redis.port}, "
                f"SeaweedFS {shared.s3.endpoint}")
            deps.append(start_scaleout(work, shared, o.replicas, o.replica_workers, redirect))
            log(f"scale-out: {', '.join(s.url for s in deps[-1].servers)}, "
                f"{o.replica_workers} worker(s) each, blobs: {o.blobs}")
            if o.baseline:
                deps.append(start_scaleout(work, shared, o.replicas, o.replica_workers,
                                           redirect, o.baseline))
                log(f"baseline replicas ({o.baseline}): "
                    f"{', '.join(s.url for s in deps[-1].servers)}")
        for dep in deps:
            if dep.label == BASELINE:
                continue  # same database and bucket as the scale-out: seeded with it
            started = time.perf_counter()
            asyncio.run(seed(dep, repos, 8))
            log(f"seeded {dep.label}: {len(repos):,} images "
                f"({time.perf_counter() - started:.0f} s)")
        for r in range(o.rounds):
            order = deps if r % 2 == 0 else deps[::-1]
            for dep in order:
                res = asyncio.run(sustained(dep, repos, o.seconds, o.rate, o.clients,
                                            redirect and dep.label != EMBEDDED))
                runs[dep.label].append(res)
                log(f"round {r + 1}/{o.rounds} {dep.label}: {fmt(res)}; CPU s per 1k "
                    f"pulls {res['cpu_s_per_1k_pulls']}; client {res['client_cpu']:.2f} cores"
                    + (f"; e.g. {res['error_samples'][:2]}" if res["errors"] else ""))
        if o.profile and deps[-1].label != EMBEDDED:
            from bench.profile import record_workers

            dep = deps[-1]
            pids = [p for s in dep.servers for p in s.worker_pids()]
            first = dep.servers[0]
            tokens = asyncio.run(tokens_for("127.0.0.1", first.port, first.basic, repos))
            targets = [load.PullTarget(repo, "v1") for repo in repos]
            profile = asyncio.run(record_workers(
                pids, min(o.seconds, 20.0), RESULTS,
                lambda s: asyncio.run(load.pull_load("127.0.0.1", dep.ports, targets, tokens,
                                                     o.clients, s, rate=o.rate,
                                                     follow_redirects=redirect)),
                what=f"scale-out sustained {o.rate:.0f} pulls/s"))
            log(profile.get("summary") or f"profile: {profile.get('error')}")
        memory = {dep.label: {**{s.label: s.memory() for s in dep.servers},
                              **{svc.name: svc.memory() for svc in dep.services}}
                  for dep in deps}
        log_errors = {s.label: s.log_errors() for dep in deps for s in dep.servers}
    finally:
        for dep in deps:
            for server in dep.servers:
                server.stop()
        shared.stop()
        if not o.keep:
            subprocess.run(["rm", "-rf", str(work)], timeout=HANG)
    meta.update(loadavg_end=os.getloadavg())
    table = render(o, runs, memory)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S") + ("-quick" if o.quick else "")
    out = RESULTS / f"scaleout-{stamp}.json"
    out.write_text(json.dumps({"meta": meta, "runs": runs, "memory": memory,
                               "server_log_errors": log_errors, "markdown": table,
                               "profile": profile}, indent=2, default=str))
    print()
    print(f"Scale-out: sustained {o.rate:,.0f} pulls/s for {o.seconds:.0f} s "
          f"({o.rounds} round{'s' if o.rounds > 1 else ''}, alternating); load average "
          f"{meta['loadavg_start'][0]:.1f} → {meta['loadavg_end'][0]:.1f} on {meta['cpus']} CPUs"
          + (" — QUICK RUN, figures mean nothing" if o.quick else ""))
    print(table)
    if profile and profile.get("summary"):
        print()
        print(profile["summary"])
    for label, errors in log_errors.items():
        if errors:
            print(f"\n{label} logged {len(errors)} error lines, e.g.: {errors[:3]}")
    print(f"\nsaved {out.relative_to(ROOT)}")
    failed = any(not runs[dep.label] for dep in deps)
    return 1 if failed else 0


def render(o: argparse.Namespace, runs: dict[str, list[dict[str, Any]]],
           memory: dict[str, dict[str, Any]]) -> str:
    goal = o.rate * 0.98
    rows = ["| deployment | achieved | errors | not started in time | p50 | p99 "
            "| CPU s / 1k pulls above idle (each process tree) | peak memory (PSS) | goal met? |",
            "|---|---|---|---|---|---|---|---|---|"]
    names = {EMBEDDED: f"embedded: 1 server, {o.embedded_workers} workers, SQLite, data folder",
             SCALEOUT: f"scale-out: {o.replicas} replicas × {o.replica_workers} worker"
                       f"{'s' if o.replica_workers > 1 else ''}, PostgreSQL + Redis + "
                       f"SeaweedFS S3 ({'redirect' if o.blobs == 'redirect' else 'proxied'} "
                       f"blobs), round-robin"}
    names[BASELINE] = names[SCALEOUT].replace("scale-out:", f"baseline ({o.baseline}):")
    for label in (EMBEDDED, SCALEOUT, *([BASELINE] if o.baseline else [])):
        if o.only and label != o.only and label != BASELINE:
            continue
        if not runs[label]:
            rows.append(f"| {names[label]} | failed | | | | | | | NOT MET |")
            continue
        m = median_run(runs[label])
        cpu = ", ".join(f"{k} {v:.2f}" for k, v in m["cpu_s_per_1k_pulls"].items())
        mem = ", ".join(f"{k} {v['peak_pss_mib']:.0f} MiB"
                        for k, v in memory.get(label, {}).items())
        met = m["pulls_per_s"] >= goal and not m["errors_all_rounds"]
        rows.append(f"| {names[label]} | {m['pulls_per_s']:,.0f} pulls/s "
                    f"({m['pulls']:,} in {m['seconds']:.0f} s) | {m['errors_all_rounds']} "
                    f"| {m['not_started_all_rounds']:,} | {m['p50_ms']:.0f} ms "
                    f"| {m['p99_ms']:.0f} ms | {cpu} (total {m['cpu_s_per_1k_pulls_total']:.2f}) "
                    f"| {mem} | {'yes' if met else 'NOT MET'} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
