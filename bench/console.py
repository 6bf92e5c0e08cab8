"""The console's repository pages with 5,000 repositories and 10,000 tags: `make bench` runs it
after the registry comparison (run.py).

    PYTHONPATH=src python bench/console.py [--repositories 5000] [--tags 10000] [--requests 15]

Starts a fresh embedded `moorage serve` (2 workers, token auth on), pushes one small image
through the API, then writes 5,000 repositories holding it (50 namespaces of 100) and 9,999
more tags of the pushed repository `bench/tags` straight into its SQLite database, in one
transaction, as the push path would have recorded them (repository, blob links, manifest
link, tag). It signs in to the console as the administrator and asks each page `--requests`
times after 3 warm-up requests, one at a time over loopback, printing the median of

* server: the page's own time, from its `Server-Timing: page;dur=…` header: the page
  handler from the request to the rendered HTML, its in-process API calls (and their SQL)
  included; the HTTP server and the network around it are not;
* client: the whole request as this client saw it over loopback (HTTP included).

The goal of issue 14 is under 100 ms on the server; this prints, it asserts nothing.
`BENCH_QUICK=1` (or --quick) asks each page 3 times.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.content import small_image  # noqa: E402
from bench.servers import ADMIN_PASSWORD, ADMIN_USER, Moorage  # noqa: E402

GOAL_MS = 100.0
PAGES = [
    ("repository list, first page", "/repositories"),
    ("repository list, search", "/repositories?q=app-12"),
    ("repository list, by last push", "/repositories?sort=-pushed"),
    ("repository list, by tag count", "/repositories?sort=-tags"),
    ("repository list, last page", "/repositories?page={last_repo_page}"),
    ("tag list, newest first", "/repositories/bench/tags"),
    ("tag list, by name", "/repositories/bench/tags?sort=name"),
    ("tag list, search", "/repositories/bench/tags?q=t099"),
    ("tag list, last page", "/repositories/bench/tags?sort=name&page={last_tag_page}"),
    ("manifest page", "/repositories/bench/tags/-/manifests/t00000"),
]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def push(server: Moorage) -> tuple[bytes, str, dict[str, int]]:
    """One small image as bench/tags:t00000, through /v2 with Basic credentials."""
    image = small_image("console")
    auth = (ADMIN_USER, ADMIN_PASSWORD)
    with httpx.Client(base_url=server.url, auth=auth, timeout=60) as client:
        for digest, data in image.blobs:
            answer = client.post("/v2/bench/tags/blobs/uploads/", params={"digest": digest},
                                 content=data)
            answer.raise_for_status()
        client.put("/v2/bench/tags/manifests/t00000", content=image.manifest, headers={
            "Content-Type": "application/vnd.oci.image.manifest.v1+json"}).raise_for_status()
    return image.manifest, image.digest, {d: len(b) for d, b in image.blobs}


def seed(data_dir: Path, repositories: int, tag_count: int, manifest_digest: str,
         blob_sizes: dict[str, int]) -> float:
    """Repositories and tags, written straight into the database; returns seconds."""
    from sqlalchemy import event, insert, select, update

    from moorage.db.metadata import open_engine, sqlite_url
    from moorage.db.schema import (namespace_blobs, namespaces, repositories as repos,
                                   repository_blobs, repository_manifests, tags)

    started = time.perf_counter()
    engine = open_engine(sqlite_url(data_dir))

    def fast(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()

    event.listen(engine, "connect", fast)
    now = time.time()
    per_namespace = 100
    try:
        with engine.begin() as conn:
            bench_repo = conn.execute(select(repos.c.id).where(repos.c.name == "bench/tags")
                                      ).scalar_one()
            # Tags pushed a second apart, so that "newest first" has an order to follow.
            conn.execute(insert(tags), [
                {"repository_id": bench_repo, "name": f"t{i:05d}", "digest": manifest_digest,
                 "updated_at": now - tag_count + i} for i in range(1, tag_count)])
            size = sum(blob_sizes.values())
            for n in range(0, repositories, per_namespace):
                ns_name = f"r{n // per_namespace:02d}"
                ns_id = conn.execute(insert(namespaces).values(
                    name=ns_name, visibility="private", description="",
                    credential_free_pull=False, storage_used=size,
                    created_at=now).returning(namespaces.c.id)).scalar_one()
                conn.execute(insert(namespace_blobs), [
                    {"namespace_id": ns_id, "digest": d, "refs": per_namespace}
                    for d in blob_sizes])
                count = min(per_namespace, repositories - n)
                ids = [conn.execute(insert(repos).values(
                    name=f"{ns_name}/app-{n + i:04d}", namespace_id=ns_id, visibility=None,
                    description="", created_at=now - repositories + n + i)
                    .returning(repos.c.id)).scalar_one() for i in range(count)]
                conn.execute(insert(repository_blobs), [
                    {"repository_id": r, "digest": d, "created_at": now, "touched_at": now}
                    for r in ids for d in blob_sizes])
                conn.execute(insert(repository_manifests), [
                    {"repository_id": r, "digest": manifest_digest,
                     "pushed_at": now - repositories + n + i} for i, r in enumerate(ids)])
                conn.execute(insert(tags), [
                    {"repository_id": r, "name": "latest", "digest": manifest_digest,
                     "updated_at": now - repositories + n + i} for i, r in enumerate(ids)])
            conn.execute(update(namespaces).where(namespaces.c.name == "bench")
                         .values(storage_used=size))
    finally:
        engine.dispose()
    return time.perf_counter() - started


def sign_in(client: httpx.Client) -> None:
    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf, "no sign-in form"
    answer = client.post("/login", data={"csrf_token": csrf.group(1), "username": ADMIN_USER,
                                         "password": ADMIN_PASSWORD, "next": "/"})
    if answer.status_code != 303:
        raise RuntimeError(f"sign-in failed: {answer.status_code} {answer.text[:300]}")


def measure(client: httpx.Client, path: str, requests: int) -> dict[str, float]:
    server: list[float] = []
    wall: list[float] = []
    for i in range(3 + requests):
        started = time.perf_counter()
        answer = client.get(path)
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status_code != 200:
            raise RuntimeError(f"GET {path}: {answer.status_code} {answer.text[:300]}")
        timing = re.search(r"page;dur=([0-9.]+)", answer.headers.get("server-timing", ""))
        if i >= 3:  # after the warm-up: templates compiled, caches filled, both workers
            wall.append(elapsed)
            if timing:
                server.append(float(timing.group(1)))
    return {"server_ms": statistics.median(server) if server else float("nan"),
            "client_ms": statistics.median(wall), "requests": requests,
            "bytes": len(answer.content)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repositories", type=int, default=5000)
    parser.add_argument("--tags", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=15)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true",
                        default=os.environ.get("BENCH_QUICK", "") not in ("", "0"))
    args = parser.parse_args(argv)
    requests = 3 if args.quick else args.requests
    with tempfile.TemporaryDirectory(prefix="moorage-console-bench-") as work:
        server = Moorage("moorage", Path(work), workers=args.workers, auth=True)
        server.start(timeout=180)
        try:
            _, digest, blob_sizes = push(server)
            took = seed(server.data_dir, args.repositories, args.tags, digest, blob_sizes)
            log(f"seeded {args.repositories:,} repositories and {args.tags:,} tags of "
                f"bench/tags in {took:.1f} s")
            last_repo_page = (args.repositories + 1 + 49) // 50
            last_tag_page = (args.tags + 49) // 50
            results = []
            with httpx.Client(base_url=server.url, timeout=60) as client:
                sign_in(client)
                for label, path in PAGES:
                    path = path.format(last_repo_page=last_repo_page,
                                       last_tag_page=last_tag_page)
                    results.append({"page": label, "path": path,
                                    **measure(client, path, requests)})
        finally:
            server.stop()
    print()
    print(f"Console pages, {args.repositories:,} repositories and a repository of "
          f"{args.tags:,} tags (median of {requests} requests after 3 warm-up ones; "
          f"{args.workers} workers)")
    print(f"{'page':34} {'server ms':>10} {'client ms':>10}  path")
    for r in results:
        print(f"{r['page']:34} {r['server_ms']:10.1f} {r['client_ms']:10.1f}  {r['path']}")
    slowest = max(r["server_ms"] for r in results)
    print(f"server: the page handler's own time (Server-Timing), API calls and SQL included; "
          f"client: the whole request over loopback. Goal: under {GOAL_MS:.0f} ms on the "
          f"server; slowest {slowest:.1f} ms: {'met' if slowest < GOAL_MS else 'NOT met'}.")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "console-latest.json").write_text(json.dumps(
        {"repositories": args.repositories, "tags": args.tags, "requests": requests,
         "workers": args.workers, "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
         "pages": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
