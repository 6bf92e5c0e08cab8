"""Prometheus metrics (issue 15 item 2): a real Prometheus server scrapes `/metrics` from a
Moorage on two workers (and Redis, for the tag cache), and after a push and pulls with skopeo,
a GC and some API calls, PromQL over Prometheus's HTTP API finds the series: requests by route
template and status summed over both workers, bytes, uploads, cache hits, job runs, storage per
namespace against its quota, Redis errors. The token guards `/metrics`; a route label never
holds a repository's name. Then the parts, in process: batched histograms, route labels, the
bounded namespace series."""

from __future__ import annotations

import asyncio
import bisect
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

from tests.clients.tools import require_tool, skopeo
from tests.conftest import ADMIN_PASSWORD, ROOMY, SECURED
from tests.events.helpers import create_hook, wait_deliveries
from tests.events.receiver import Receiver
from tests.lifecycle.helpers import run_gc
from tests.support.processes import children
from tests.support.prometheus import PrometheusServer
from tests.support.redis_server import RedisServer
from tests.support.server import MoorageServer
from tests.web.helpers import ADMIN, api, push_image

TOKEN = "metrics-token-of-the-tests-4f9c2a"
NAMESPACE = "observed"
REPO = f"{NAMESPACE}/app"
QUOTA = 50 << 20
CATALOG_CALLS = 30
CREDS = f"admin:{ADMIN_PASSWORD}"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Stack:
    server: MoorageServer
    prometheus: PrometheusServer
    redis: RedisServer
    receivers: list[Receiver]
    layer_bytes: int = 0  # bytes of the pushed image's blobs


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_tool("skopeo")
    folder = tmp_path_factory.mktemp("metrics")
    redis = RedisServer().start()
    server = MoorageServer(folder / "data", extra_args=["--workers", "2"], env={
        **SECURED, **ROOMY, "MOORAGE_METRICS_TOKEN": TOKEN, "MOORAGE_REDIS_URL": redis.url})
    prometheus = None
    # webhook receivers: one takes every delivery, one refuses the first with a 503
    receivers = [Receiver().start(), Receiver(answers=[503]).start()]
    try:
        server.start()
        prometheus = PrometheusServer(folder / "prometheus", server.host, TOKEN).start()
        stack = Stack(server, prometheus, redis, receivers)
        drive(stack, folder)
        yield stack
    finally:
        if prometheus is not None:
            prometheus.stop()
        server.kill()
        redis.stop()
        for receiver in receivers:
            receiver.stop()


def write_elsewhere(stack: Stack) -> str:
    """The pushed image's manifest with one more annotation (so a new digest over the same
    blobs), put by a Registry built in this process on the server's data folder and Redis:
    no worker of the server has it cached. Returns its digest."""
    import json

    from moorage.app import build_instance
    from moorage.settings import load_settings

    settings = load_settings(overrides={"data_dir": stack.server.data_dir,
                                        "redis_url": stack.redis.url})
    registry = build_instance(settings).registry
    stored = registry.get_manifest(REPO, "v1", ["*/*"], pull=False)
    body = json.loads(stored.content)
    body.setdefault("annotations", {})["test"] = "written by another process"
    return registry.put_manifest(REPO, "another-process", json.dumps(body).encode(),
                                 stored.media_type).digest


