"""The scaling series: how Moorage's costs grow with the size of an instance (issue 20).

    PYTHONPATH=src python bench/scaling.py [--quick] [--seconds 6] [--only tags,repos,gc]

One embedded `moorage serve` (2 workers, token auth on). One small image is pushed through
the API; everything else is written straight into its SQLite database and blob folder, in
one transaction per step with `executemany` on the driver (1M tags in well under a minute
on an idle core), as the push path would have recorded it. After each step the database's
change signal is bumped, as any commit does, so the workers drop what they cached.

* tags: repositories of 1k, 100k and 1M tags (`scale/tags-N`); manifest GET by tag (a tag
  in the middle) with a bearer token, and the first page of the tags list (`?n=100`), wrk.
  Then every size in alternation, 3 rounds: their medians give the growth and the goal (the
  largest repository answers a manifest GET by tag at >= 90% of the 1k-tag rate).
* repos: 1k, 5k and 100k repositories (half in the namespace `big`, the rest 100 a
  namespace); the first catalog page (`/v2/_catalog?n=100`) and the first page of `big`'s
  listing in the management API the console uses (`/api/v1/repositories?namespace=big
  &limit=100`, with a personal access token); at 5,000 repositories (and at the largest
  size), the console's repository list page signed in as the administrator (bench/console.py).
* gc: 10k and 100k blobs (files in the store and rows: half referenced by manifests, a
  quarter linked but unreferenced, a quarter orphans), collected by `moorage gc --grace 1h`
  as a user runs it (an API job on the server); its time, and its time per blob.
* memory: the peak PSS of the server's whole process tree during each step (bench/servers.py),
  the push of the first image (whose scan on push runs syft as a child process) apart.

Each series prints its cost (time per request, or per blob) at each size, the growth factor
between the smallest and the largest size, and says "flat", "logarithmic" or "grows"; when it
grows, a py-spy profile of the workers under that load (bench/profile.py). `--quick` (or
BENCH_QUICK=1) uses small sizes and 2-second loads. Results go to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench import load  # noqa: E402
from bench.console import push, sign_in  # noqa: E402
from bench.content import ACCEPT, token  # noqa: E402
from bench.servers import ADMIN_PASSWORD, ADMIN_USER, Moorage  # noqa: E402

FULL = {"tags": [1_000, 100_000, 1_000_000], "repos": [1_000, 5_000, 100_000],
        "gc": [10_000, 100_000]}
QUICK = {"tags": [1_000, 10_000], "repos": [500, 2_000], "gc": [1_000, 4_000]}
CONSOLE_AT = 5_000  # the console's goal is stated for 5,000 repositories (issue 14)
MIB = 1024
MEMORY_GOAL_MIB = 300
TAG_GOAL = 0.90
OLD = 7 * 86400  # seeded content is a week old: past any grace period


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- seeding ----------------------------------------------------------------------------------
class Seeder:
    """Bulk writes on the server's own SQLite file, one transaction per call."""

    def __init__(self, data_dir: Path, manifest_digest: str, blob_sizes: dict[str, int]):
        self.data_dir = data_dir
        self.database = data_dir / "moorage.db"
        self.digest = manifest_digest
        self.blob_sizes = blob_sizes
        self.repo_count = 0  # repositories the `repos` series has written

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.database, timeout=120, isolation_level=None)
        conn.execute("PRAGMA synchronous=OFF")  # seeding is not what we measure
        return conn

    def _bump(self) -> None:
        """What every commit through Moorage does: the workers' cached answers go stale."""
        from moorage.db.changes import ChangeSignal

        ChangeSignal(Path(str(self.database) + ".changes")).bump()

    def _transaction(self, work: Callable[[sqlite3.Connection], None]) -> float:
        started = time.perf_counter()
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                work(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()
        self._bump()
        return time.perf_counter() - started

    @staticmethod
    def _namespace(conn: sqlite3.Connection, name: str, now: float) -> int:
        found = conn.execute("SELECT id FROM namespaces WHERE name = ?", (name,)).fetchone()
        if found:
            return int(found[0])
        return int(conn.execute(
            "INSERT INTO namespaces (name, visibility, description, credential_free_pull, "
            "storage_used, created_at) VALUES (?, 'private', '', 0, 0, ?)",
            (name, now)).lastrowid)

    def _repositories(self, conn: sqlite3.Connection, ns_id: int, names: list[str],
                      now: float, tag: str | None = "latest") -> list[int]:
        """Repositories holding the pushed image (blob links, manifest link, a tag)."""
        first = (conn.execute("SELECT max(id) FROM repositories").fetchone()[0] or 0) + 1
        ids = list(range(first, first + len(names)))
        conn.executemany("INSERT INTO repositories (id, name, namespace_id, visibility, "
                         "description, created_at) VALUES (?, ?, ?, NULL, '', ?)",
                         [(i, n, ns_id, now - len(names) + k)
                          for k, (i, n) in enumerate(zip(ids, names))])
        conn.executemany("INSERT INTO repository_blobs (repository_id, digest, created_at, "
                         "touched_at) VALUES (?, ?, ?, ?)",
                         ((i, d, now, now) for i in ids for d in self.blob_sizes))
        conn.executemany("INSERT INTO repository_manifests (repository_id, digest, pushed_at) "
                         "VALUES (?, ?, ?)", ((i, self.digest, now - k) for k, i in enumerate(ids)))
        if tag:
            conn.executemany("INSERT INTO tags (repository_id, name, digest, updated_at) "
                             "VALUES (?, ?, ?, ?)",
                             ((i, tag, self.digest, now - k) for k, i in enumerate(ids)))
        conn.executemany(
            "INSERT INTO namespace_blobs (namespace_id, digest, refs) VALUES (?, ?, ?) "
            "ON CONFLICT (namespace_id, digest) DO UPDATE SET refs = refs + excluded.refs",
            [(ns_id, d, len(ids)) for d in self.blob_sizes])
        conn.execute("UPDATE namespaces SET storage_used = ? WHERE id = ?",
                     (sum(self.blob_sizes.values()), ns_id))
        return ids

    def tags(self, repo: str, count: int) -> float:
        """A repository of `count` tags t0000000…, pushed a second apart."""
        def work(conn: sqlite3.Connection) -> None:
            now = time.time()
            ns_id = self._namespace(conn, "scale", now)
            (repo_id,) = self._repositories(conn, ns_id, [repo], now, tag=None)
            conn.executemany("INSERT INTO tags (repository_id, name, digest, updated_at) "
                             "VALUES (?, ?, ?, ?)",
                             ((repo_id, f"t{i:07d}", self.digest, now - count + i)
                              for i in range(count)))
        return self._transaction(work)

    def repositories(self, total: int) -> float:
        """Up to `total` repositories: half in `big`, the rest in namespaces of 100."""
        adding = total - self.repo_count
        start = self.repo_count

        def work(conn: sqlite3.Connection) -> None:
            now = time.time()
            big = [f"big/app-{i:06d}" for i in range(start, total) if i % 2 == 0]
            if big:
                self._repositories(conn, self._namespace(conn, "big", now), big, now)
            rest = [i for i in range(start, total) if i % 2 == 1]
            by_ns: dict[str, list[str]] = {}
            for i in rest:
                by_ns.setdefault(f"n{i // 200:04d}", []).append(f"n{i // 200:04d}/app-{i:06d}")
            for ns, names in by_ns.items():
                self._repositories(conn, self._namespace(conn, ns, now), names, now)
        took = self._transaction(work) if adding > 0 else 0.0
        self.repo_count = max(total, self.repo_count)
        return took

    def garbage(self, count: int, label: str) -> tuple[float, int]:
        """`count` blobs, in the store and in the database: half referenced by manifests of
        `scale/gc-LABEL` (kept), a quarter linked to it but unreferenced (link and blob go),
        a quarter orphans (blob goes). Returns (seconds, blobs a collection should delete)."""
        blob_root = self.data_dir / "blobs" / "sha256"
        started = time.perf_counter()
        digests: list[str] = []
        for i in range(count):
            data = f"scale-gc {label} {i}\n".encode()
            hexpart = hashlib.sha256(data).hexdigest()
            folder = blob_root / hexpart[:2]
            folder.mkdir(mode=0o700, exist_ok=True)
            path = folder / hexpart
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
                f.write(data)
            digests.append("sha256:" + hexpart)
        kept = [d for i, d in enumerate(digests) if i % 4 < 2]
        stale = [d for i, d in enumerate(digests) if i % 4 == 2]
        size = len(f"scale-gc {label} 0\n")

        def work(conn: sqlite3.Connection) -> None:
            now = time.time()
            ns_id = self._namespace(conn, "scale", now)
            (repo_id,) = self._repositories(conn, ns_id, [f"scale/gc-{label}"], now)
            conn.executemany("INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, ?)",
                             ((d, size, now - OLD) for d in digests))
            conn.executemany("INSERT INTO repository_blobs (repository_id, digest, created_at, "
                             "touched_at) VALUES (?, ?, ?, ?)",
                             ((repo_id, d, now - OLD, now - OLD) for d in kept + stale))
            for m in range(0, len(kept), 100):  # one image manifest per 100 kept layers
                layers = kept[m:m + 100]
                content = json.dumps({"schemaVersion": 2,
                                      "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                      "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                                                 "digest": layers[0], "size": size},
                                      "layers": [{"mediaType": "application/octet-stream",
                                                  "digest": d, "size": size} for d in layers]},
                                     separators=(",", ":")).encode()
                digest = "sha256:" + hashlib.sha256(content).hexdigest()
                conn.execute("INSERT INTO manifests (digest, media_type, size, content, "
                             "created_at) VALUES (?, ?, ?, ?, ?)",
                             (digest, "application/vnd.oci.image.manifest.v1+json",
                              len(content), content, now - OLD))
                conn.executemany("INSERT INTO manifest_references (manifest_digest, "
                                 "target_digest, kind) VALUES (?, ?, 'blob')",
                                 ((digest, d) for d in layers))
                conn.execute("INSERT INTO repository_manifests (repository_id, digest, "
                             "pushed_at) VALUES (?, ?, ?)", (repo_id, digest, now - OLD))
        self._transaction(work)
        return time.perf_counter() - started, count - len(kept)


