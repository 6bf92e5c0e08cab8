"""index.yaml of a chart repository, cold and cached: `make bench` runs it after threat
blocking's.

    PYTHONPATH=src python bench/helm.py [--charts 100] [--versions 10] [--rounds 5]
                                        [--duration 8] [--connections 32] [--quick]

One `moorage serve` (bench/servers.py's Moorage: SQLite and the local disk, token auth, 2
workers, the basic edition). 1,000 chart versions across 100 charts are uploaded through
`POST /chartrepo/NS/api/charts` into a public namespace (8 uploads at a time). Then:

- cold: a new chart version is uploaded (the namespace's generation changes, so every
  worker's cached index is stale) and one GET of index.yaml is timed, `--rounds` times: the
  time to build the index from the metadata rows and serve it (each worker keeps every
  version's rendered text, so a rebuild renders only what is new);
- cached: `wrk` GETs index.yaml anonymously (public namespace: no password hashing in the
  figure) for `--duration` seconds: requests/s and p99; and with `If-None-Match`, the 304s;
- in process: the rows read, and the index rendered from them from nothing and again with
  each version's text kept (ms, best of five).

Prints; asserts nothing. `BENCH_QUICK=1` (or --quick): 20 charts × 10 versions, 2 rounds,
2 seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402
from bench.servers import ADMIN_PASSWORD, ADMIN_USER, Moorage  # noqa: E402
from tests.helm.helpers import small_chart  # noqa: E402

NAMESPACE = "charts"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def seed(server: Moorage, charts: int, versions: int) -> float:
    """Upload the charts; the seconds it took."""
    work = [(f"c{c:03d}", f"1.{v}.0") for c in range(charts) for v in range(versions)]
    resp = httpx.post(f"{server.url}/api/v1/namespaces", auth=(ADMIN_USER, ADMIN_PASSWORD),
                      json={"name": NAMESPACE, "visibility": "public"}, timeout=300)
    if resp.status_code != 201:
        raise RuntimeError(f"namespace: {resp.status_code} {resp.text[:300]}")
    started = time.perf_counter()
    # a bearer token: with Basic credentials, every upload would hash the password again
    with httpx.Client(base_url=server.url, headers={"authorization": bearer(server)},
                      timeout=300) as client:

        def upload(item: tuple[str, str]) -> None:
            resp = client.post(f"/chartrepo/{NAMESPACE}/api/charts", content=small_chart(*item))
            if resp.status_code != 201:
                raise RuntimeError(f"upload {item}: {resp.status_code} {resp.text[:300]}")

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(upload, work))
    return time.perf_counter() - started


def bearer(server: Moorage) -> str:
    resp = httpx.get(f"{server.url}/auth/token", auth=(ADMIN_USER, ADMIN_PASSWORD), timeout=60,
                     params={"service": "moorage", "scope": f"repository:{NAMESPACE}/c:push"})
    resp.raise_for_status()
    return f"Bearer {resp.json()['token']}"


def cold(server: Moorage, rounds: int) -> list[float]:
    """ms of the first GET of index.yaml after a change, once per round."""
    url = f"{server.url}/chartrepo/{NAMESPACE}/index.yaml"
    times = []
    with httpx.Client(headers={"authorization": bearer(server)}, timeout=300) as admin, \
            httpx.Client(timeout=300) as anonymous:
        for r in range(rounds):
            resp = admin.post(f"{server.url}/chartrepo/{NAMESPACE}/api/charts",
                              content=small_chart("fresh", f"2.{r}.0"))
            if resp.status_code != 201:
                raise RuntimeError(f"upload: {resp.status_code} {resp.text[:300]}")
            started = time.perf_counter()
            resp = anonymous.get(url)
            times.append((time.perf_counter() - started) * 1000)
            if resp.status_code != 200 or f"2.{r}.0" not in resp.text:
                raise RuntimeError(f"index.yaml: {resp.status_code} {resp.text[:300]}")
    return times


def in_process(server: Moorage) -> tuple[float, float, float, int]:
    """ms, best of five: the rows read, the index rendered from nothing (a worker's first
    build), rendered again with every version's text kept (a rebuild after a change); the
    body's size."""
    import timeit

    from moorage.helm.index import render
    from moorage.helm.store import ChartStore
    from moorage.db.metadata import open_engine, sqlite_url

    store = ChartStore(open_engine(sqlite_url(server.data_dir)))
    read = min(timeit.repeat(lambda: store.namespace_rows(NAMESPACE), number=1, repeat=5))
    rows = store.namespace_rows(NAMESPACE)
    first = min(timeit.repeat(lambda: render(rows, time.time()), number=1, repeat=5))
    kept: dict = {}
    render(rows, time.time(), kept)
    again = min(timeit.repeat(lambda: render(rows, time.time(), kept), number=1, repeat=5))
    return read * 1000, first * 1000, again * 1000, len(render(rows, time.time()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--charts", type=int, default=100)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--quick", action="store_true",
                        default=os.environ.get("BENCH_QUICK") == "1")
    o = parser.parse_args(argv)
    if o.quick:
        o.charts, o.rounds, o.duration = 20, 2, 2.0
    work = Path(tempfile.mkdtemp(prefix="moorage-bench-helm-"))
    server = Moorage("moorage-helm", work, extra_env={"MOORAGE_EDITION": "basic"})
    server.start()
    try:
        seconds = seed(server, o.charts, o.versions)
        total = o.charts * o.versions
        log(f"seeded {total} chart versions in {seconds:.1f} s "
            f"({total / seconds:.0f} uploads/s, 8 at a time)")
        cold_ms = cold(server, o.rounds)
        log(f"cold: {', '.join(f'{t:.0f}' for t in cold_ms)} ms")
        url = f"{server.url}/chartrepo/{NAMESPACE}/index.yaml"
        etag = httpx.get(url, timeout=60).headers["etag"]
        cached = load.wrk(url, {}, o.connections, o.duration)
        revalidated = load.wrk(url, {"if-none-match": etag}, o.connections, o.duration)
        server.stop()
        read_ms, first_ms, again_ms, size = in_process(server)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    versions = total + o.rounds
    print()
    print(f"Helm chart repository: index.yaml of {versions:,} versions across "
          f"{o.charts + 1} charts ({size / 1024:.0f} KiB), 2 workers")
    print("| case | figure |")
    print("|---|---|")
    print(f"| cold (after a change; built from the rows and served), median of {o.rounds} "
          f"| {statistics.median(cold_ms):.0f} ms |")
    print(f"| cached, {o.connections} conns (wrk, {o.duration:.0f} s) | "
          f"{cached['rps']:,.0f} req/s, p99 {cached['p99_ms']:.1f} ms, "
          f"{cached['errors']} errors |")
    print(f"| If-None-Match → 304, {o.connections} conns | {revalidated['rps']:,.0f} req/s, "
          f"p99 {revalidated['p99_ms']:.1f} ms |")
    print(f"| in process (best of 5): the rows read | {read_ms:.0f} ms |")
    print(f"| in process: rendered from nothing (a worker's first build) | {first_ms:.0f} ms |")
    print(f"| in process: rendered again, each version's text kept (after a change) "
          f"| {again_ms:.0f} ms |")
    print(f"| seeding: uploads through POST /api/charts | {total / seconds:.0f} /s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