def drive(stack: Stack, folder: Path) -> None:
    """What the series are about: a push and three pulls with skopeo, a garbage collection
    that frees bytes, a quota, catalog calls on new connections, a refused API call."""
    from tests.support.images import random_image

    server = stack.server
    layout = folder / "layout"
    random_image(layout, "v1", layers=2, layer_size=128 * 1024)
    assert api(server, "POST", "/namespaces", json={"name": NAMESPACE}).status_code == 201
    hooks = [create_hook(server, r.url, ["push"], NAMESPACE)["id"] for r in stack.receivers]
    stack.layer_bytes = sum(p.stat().st_size for p in (layout / "blobs" / "sha256").iterdir()
                            if p.stat().st_size > 10_000)
    skopeo("copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", CREDS,
           f"oci:{layout}:v1", f"docker://{server.host}/{REPO}:v1")
    wait_deliveries(server, hooks[0], 1)
    stack.receivers[1].wait_for(1)  # the refused attempt; its retry comes later
    for n in range(3):
        skopeo("copy", "--quiet", "--src-tls-verify=false", "--src-creds", CREDS,
               f"docker://{server.host}/{REPO}:v1", f"oci:{folder / f'pulled-{n}'}:v1")
    # a manifest cache miss whichever worker answers: the pulls may all reach the worker
    # whose push cached the manifest (then every lookup hits); a manifest written by another
    # process on the same data folder (as a second replica would) is in no worker's cache
    digest = write_elsewhere(stack)
    fetched = httpx.get(f"{server.url}/v2/{REPO}/manifests/{digest}", auth=ADMIN,
                        headers={"accept": "application/vnd.oci.image.manifest.v1+json"})
    assert fetched.status_code == 200, fetched.text
    assert api(server, "PATCH", f"/namespaces/{NAMESPACE}",
               json={"storage_quota": QUOTA}).status_code == 200
    # something for GC to free: an image whose manifest is deleted
    trash = push_image(server, f"{NAMESPACE}/trash", "gone")
    assert httpx.delete(f"{server.url}/v2/{NAMESPACE}/trash/manifests/{trash}",
                        auth=ADMIN).status_code == 202
    result = run_gc(server, grace="0s")
    assert result["bytes_freed"] > 0, result
    for _ in range(CATALOG_CALLS):  # httpx.get: a new connection each, so both workers
        assert httpx.get(f"{server.url}/v2/_catalog", auth=ADMIN).status_code == 200
    assert httpx.get(f"{server.url}/api/v1/namespaces").status_code == 401


def per_worker(server: MoorageServer, name: str, labels: dict[str, str],
               folder: Path) -> dict[int, float]:
    """A sample's value in each worker process's own metric files (the files
    prometheus-client's multiprocess mode writes, one set per process)."""
    source = server.data_dir / "metrics" / str(server.port)
    found = {}
    assert server.proc is not None
    for pid in children(server.proc.pid):
        mine = folder / str(pid)
        shutil.rmtree(mine, ignore_errors=True)
        mine.mkdir(parents=True)
        for path in source.glob(f"*_{pid}.db"):
            shutil.copy(path, mine)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(mine))
        found[pid] = registry.get_sample_value(name, labels) or 0.0
    return found