# -- measuring ----------------------------------------------------------------------------------
def cost_verdict(costs: list[float], sizes: list[int]) -> dict[str, Any]:
    """Growth of a cost from the smallest to the largest size: "flat" within 25%,
    "logarithmic" within 25% of log(n2)/log(n1), else "grows" (with the log-log slope:
    1.0 is linear)."""
    growth = costs[-1] / costs[0] if costs[0] > 0 else math.inf
    ratio = sizes[-1] / sizes[0]
    log_bound = 1.25 * math.log(sizes[-1]) / math.log(sizes[0])
    verdict = "flat" if growth <= 1.25 else "logarithmic" if growth <= log_bound else "grows"
    slope = math.log(growth) / math.log(ratio) if growth > 0 and ratio > 1 else 0.0
    return {"growth": round(growth, 2), "size_ratio": ratio, "verdict": verdict,
            "slope": round(slope, 2)}


class Bench:
    def __init__(self, server: Moorage, seeder: Seeder, seconds: float, connections: int,
                 work: Path) -> None:
        self.server, self.seeder, self.seconds, self.conns = server, seeder, seconds, connections
        self.work = work
        self.results: dict[str, Any] = {"series": {}, "memory": []}
        self._bearer: dict[str, tuple[str, float]] = {}
        self._pat = ""

    def bearer(self, scope: str) -> dict[str, str]:
        """A token for `scope`, fetched again after a minute (tokens live a few minutes,
        and seeding 1M tags takes longer than that on a busy machine)."""
        held = self._bearer.get(scope)
        if held is None or time.monotonic() - held[1] > 60:
            held = self._bearer[scope] = (asyncio.run(token(
                "127.0.0.1", self.server.port, self.server.basic, [scope])), time.monotonic())
        return {"authorization": f"Bearer {held[0]}"}

    def pat(self) -> dict[str, str]:
        """A personal access token of the administrator: what the CLI sends to the API."""
        if not self._pat:
            answer = httpx.post(f"{self.server.url}/api/v1/tokens", json={"name": "scaling"},
                                headers={"authorization": self.server.basic}, timeout=60)
            answer.raise_for_status()
            self._pat = answer.json()["secret"]
        return {"authorization": f"Bearer {self._pat}"}

    def wrk(self, path: str, headers: dict[str, str]) -> dict[str, Any]:
        res = load.wrk(self.server.url + path, headers, self.conns, self.seconds)
        if res["errors"]:
            raise RuntimeError(f"GET {path}: {res['errors']} errors under load")
        return res

    def check(self, path: str, headers: dict[str, str], expect: Callable[[httpx.Response], Any]
              ) -> None:
        answer = httpx.get(self.server.url + path, headers=headers, timeout=120)
        if answer.status_code != 200:
            raise RuntimeError(f"GET {path}: {answer.status_code} {answer.text[:300]}")
        expect(answer)

    def memory_step(self, label: str, step: Callable[[], Any]) -> Any:
        """Run a step; record the server's peak PSS during it (sampled once a second)."""
        self.server.peak_pss_kib = 0
        out = step()
        time.sleep(1.2)  # one more sample after the step
        peak = round(self.server.peak_pss_kib / MIB, 1)
        self.results["memory"].append({"step": label, "peak_pss_mib": peak})
        log(f"{label}: peak PSS {peak} MiB")
        return out

    def settle(self, timeout: float = 180.0) -> None:
        """Wait until the server is back to its own processes (the scan on push of the image
        runs syft as a child: its memory belongs to the push, not to the next step)."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while time.monotonic() < deadline and quiet < 3:
            jobs = [j for status in ("queued", "running") for j in httpx.get(
                f"{self.server.url}/api/v1/jobs", params={"status": status},
                headers={"authorization": self.server.basic}, timeout=60).json()]
            idle = not jobs and len(self.server.pids()) <= self.server.workers + 1
            quiet = quiet + 1 if idle else 0
            time.sleep(1.0)

    def profile(self, what: str, seconds: float, run_load: Callable[[float], Any]
                ) -> dict[str, Any]:
        from bench.profile import record_workers

        found = asyncio.run(record_workers(self.server.pids(), seconds,
                                           ROOT / "bench" / "results", run_load, what))
        if "summary" in found:
            print(found["summary"])
        else:
            print(f"(no profile: {found.get('error')})")
        return {k: v for k, v in found.items() if k != "load_during_profile"}

    # -- the series -----------------------------------------------------------------------
    def tags(self, sizes: list[int]) -> None:
        rows = []
        for n in sizes:
            repo = f"scale/tags-{n}"
            took = self.seeder.tags(repo, n)
            log(f"seeded {repo}: {n:,} tags in {took:.1f} s")
            auth = self.bearer(f"repository:{repo}:pull")
            manifest = f"/v2/{repo}/manifests/t{n // 2:07d}"
            page = f"/v2/{repo}/tags/list?n=100"
            self.check(manifest, {"accept": ACCEPT, **auth},
                       lambda a: a.headers["docker-content-digest"] == self.seeder.digest
                       or _fail(f"{manifest}: wrong digest"))
            self.check(page, auth, lambda a: a.json()["tags"] == [f"t{i:07d}" for i in range(100)]
                       or _fail(f"{page}: wrong first page"))

            def measure() -> tuple[dict[str, Any], dict[str, Any]]:
                return (self.wrk(manifest, {"accept": ACCEPT, **auth}), self.wrk(page, auth))
            get, first = self.memory_step(f"tags {n:,}", measure)
            rows.append({"size": n, "seed_s": round(took, 1), "manifest_get": get,
                         "tags_first_page": first,
                         "peak_pss_mib": self.results["memory"][-1]["peak_pss_mib"]})
            log(f"{n:,} tags: manifest GET {get['rps']:.0f}/s, first page {first['rps']:.0f}/s")
        # then every size in alternation, 3 rounds (the machine's load moves meanwhile): the
        # medians give the growth and the goal (the largest at >= 90% of the 1k-tag rate)
        paths = {n: (f"/v2/scale/tags-{n}/manifests/t{n // 2:07d}",
                     f"/v2/scale/tags-{n}/tags/list?n=100") for n in sizes}
        rounds: dict[str, dict[int, list[float]]] = {"manifest_get": {n: [] for n in sizes},
                                                     "tags_first_page": {n: [] for n in sizes}}
        for _ in range(3):
            for n in sizes:
                auth = self.bearer(f"repository:scale/tags-{n}:pull")
                rounds["manifest_get"][n].append(
                    self.wrk(paths[n][0], {"accept": ACCEPT, **auth})["rps"])
                rounds["tags_first_page"][n].append(self.wrk(paths[n][1], auth)["rps"])
        series: dict[str, Any] = {"rows": rows, "alternated": rounds}
        for key, by_size in rounds.items():
            medians = [sorted(by_size[n])[1] for n in sizes]
            series[key] = {**cost_verdict([1 / m for m in medians], sizes),
                           "median_rps": dict(zip(sizes, medians))}
        small, large = sizes[0], sizes[-1]
        best = series["manifest_get"]["median_rps"]
        series["goal"] = {"small": small, "large": large, "median_rps": best,
                          "ratio": round(best[large] / best[small], 3),
                          "met": best[large] >= TAG_GOAL * best[small]}
        self.results["series"]["tags"] = series
        for key in ("manifest_get", "tags_first_page"):
            if series[key]["verdict"] == "grows":
                repo = f"scale/tags-{large}"
                auth = self.bearer(f"repository:{repo}:pull")
                path = (f"/v2/{repo}/manifests/t{large // 2:07d}" if key == "manifest_get"
                        else f"/v2/{repo}/tags/list?n=100")
                series[key]["profile"] = self.profile(
                    f"{key} at {large:,} tags", self.seconds,
                    lambda s, p=path, a=auth: load.wrk(self.server.url + p, {"accept": ACCEPT, **a},
                                                       self.conns, s))

    def repos(self, sizes: list[int], console_at: int) -> None:
        rows = []
        pat = self.pat()
        catalog = "/v2/_catalog?n=100"
        listing = "/api/v1/repositories?namespace=big&limit=100"
        for n in sizes:
            took = self.seeder.repositories(n)
            log(f"seeded {n:,} repositories in {took:.1f} s")
            catalog_auth = self.bearer("registry:catalog:*")
            self.check(catalog, catalog_auth,
                       lambda a: len(a.json()["repositories"]) == 100 or _fail("catalog page"))
            expected_big = (n + 1) // 2
            self.check(listing, pat, lambda a: (len(a.json()) == min(100, expected_big) and
                                                int(a.headers["x-total-count"]) == expected_big)
                       or _fail(f"listing: {len(a.json())} {a.headers.get('x-total-count')}"))

            def measure() -> dict[str, Any]:
                out = {"catalog_first_page": self.wrk(catalog, catalog_auth),
                       "namespace_listing": self.wrk(listing, pat)}
                if n == console_at or n == sizes[-1]:
                    out["console"] = self.console()
                return out
            row = {"size": n, "seed_s": round(took, 1),
                   **self.memory_step(f"repositories {n:,}", measure),
                   "peak_pss_mib": None}
            row["peak_pss_mib"] = self.results["memory"][-1]["peak_pss_mib"]
            rows.append(row)
            log(f"{n:,} repositories: catalog {row['catalog_first_page']['rps']:.0f}/s, "
                f"listing {row['namespace_listing']['rps']:.0f}/s"
                + (f", console {row['console']['server_ms']:.1f} ms" if "console" in row else ""))
        series: dict[str, Any] = {"rows": rows}
        for key in ("catalog_first_page", "namespace_listing"):
            series[key] = cost_verdict([1 / r[key]["rps"] for r in rows], sizes)
        consoled = [r for r in rows if "console" in r]
        if len(consoled) > 1:
            series["console"] = cost_verdict([r["console"]["server_ms"] for r in consoled],
                                             [r["size"] for r in consoled])
        self.results["series"]["repos"] = series
        largest = sizes[-1]
        for key, path, auth in (("catalog_first_page", catalog, self.bearer("registry:catalog:*")),
                                ("namespace_listing", listing, pat)):
            if series[key]["verdict"] == "grows":
                series[key]["profile"] = self.profile(
                    f"{key} at {largest:,} repositories", self.seconds,
                    lambda s, p=path, a=auth: load.wrk(self.server.url + p, a, self.conns, s))

    def console(self, requests: int = 10) -> dict[str, Any]:
        from bench.console import measure

        with httpx.Client(base_url=self.server.url, timeout=120) as client:
            sign_in(client)
            return measure(client, "/repositories", requests)

    def gc(self, sizes: list[int]) -> None:
        rows = []
        for n in sizes:
            took, expected = self.seeder.garbage(n, str(n))
            log(f"seeded {n:,} blobs ({expected:,} garbage) in {took:.1f} s")
            result = self.memory_step(f"gc over {n:,} blobs", lambda: self.run_gc())
            if result["blobs_deleted"] != expected:
                raise RuntimeError(f"gc deleted {result['blobs_deleted']} blobs, not {expected}")
            rows.append({"size": n, "seed_s": round(took, 1), **result,
                         "per_blob_ms": round(result["job_s"] * 1000 / n, 4),
                         "peak_pss_mib": self.results["memory"][-1]["peak_pss_mib"]})
            log(f"gc over {n:,} blobs: {result['wall_s']:.1f} s ({result['job_s']:.1f} s in "
                f"the job), {result['blobs_deleted']:,} deleted")
        series: dict[str, Any] = {"rows": rows,
                                  "per_blob": cost_verdict([r["job_s"] / r["size"] for r in rows],
                                                           sizes)}
        self.results["series"]["gc"] = series
        if series["per_blob"]["verdict"] == "grows":
            n = sizes[-1]
            self.seeder.garbage(n, f"{n}-profile")
            series["per_blob"]["profile"] = self.profile(
                f"gc over {n:,} more blobs", min(60.0, rows[-1]["wall_s"]),
                lambda s: self.run_gc())

    def run_gc(self) -> dict[str, Any]:
        """`moorage gc --json --grace 1h`, as an administrator runs it."""
        env = {**os.environ, "MOORAGE_URL": self.server.url, "MOORAGE_USERNAME": ADMIN_USER,
               "MOORAGE_PASSWORD": ADMIN_PASSWORD, "XDG_CONFIG_HOME": str(self.work / "cli"),
               "PYTHONPATH": str(ROOT / "src")}
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "moorage", "gc", "--json", "--grace", "1h"],
                             env=env, capture_output=True, text=True, timeout=3 * 3600)
        wall = time.perf_counter() - started
        if out.returncode != 0:
            raise RuntimeError(f"moorage gc: {out.returncode} {out.stdout[-500:]} "
                               f"{out.stderr[-1000:]}")
        job = json.loads(out.stdout)
        result = job.get("result") or {}
        return {"wall_s": round(wall, 2), "job_s": result.get("seconds", math.nan),
                "blobs_deleted": result.get("blobs_deleted"),
                "links_deleted": result.get("links_deleted")}


def _fail(message: str) -> bool:
    raise RuntimeError(message)


# -- report ------------------------------------------------------------------------------------
def _say(verdict: dict[str, Any]) -> str:
    return (f"growth x{verdict['growth']} over x{verdict['size_ratio']:,.0f} size: "
            f"{verdict['verdict']} (slope {verdict['slope']})")


def report(results: dict[str, Any]) -> None:
    s = results["series"]
    print()
    print(f"Scaling series ({results['workers']} workers, token auth on; wrk "
          f"{results['connections']} connections, {results['seconds']:.0f} s per measure; "
          f"memory: the server's peak PSS during each step)")
    if "tags" in s:
        t = s["tags"]
        print(f"{'tags':>10} {'seed s':>8} {'GET /s':>8} {'p99 ms':>8} {'page /s':>8} "
              f"{'p99 ms':>8} {'PSS MiB':>8} {'GET /s alt':>11} {'page /s alt':>12}")
        for r in t["rows"]:
            print(f"{r['size']:>10,} {r['seed_s']:>8.1f} {r['manifest_get']['rps']:>8.0f} "
                  f"{r['manifest_get']['p99_ms']:>8.1f} {r['tags_first_page']['rps']:>8.0f} "
                  f"{r['tags_first_page']['p99_ms']:>8.1f} {r['peak_pss_mib']:>8.1f} "
                  f"{t['manifest_get']['median_rps'][r['size']]:>11.0f} "
                  f"{t['tags_first_page']['median_rps'][r['size']]:>12.0f}")
        print("  (first figures: right after seeding each size; 'alt': the median of 3 rounds "
              "over every size in alternation, which the growth uses)")
        print(f"  manifest GET by tag: {_say(t['manifest_get'])}")
        print(f"  tags first page (n=100): {_say(t['tags_first_page'])}")
        g = t["goal"]
        print(f"  goal: {g['large']:,}-tag repository at >= {TAG_GOAL:.0%} of the {g['small']:,}-"
              f"tag rate (medians, alternated): {g['median_rps'][g['large']]:.0f} vs "
              f"{g['median_rps'][g['small']]:.0f}/s = {g['ratio']:.0%}: "
              f"{'met' if g['met'] else 'NOT met'}")
    if "repos" in s:
        r_ = s["repos"]
        print(f"{'repos':>10} {'seed s':>8} {'catalog/s':>9} {'p99 ms':>8} {'list /s':>8} "
              f"{'p99 ms':>8} {'console':>8} {'PSS MiB':>8}")
        for r in r_["rows"]:
            console = f"{r['console']['server_ms']:.1f}" if "console" in r else "-"
            print(f"{r['size']:>10,} {r['seed_s']:>8.1f} {r['catalog_first_page']['rps']:>9.0f} "
                  f"{r['catalog_first_page']['p99_ms']:>8.1f} "
                  f"{r['namespace_listing']['rps']:>8.0f} {r['namespace_listing']['p99_ms']:>8.1f} "
                  f"{console:>8} {r['peak_pss_mib']:>8.1f}")
        print(f"  catalog first page (n=100): {_say(r_['catalog_first_page'])}")
        print(f"  namespace listing (API, limit=100, half the repositories in it): "
              f"{_say(r_['namespace_listing'])}")
        if "console" in r_:
            print(f"  console repository list (server ms, Server-Timing): {_say(r_['console'])}")
    if "gc" in s:
        g_ = s["gc"]
        print(f"{'blobs':>10} {'seed s':>8} {'gc s':>8} {'job s':>8} {'deleted':>8} "
              f"{'ms/blob':>8} {'PSS MiB':>8}")
        for r in g_["rows"]:
            print(f"{r['size']:>10,} {r['seed_s']:>8.1f} {r['wall_s']:>8.1f} {r['job_s']:>8.1f} "
                  f"{r['blobs_deleted']:>8,} {r['per_blob_ms']:>8.3f} {r['peak_pss_mib']:>8.1f}")
        print(f"  gc time per blob (the job's own time; 'gc s': `moorage gc` as a user waits "
              f"for it, start-up and polling included): {_say(g_['per_blob'])}")
    print("memory, peak PSS of the server's process tree during each step (MiB): " + "; ".join(
        f"{m['step']} {m['peak_pss_mib']:.0f}" for m in results["memory"]))
    end = results.get("memory_at_end") or {}
    print("  at the end, PSS of each process (MiB): " + ", ".join(
        f"{p['pss_mib']:.0f}" for p in end.get("processes", [])))
    peak = max((m["peak_pss_mib"] for m in results["memory"]), default=0.0)
    print(f"  memory: peak PSS {peak:.1f} MiB at most (goal: under {MEMORY_GOAL_MIB} MiB "
          f"everywhere): {'met' if peak < MEMORY_GOAL_MIB else 'NOT met'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        default=os.environ.get("BENCH_QUICK", "") not in ("", "0"))
    parser.add_argument("--seconds", type=float, default=None, help="of each wrk load")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", default="tags,repos,gc")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (to look "
                        "at the seeded database afterwards)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    seconds = args.seconds or (2.0 if args.quick else 6.0)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    with tempfile.TemporaryDirectory(prefix="moorage-scaling-bench-") as work_dir:
        work = Path(args.keep or work_dir)
        work.mkdir(parents=True, exist_ok=True)
        server = Moorage("moorage", work, workers=args.workers, auth=True)
        server.start(timeout=180)
        try:
            bench = Bench(server, None, seconds, args.connections, work)  # type: ignore[arg-type]
            _, digest, blob_sizes = bench.memory_step("push of one image, its scan on push "
                                                      "included", lambda: push(server))
            bench.settle()
            bench.seeder = Seeder(server.data_dir, digest, blob_sizes)
            bench.results.update({"workers": args.workers, "connections": args.connections,
                                  "seconds": seconds, "quick": args.quick,
                                  "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                  "load": os.getloadavg()})
            if "tags" in only:
                bench.tags(sizes["tags"])
            if "repos" in only:
                console_at = CONSOLE_AT if CONSOLE_AT in sizes["repos"] else sizes["repos"][-1]
                bench.repos(sizes["repos"], console_at)
            if "gc" in only:
                bench.gc(sizes["gc"])
            bench.results["memory_at_end"] = server.memory()  # each process: PSS, peak RSS
            errors = server.log_errors()
        finally:
            server.stop()
    report(bench.results)
    if errors:
        print("server log errors:\n  " + "\n  ".join(errors))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "scaling-latest.json").write_text(json.dumps(bench.results, indent=2, default=str))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
