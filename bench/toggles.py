"""What audit, metrics and blocking policies each cost on the hottest requests: `make bench`.

    PYTHONPATH=src python bench/toggles.py [--rounds 3] [--duration 8] [--connections 64]
                                           [--clients 16] [--quick]

Three `moorage serve` processes (bench/servers.py's Moorage: SQLite and the local disk, token
auth, 2 workers, the advanced edition, scanning on push off), seeded alike by
bench/blocking.py's `seed`: one small image in `open` (no pull policy) and in `guarded` (all
three pull rules, the image scanned, clean and signed, so it passes them):

- `on`: everything on, as shipped; pulls from `guarded`;
- `blocking off`: the same server, pulls from `open` (a namespace without a pull policy: how
  an instance turns blocking off, `moorage policy pull … ` / the namespace's pull policy);
- `audit off` and `metrics off`: a server started through bench/toggled.py, which takes the
  audit recorder, or the request metrics, out of each worker (Moorage has no setting for
  either), pulls from `guarded`.

For each case, alternating (the order rotates each round): `wrk` GETs the manifest by tag with
a bearer token on `--connections` connections, then `--clients` clients pull the image
(manifest by tag, config, layer) back to back. Besides the rate, the CPU time the server's
processes spent (utime + stime from /proc/PID/stat of granian's main process and workers,
every thread included) is divided by the requests answered: µs of CPU per request, which the
load of a shared machine disturbs much less than the rate. The cost of a layer is the
median µs per request with it on less the median with it off. Prints; asserts nothing.
`BENCH_QUICK=1` (or --quick): one round of 2 seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402
from bench.blocking import bearer, check_passes, seed  # noqa: E402
from bench.content import ACCEPT  # noqa: E402
from bench.servers import ADMIN_PASSWORD, ADMIN_USER, Moorage, cpu_seconds  # noqa: E402

HANG = 300.0
ENV = {"MOORAGE_SCAN_ON_PUSH": "false", "MOORAGE_SCAN_SYFT": "off",
       "MOORAGE_EDITION": "advanced"}
# case -> (server, namespace); the first is the baseline, each other one takes one layer out
CASES = {"on": ("on", "guarded"), "blocking off": ("on", "open"),
         "audit off": ("audit", "guarded"), "metrics off": ("metrics", "guarded")}
LAYER = {"blocking off": "blocking policies (3 pull rules, image passes)",
         "audit off": "audit log", "metrics off": "request metrics"}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)



def measured(server: Moorage, run: Any, count_key: str) -> dict[str, Any]:
    """`run()`'s result, with the server's CPU µs per counted request added."""
    pids = server.pids()
    before = cpu_seconds(pids)
    res = run()
    used = cpu_seconds(pids) - before
    res["server_cpu_s"] = used
    res["cpu_us"] = used / res[count_key] * 1e6 if res[count_key] else float("nan")
    return res


def one_round(servers: dict[str, Moorage], case: str,
              o: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    which, ns = CASES[case]
    server = servers[which]
    # a new token each time: one lives 5 minutes, and seeding a loaded machine takes longer
    token = bearer(server)
    headers = {"authorization": f"Bearer {token}", "accept": ACCEPT}
    get = measured(server, lambda: load.wrk(f"{server.url}/v2/{ns}/app/manifests/latest",
                                            headers, o.connections, o.duration), "requests")
    repo = f"{ns}/app"
    pulls = measured(server, lambda: asyncio.run(load.pull_load(
        "127.0.0.1", server.port, [load.PullTarget(repo, "latest")], {repo: token},
        o.clients, o.duration)), "pulls")
    pulls["requests"] = pulls["pulls"] * 3  # manifest, config, layer
    pulls["cpu_us_per_request"] = pulls["cpu_us"] / 3
    return get, pulls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true",
                        default=os.environ.get("BENCH_QUICK") == "1")
    o = parser.parse_args(argv)
    if o.quick:
        o.rounds, o.duration = 1, 2.0
    work = Path(tempfile.mkdtemp(prefix="moorage-bench-toggles-"))
    servers = {"on": Moorage("moorage-on", work / "on", extra_env=ENV),
               "audit": Moorage("moorage-audit-off", work / "audit", extra_env=ENV,
                                off=("audit",)),
               "metrics": Moorage("moorage-metrics-off", work / "metrics", extra_env=ENV,
                                  off=("metrics",))}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {c: {"get": [], "pulls": []}
                                                         for c in CASES}
    errors_logged: dict[str, list[str]] = {}
    memory: dict[str, dict[str, Any]] = {}
    try:
        for which, server in servers.items():
            server.work.mkdir(parents=True)
            server.workers = o.workers
            server.start(timeout=HANG)  # bounds a hang only: a loaded machine starts slowly
            with httpx.Client(base_url=f"{server.url}/api/v1", timeout=120,
                              auth=(ADMIN_USER, ADMIN_PASSWORD)) as client:
                seed(server, client)
            check_passes(server, bearer(server))
            log(f"{server.label}: seeded (open, and guarded with its policy, scanned, signed)")
        order = list(CASES)
        for r in range(o.rounds):
            for case in order[r % len(order):] + order[:r % len(order)]:
                get, pulls = one_round(servers, case, o)
                runs[case]["get"].append(get)
                runs[case]["pulls"].append(pulls)
                log(f"round {r + 1}/{o.rounds} {case}: GET {get['rps']:,.0f} req/s, "
                    f"{get['cpu_us']:.0f} µs CPU/req, p99 {get['p99_ms']:.1f} ms; pulls "
                    f"{pulls['pulls_per_s']:,.0f}/s, {pulls['cpu_us']:.0f} µs CPU/pull; "
                    f"{get['errors'] + pulls['errors']} errors")
        errors_logged = {s.label: s.log_errors() for s in servers.values()}
        memory = {s.label: s.memory() for s in servers.values()}
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(runs, o, errors_logged, memory)
    return 0


def med(values: list[dict[str, Any]], key: str) -> float:
    return statistics.median(v[key] for v in values)


def report(runs: dict[str, dict[str, list[dict[str, Any]]]], o: argparse.Namespace,
           errors_logged: dict[str, list[str]], memory: dict[str, dict[str, Any]]) -> None:
    print()
    print(f"On and off: manifest GET by tag ({o.connections} conns, bearer token, wrk) and "
          f"pulls ({o.clients} clients: manifest by tag, config, layer), {o.workers} workers; "
          f"medians of {o.rounds} rounds of {o.duration:.0f} s, alternating. CPU: the server's "
          f"processes, µs per request")
    print("| case | GET rate | GET p99 | GET CPU/req | pulls | pull CPU/request | errors |")
    print("|---|---|---|---|---|---|---|")
    for case, by in runs.items():
        errors = sum(x["errors"] for x in by["get"] + by["pulls"])
        print(f"| {case} | {med(by['get'], 'rps'):,.0f} req/s | "
              f"{med(by['get'], 'p99_ms'):.1f} ms | {med(by['get'], 'cpu_us'):.0f} µs | "
              f"{med(by['pulls'], 'pulls_per_s'):,.0f} pulls/s | "
              f"{med(by['pulls'], 'cpu_us_per_request'):.0f} µs | {errors} |")
    base_get, base_pull = (med(runs["on"]["get"], "cpu_us"),
                           med(runs["on"]["pulls"], "cpu_us_per_request"))
    print()
    print("| layer | cost per manifest GET | cost per pull request | GET rate off / on |")
    print("|---|---|---|---|")
    for case, layer in LAYER.items():
        d_get = base_get - med(runs[case]["get"], "cpu_us")
        d_pull = base_pull - med(runs[case]["pulls"], "cpu_us_per_request")
        ratio = med(runs[case]["get"], "rps") / med(runs["on"]["get"], "rps")
        print(f"| {layer} | {d_get:+.0f} µs ({d_get / base_get:+.0%}) | {d_pull:+.0f} µs "
              f"({d_pull / base_pull:+.0%}) | {ratio:.2f} |")
    print("Peak memory (PSS of the server's process tree, sampled each second): " + ", ".join(
        f"{label} {m['peak_pss_mib']:.0f} MiB (VmHWM of each process: "
        f"{' + '.join(str(round(p['peak_mib'])) for p in m['processes'])} MiB)"
        for label, m in memory.items()))
    for label, lines in errors_logged.items():
        if lines:
            print(f"{label} logged errors: {lines[:3]}")
    print(json.dumps({"runs": runs, "server_errors": errors_logged, "memory": memory}),
          file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