def scrape(server: MoorageServer, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(f"{server.url}/metrics", headers=BEARER if headers is None else headers)


def sample(text: str, line_start: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


# -- the real Prometheus ------------------------------------------------------------------
def test_prometheus_scrapes_with_the_token(stack: Stack) -> None:
    assert stack.prometheus.wait_for('up{job="moorage"}', lambda v: v == 1) == 1
    assert stack.prometheus.wait_for('moorage_build_info{edition="advanced"}') == 1


def test_requests_by_route_and_status_are_summed_over_both_workers(
        stack: Stack, tmp_path: Path) -> None:
    prom, server = stack.prometheus, stack.server
    catalog = ('sum(moorage_http_requests_total{route="/v2/_catalog",method="GET",'
               'status="200"})')
    assert prom.wait_for(catalog, lambda v: v >= CATALOG_CALLS) == CATALOG_CALLS
    # each worker counted its share, and the files of both are summed
    labels = {"route": "/v2/_catalog", "method": "GET", "status": "200"}
    shares = per_worker(server, "moorage_http_requests_total", labels, tmp_path)
    assert len(shares) == 2 and all(v > 0 for v in shares.values()), shares
    assert sum(shares.values()) == CATALOG_CALLS
    # whichever worker answers a scrape (a new connection each) answers for both
    for _ in range(20):
        answer = scrape(server)
        assert answer.status_code == 200
        assert sample(answer.text, 'moorage_http_requests_total{method="GET",'
                                   'route="/v2/_catalog",status="200"}') == CATALOG_CALLS
    metrics = {"route": "/metrics", "method": "GET", "status": "200"}
    deadline_shares: dict[int, float] = {}
    for _ in range(40):  # each worker's count of /metrics is written within a second
        deadline_shares = per_worker(server, "moorage_http_requests_total", metrics, tmp_path)
        if all(v > 0 for v in deadline_shares.values()):
            break
        time.sleep(0.5)
    assert len(deadline_shares) == 2 and all(v > 0 for v in deadline_shares.values()), \
        deadline_shares

    # the push and the pulls, by route template, method and status
    assert prom.wait_for('sum(moorage_http_requests_total{route="/v2/{name}/manifests/'
                         '{reference}",method="PUT",status="201"})') >= 2
    assert prom.wait_for('sum(moorage_http_requests_total{route="/v2/{name}/manifests/'
                         '{reference}",method="GET",status="200"})') >= 3
    assert prom.wait_for('sum(moorage_http_requests_total{route="/v2/{name}/blobs/{digest}",'
                         'method="GET",status="200"})') >= 3
    assert prom.wait_for('sum(moorage_http_requests_total{route="/api/v1/gc",'
                         'method="POST",status="202"})') >= 1
    # refused before FastAPI routed it, and still labelled with its route
    assert prom.wait_for('sum(moorage_http_requests_total{route="/api/v1/namespaces",'
                         'method="GET",status="401"})') >= 1
    # the latency histogram, per route
    assert prom.wait_for('sum(moorage_http_request_duration_seconds_count{route="/v2/_catalog"})'
                         ) == CATALOG_CALLS
    assert prom.wait_for('sum(moorage_http_request_duration_seconds_bucket{route="/v2/_catalog",'
                         'le="+Inf"})') == CATALOG_CALLS
    # (over the counts since start: the calls came before the first scrape, so no rate)
    median = prom.wait_for('histogram_quantile(0.5, sum by (le) ('
                           'moorage_http_request_duration_seconds_bucket{route="/v2/_catalog"}))')
    assert 0 < median < 60


def test_bytes_uploads_and_cache_hits(stack: Stack) -> None:
    prom = stack.prometheus
    # three pulls of the layers, and the one push of them
    assert prom.wait_for('sum(moorage_http_response_bytes_total{route="/v2/{name}/blobs/'
                         '{digest}"})', lambda v: v >= 3 * stack.layer_bytes)
    assert prom.wait_for('sum(moorage_http_request_bytes_total{route=~"/v2/.name./blobs/'
                         'uploads/.*"})', lambda v: v >= stack.layer_bytes)
    assert prom.wait_for("moorage_blob_uploads_total", lambda v: v >= 5)  # skopeo 3, httpx 2
    assert prom.wait_for("moorage_blob_upload_bytes_total", lambda v: v >= stack.layer_bytes)
    # manifests by digest from the process's cache, tags from Redis; misses first
    for cache in ("manifest", "tag"):
        assert prom.wait_for(f'moorage_cache_hits_total{{cache="{cache}"}}') > 0
        assert prom.wait_for(f'moorage_cache_misses_total{{cache="{cache}"}}') > 0
    ratio = prom.wait_for('sum(moorage_cache_hits_total{cache="manifest"}) / '
                          '(sum(moorage_cache_hits_total{cache="manifest"}) + '
                          'sum(moorage_cache_misses_total{cache="manifest"}))')
    assert 0 < ratio < 1


def test_uploads_in_progress(stack: Stack) -> None:
    prom, server = stack.prometheus, stack.server
    assert prom.wait_for("moorage_uploads_in_progress", lambda v: v >= 0) == 0
    started = httpx.post(f"{server.url}/v2/{REPO}/blobs/uploads/", auth=ADMIN)
    assert started.status_code == 202
    assert prom.wait_for("moorage_uploads_in_progress", lambda v: v == 1) == 1
    assert httpx.delete(f"{server.url}{started.headers['location']}",
                        auth=ADMIN).status_code == 204
    assert prom.wait_for("moorage_uploads_in_progress", lambda v: v == 0) == 0


def test_jobs_and_garbage_collection(stack: Stack) -> None:
    prom = stack.prometheus
    assert prom.wait_for('moorage_job_runs_total{type="gc"}') >= 1
    assert prom.wait_for('moorage_job_duration_seconds_count{type="gc"}') >= 1
    assert prom.wait_for("moorage_gc_runs_total") >= 1
    assert prom.wait_for("moorage_gc_freed_bytes_total") > 0
    assert prom.wait_for("moorage_gc_deleted_blobs_total") > 0
    # the queue, read from the database at scrape time: every registered type, at 0 now
    for job_type in ("gc", "retention", "webhook"):
        assert prom.wait_for(f'moorage_job_queue_depth{{type="{job_type}",status="queued"}}',
                             lambda v: v >= 0) == 0
    assert prom.query('moorage_job_failures_total{type="gc"} > 0') == []
    assert prom.wait_for("moorage_audit_backlog_events", lambda v: v >= 0) >= 0


def test_storage_per_namespace_against_quota(stack: Stack) -> None:
    prom, server = stack.prometheus, stack.server
    used = api(server, "GET", f"/namespaces/{NAMESPACE}").json()["storage_used"]
    assert used >= stack.layer_bytes
    assert prom.wait_for(f'moorage_namespace_storage_used_bytes{{namespace="{NAMESPACE}"}}',
                         lambda v: v == used) == used
    assert prom.wait_for(f'moorage_namespace_storage_quota_bytes{{namespace="{NAMESPACE}"}}'
                         ) == QUOTA
    share = prom.wait_for(f'moorage_namespace_storage_used_bytes{{namespace="{NAMESPACE}"}} / '
                          f'moorage_namespace_storage_quota_bytes')
    assert share == pytest.approx(used / QUOTA)


def test_route_labels_are_templates_never_repository_names(stack: Stack) -> None:
    prom = stack.prometheus
    prom.wait_for('sum(moorage_http_requests_total{route="/v2/{name}/blobs/uploads/{id}"})')
    routes = prom.label_values("route", "moorage_http_requests_total")
    assert routes, routes
    for route in routes:
        assert NAMESPACE not in route and "trash" not in route and "sha256" not in route, route
        assert route in ("console", "static") or route.startswith("/"), route
        if route.startswith("/v2/") and route not in ("/v2/", "/v2/_catalog"):
            assert route.startswith("/v2/{name}/"), route
    assert "/v2/{name}/blobs/uploads/" in routes  # the POST that opens an upload
    assert "/auth/token" in routes or "/v2/" in routes


def test_the_token_guards_metrics(stack: Stack) -> None:
    server = stack.server
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": TOKEN}):
        refused = scrape(server, headers)
        assert refused.status_code == 401, headers
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "moorage_" not in refused.text
    answer = scrape(server)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert "moorage_http_requests_total" in answer.text
    open_metrics = scrape(server, {**BEARER, "Accept": "application/openmetrics-text"})
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
    assert open_metrics.text.rstrip().endswith("# EOF")
    assert httpx.post(f"{server.url}/metrics", headers=BEARER).status_code == 405


def test_webhook_deliveries_and_failures_are_counted(stack: Stack) -> None:
    """One delivery taken, one refused with a 503 (to be retried): both attempts counted,
    by the state each left its delivery in."""
    prom = stack.prometheus
    assert prom.wait_for('sum(moorage_webhook_deliveries_total{result="delivered"})') >= 1
    assert prom.wait_for('sum(moorage_webhook_deliveries_total{result="retrying"})') >= 1
    assert prom.wait_for("sum(moorage_webhook_delivery_failures_total)") >= 1


def test_redis_errors_are_counted(stack: Stack) -> None:
    """Last: Redis goes away (and comes back); a pull by tag falls back to the database."""
    prom, server = stack.prometheus, stack.server
    before = prom.wait_for("moorage_redis_errors_total", lambda v: v >= 0)
    stack.redis.kill()
    try:
        pulled = httpx.get(f"{server.url}/v2/{REPO}/manifests/v1", auth=ADMIN, headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json"})
        assert pulled.status_code == 200
        assert prom.wait_for("moorage_redis_errors_total", lambda v: v > before) > before
    finally:
        stack.redis.start()


# -- the parts, in process ------------------------------------------------------------------
def test_a_batch_of_observations_equals_observing_one_by_one() -> None:
    from moorage.ops.metrics import _BOUNDS, observe_many

    one, batch = CollectorRegistry(), CollectorRegistry()
    by_one = Histogram("h", "h", registry=one, buckets=_BOUNDS)
    in_batch = Histogram("h", "h", registry=batch, buckets=_BOUNDS)
    seconds = [0.0, 0.0004, 0.001, 0.003, 0.2, 0.2, 7.0, 1000.0]
    counts = [0] * len(_BOUNDS)
    for value in seconds:
        by_one.observe(value)
        counts[bisect.bisect_left(_BOUNDS, value)] += 1
    observe_many(in_batch, counts, sum(seconds))

    def samples(registry: CollectorRegistry) -> list[Any]:
        return [(s.name, s.labels, s.value) for m in registry.collect() for s in m.samples]
    assert samples(one) == samples(batch)


async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app that reads the whole body and answers 200 "hello"."""
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})


def _request(app: Any, method: str, path: str, body: bytes = b"") -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    asyncio.run(app({"type": "http", "method": method, "path": path, "headers": []},
                    receive, send))


def test_requests_are_labelled_by_template_and_counted_in_batches() -> None:
    from moorage.ops.metrics import ObservedRequests, Tallies
    from moorage.web.registry_api import route_template

    tallies = Tallies()
    app = ObservedRequests(_hello, tallies, route_template)
    for method, path in (("GET", "/v2/team/app/manifests/v1"),
                         ("PUT", "/v2/a/b/c/manifests/sha256:" + "0" * 64),
                         ("PATCH", "/v2/team/app/blobs/uploads/" + "a" * 32),
                         ("POST", "/v2/team/app/blobs/uploads/"),
                         ("GET", "/v2/team/app/blobs/sha256:" + "1" * 64),
                         ("GET", "/v2/team/app/tags/list"),
                         ("GET", "/v2/team/app/referrers/sha256:" + "2" * 64),
                         ("GET", "/v2/"), ("GET", "/v2/_catalog"), ("GET", "/v2/nothing"),
                         ("POST", "/auth/token"), ("GET", "/api/v1/nowhere"),
                         ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"),
                         ("GET", "/static/app.css"), ("GET", "/repositories/team/app"),
                         ("BREW", "/")):
        _request(app, method, path, body=b"abc" if method in ("PUT", "PATCH", "POST") else b"")
    found = {key: tally[:4] for key, tally in tallies._requests.items()}
    assert set(found) == {
        ("/v2/{name}/manifests/{reference}", "GET", 200),
        ("/v2/{name}/manifests/{reference}", "PUT", 200),
        ("/v2/{name}/blobs/uploads/{id}", "PATCH", 200),
        ("/v2/{name}/blobs/uploads/", "POST", 200),
        ("/v2/{name}/blobs/{digest}", "GET", 200), ("/v2/{name}/tags/list", "GET", 200),
        ("/v2/{name}/referrers/{digest}", "GET", 200), ("/v2/", "GET", 200),
        ("/v2/_catalog", "GET", 200), ("/v2/{unmatched}", "GET", 200),
        ("/auth/token", "POST", 200), ("/api/{unmatched}", "GET", 200),
        ("/healthz", "GET", 200), ("/readyz", "GET", 200), ("/metrics", "GET", 200),
        ("static", "GET", 200), ("console", "GET", 200), ("console", "other", 200)}
    assert found["/v2/{name}/blobs/uploads/{id}", "PATCH", 200][0] == 1
    assert found["/v2/{name}/blobs/uploads/{id}", "PATCH", 200][2:] == [5, 3]  # sent, received
    assert found["/v2/_catalog", "GET", 200][2:] == [5, 0]


def test_database_errors_are_told_from_others() -> None:
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from moorage.ops.metrics import is_database_error

    assert is_database_error(OperationalError("SELECT 1", {}, Exception("database is locked")))
    assert is_database_error(sqlite3.OperationalError("disk I/O error"))
    try:
        try:
            raise sqlite3.OperationalError("no such table")
        except sqlite3.Error as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as wrapped:
        assert is_database_error(wrapped)
    assert not is_database_error(ValueError("no"))
    assert not is_database_error(None)


def test_storage_series_are_bounded_to_the_largest_namespaces(tmp_path: Path) -> None:
    from sqlalchemy import insert

    from moorage.db.metadata import open_engine, sqlite_url
    from moorage.db.migrate import ensure_schema
    from moorage.db.schema import namespaces
    from moorage.ops.metrics import InstanceCollector

    engine = open_engine(sqlite_url(tmp_path))
    ensure_schema(engine)
    with engine.begin() as conn:
        for n in range(5):
            conn.execute(insert(namespaces).values(name=f"ns{n}", storage_used=n * 100,
                                                   storage_quota=1000 if n == 4 else None,
                                                   created_at=time.time()))
    collected = {m.name: m for m in InstanceCollector(engine, lambda: ["gc"], 2,
                                                      "basic").collect()}
    used = {s.labels["namespace"]: s.value
            for s in collected["moorage_namespace_storage_used_bytes"].samples}
    assert used == {"ns4": 400, "ns3": 300}
    assert [(s.labels, s.value) for s in
            collected["moorage_namespace_storage_quota_bytes"].samples] == [
        ({"namespace": "ns4"}, 1000)]
    assert {(s.labels["type"], s.labels["status"], s.value)
            for s in collected["moorage_job_queue_depth"].samples} == {
        ("gc", "queued", 0), ("gc", "running", 0)}
    assert collected["moorage_uploads_in_progress"].samples[0].value == 0
    none = {m.name for m in InstanceCollector(engine, lambda: [], 0, "basic").collect()}
    assert "moorage_namespace_storage_used_bytes" in none  # present, without series
    engine.dispose()


def test_the_namespace_bound_is_a_setting_with_a_cap() -> None:
    from moorage.settings import MAX_METRICS_NAMESPACES, SettingsError, load_settings

    assert load_settings(environ={}).metrics_namespaces == 1000
    assert load_settings(environ={"MOORAGE_METRICS_NAMESPACES": "0"}).metrics_namespaces == 0
    with pytest.raises(SettingsError, match="metrics_namespaces"):
        load_settings(environ={"MOORAGE_METRICS_NAMESPACES": str(MAX_METRICS_NAMESPACES + 1)})


def test_dead_workers_live_gauges_are_dropped(tmp_path: Path) -> None:
    from moorage.ops.metrics import forget_dead_processes

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(gone.stdout)
    for name in (f"gauge_livesum_{dead_pid}.db", f"counter_{dead_pid}.db",
                 f"gauge_livesum_{os.getpid()}.db"):
        (tmp_path / name).write_bytes(b"")
    assert forget_dead_processes(str(tmp_path)) == [dead_pid]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"counter_{dead_pid}.db", f"gauge_livesum_{os.getpid()}.db"])
