"""Prometheus metrics at `/metrics`, correct across granian's worker processes.

Every worker process counts what it serves; a scrape lands on one of them, which must answer
for all. So counters, histograms and the gauges that processes keep live in prometheus-client's
multiprocess mode: `moorage serve` points `PROMETHEUS_MULTIPROC_DIR` at a private folder it
empties at start (cli/serve.py), each process writes its values into memory-mapped files
there, and the process answering a scrape sums the files of all of them. Counters of a
worker that died stay counted (a counter never goes down); its gauges ("livesum") are dropped
as the scrape finds its process gone (`mark_process_dead`).

What the database knows (queue depth, open uploads, storage per namespace) is read at scrape
time, in the process that answers it (`InstanceCollector`), never on a request: each replica
reports the same instance-wide values (take `max` across replicas, not `sum`).

On the request path the cost is a few increments in memory: `ObservedRequests` wraps the app
(and sets the request id, ops/logs.py), labels each request with its route's template (set by the
handler that matched it; never a raw path, which would hold repository names) and counts it,
its latency and its bytes. The core is told nothing about this module: app.py hands it the
hooks the core offers (`Registry.on_cache_lookup`, `Worker.observers`,
`RedisHealth.listeners`, `DeliveryJob.observers`) and the event bus.

Without `PROMETHEUS_MULTIPROC_DIR` (an app built in a test, `moorage worker`), values live
in this process's memory and `/metrics` shows those.
"""

from __future__ import annotations

import asyncio
import bisect
import hmac
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram,
                               disable_created_metrics, multiprocess)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from sqlalchemy import Engine, func, select

from moorage import __version__
from moorage.db.schema import jobs, namespaces, uploads
from moorage.ops.logs import AccessLog, incoming_request_id, new_request_id
from moorage.registry.events import Event, set_request_id
from moorage.web.http import (FAILURE_KEY, ROUTE_KEY, Receive, Scope, Send, header,
                              respond)

log = logging.getLogger("moorage.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# `_created` series double every counter for nothing Prometheus needs here.
disable_created_metrics()
# This module's metrics (without multiprocess mode, /metrics shows them from here).
_LOCAL = CollectorRegistry(auto_describe=True)

# -- HTTP ---------------------------------------------------------------------------------
REQUESTS = Counter("moorage_http_requests_total",
                   "HTTP requests answered, by route template, method and status "
                   "(status 0: the client went away before an answer)",
                   ["route", "method", "status"], registry=_LOCAL)
_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
           30.0, 60.0, 300.0, float("inf"))
DURATION = Histogram("moorage_http_request_duration_seconds",
                     "Time from a request's arrival to the end of its answer",
                     ["route", "method"], registry=_LOCAL, buckets=_BOUNDS)
RESPONSE_BYTES = Counter("moorage_http_response_bytes_total",
                         "Bytes of response bodies sent (whole files by their length)",
                         ["route"], registry=_LOCAL)
REQUEST_BYTES = Counter("moorage_http_request_bytes_total",
                        "Bytes of request bodies received", ["route"], registry=_LOCAL)
DATABASE_ERRORS = Counter("moorage_database_errors_total",
                          "Requests (scrapes included) that failed on a database error",
                          registry=_LOCAL)
# -- the core -----------------------------------------------------------------------------
CACHE_HITS = Counter("moorage_cache_hits_total",
                     "Lookups the cache answered: manifest (bytes by digest, per process) "
                     "or tag (tag to digest, in Redis when configured)",
                     ["cache"], registry=_LOCAL)
CACHE_MISSES = Counter("moorage_cache_misses_total",
                       "Lookups the cache could not answer (the database did)",
                       ["cache"], registry=_LOCAL)
BLOB_UPLOADS = Counter("moorage_blob_uploads_total",
                       "Blob uploads completed (monolithic or chunked)", registry=_LOCAL)
BLOB_UPLOAD_BYTES = Counter("moorage_blob_upload_bytes_total",
                            "Bytes of the blobs whose uploads completed", registry=_LOCAL)
BLOB_MOUNTS = Counter("moorage_blob_mounts_total",
                      "Blobs mounted from another repository instead of uploaded",
                      registry=_LOCAL)
JOB_RUNS = Counter("moorage_job_runs_total", "Job runs that ended, by job type",
                   ["type"], registry=_LOCAL)
JOB_FAILURES = Counter("moorage_job_failures_total",
                       "Job runs that failed (retried later, or failed for good)",
                       ["type"], registry=_LOCAL)
JOB_DURATION = Histogram("moorage_job_duration_seconds", "How long job runs took",
                         ["type"], registry=_LOCAL,
                         buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0,
                                  900.0, 1800.0, 3600.0, 7200.0, 21600.0))
GC_RUNS = Counter("moorage_gc_runs_total", "Garbage collections run (dry runs not counted)",
                  registry=_LOCAL)
GC_FREED_BYTES = Counter("moorage_gc_freed_bytes_total",
                         "Bytes of blobs garbage collection deleted", registry=_LOCAL)
GC_DELETED_BLOBS = Counter("moorage_gc_deleted_blobs_total",
                           "Blobs garbage collection deleted", registry=_LOCAL)
REDIS_ERRORS = Counter("moorage_redis_errors_total",
                       "Calls to Redis that failed (the caller fell back or answered 503)",
                       registry=_LOCAL)
# -- features -----------------------------------------------------------------------------
WEBHOOK_DELIVERIES = Counter("moorage_webhook_deliveries_total",
                             "Webhook delivery attempts, by the delivery's state after it: "
                             "delivered, retrying, or failed (given up)",
                             ["result"], registry=_LOCAL)
WEBHOOK_FAILURES = Counter("moorage_webhook_delivery_failures_total",
                           "Webhook delivery attempts that failed (retried or given up)",
                           registry=_LOCAL)
PROXY_UPSTREAM_FAILURES = Counter("moorage_proxy_upstream_failures_total",
                                  "Requests of a proxy cache to its upstream that failed "
                                  "(cached content was served if there was some), by reason",
                                  ["reason"], registry=_LOCAL)
AUDIT_BACKLOG = Gauge("moorage_audit_backlog_events",
                      "Audit events recorded and not yet written to the audit log",
                      registry=_LOCAL, multiprocess_mode="livesum")
AUDIT_DROPPED = Counter("moorage_audit_dropped_events_total",
                        "Audit events dropped because the recorder's buffer was full",
                        registry=_LOCAL)

# Methods keep their name; anything else a client sends is "other" (bounded labels).
_METHODS = {m: m for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")}
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Paths that are their own template.
_EXACT = {"/v2": "/v2/", "/v2/": "/v2/", "/v2/_catalog": "/v2/_catalog",
          "/auth/token": "/auth/token", "/healthz": "/healthz", "/readyz": "/readyz",
          "/metrics": "/metrics"}
UNMATCHED_V2 = "/v2/{unmatched}"
UNMATCHED_API = "/api/{unmatched}"
_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


def is_database_error(exc: BaseException | None) -> bool:
    """A failure of the database, whichever layer raised it: SQLAlchemy's errors, or the
    drivers' own (the raw reads of db/rawreads.py bypass SQLAlchemy)."""
    seen = 0
    while exc is not None and seen < 5:
        if type(exc).__module__.split(".")[0] in ("sqlalchemy", "sqlite3", "psycopg",
                                                  "psycopg_pool"):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


class Tallies:
    """What the hot path counts, summed in this process's memory and added to the shared
    metrics in batches (`flush`, every second and before a scrape).

    An increment of a multiprocess metric writes its memory-mapped file under a lock, about
    2 µs in Python; a request's counter, histogram and bytes were 4 such writes and a cache
    lookup another: ~10 µs measured on a manifest GET that took ~70 µs in all. Summed here
    they cost about a microsecond, and the files are written once a second per label set.
    A worker killed outright loses at most its last second of counts.
    """

    def __init__(self) -> None:
        # Requests are counted and flushed on the event loop's thread only, so without a
        # lock; cache lookups may come from threads (sync API endpoints, jobs): locked.
        # (route, method, status) -> [count, seconds, bytes sent, bytes received, buckets]
        self._requests: dict[tuple[str, str, int], list[Any]] = {}
        self._lock = threading.Lock()
        self._caches: dict[tuple[str, bool], int] = {}

    def request(self, key: tuple[str, str, int], seconds: float, sent: int,
                received: int) -> None:
        tally = self._requests.get(key)
        if tally is None:
            tally = self._requests[key] = [0, 0.0, 0, 0, [0] * len(_BOUNDS)]
        tally[0] += 1
        tally[1] += seconds
        tally[2] += sent
        tally[3] += received
        tally[4][bisect.bisect_left(_BOUNDS, seconds)] += 1

    def cache_lookup(self, cache: str, hit: bool) -> None:
        key = (cache, hit)
        with self._lock:
            self._caches[key] = self._caches.get(key, 0) + 1

    def flush(self) -> None:
        """Add what was counted since the last flush to the shared values (on the event
        loop's thread, like `request`)."""
        requests, self._requests = self._requests, {}
        with self._lock:
            caches, self._caches = self._caches, {}
        for (route, method, status), (count, seconds, sent, received, buckets) in \
                requests.items():
            REQUESTS.labels(route, method, str(status)).inc(count)
            observe_many(DURATION.labels(route, method), buckets, seconds)
            RESPONSE_BYTES.labels(route).inc(sent)
            REQUEST_BYTES.labels(route).inc(received)
        for (cache, hit), count in caches.items():
            (CACHE_HITS if hit else CACHE_MISSES).labels(cache).inc(count)


def observe_many(child: Any, buckets: list[int], total: float) -> None:
    """Add a batch of observations to a histogram's child: per bucket the number that fell
    in it (not cumulative), and their sum; what `observe` does one at a time. The library
    has no batch call; its children keep `_sum` and `_buckets` (since its first releases,
    and tests/ops/test_metrics.py checks this against `observe`)."""
    if not any(buckets):
        return
    child._sum.inc(total)
    for value, count in zip(child._buckets, buckets):
        if count:
            value.inc(count)


class ObservedRequests:
    """ASGI middleware, one layer with one `send` wrapper: the request id, each request's
    count, latency and bytes by route template, and the access log line.

    In order: the request id is set before anything runs and added to the response's
    headers; the request is counted by route template with its latency and bytes (also when
    the app raises); the access log line, when it is on, is written when the answer is
    complete. (These were two nested middlewares, with two extra coroutine calls for each of
    a response's two messages: a tenth of a manifest GET's time in the app.) `counting =
    False` (bench/toggled.py) keeps the ids and the access log and counts nothing.

    `registry_route` gives the template of a /v2 path that no handler labelled (a refusal
    in read-only mode, say); `api_route` the FastAPI route of an /api path answered before
    routing (a refused token). Both run only for such requests, never on the hot path.
    """

    def __init__(self, app: Any, tallies: Tallies,
                 registry_route: Callable[[str], str | None],
                 api_route: Callable[[Scope], str | None] = lambda scope: None,
                 access: Any = None, log_access: bool = False) -> None:
        self.app = app
        self.tallies = tallies
        self.registry_route = registry_route
        self.api_route = api_route
        self.access_log = AccessLog(access) if log_access else None
        self.counting = True

    def _count(self, scope: Scope, status: int, sent: int, received: int, seconds: float,
               failure: BaseException | None) -> None:
        try:
            if status >= 500 or failure is not None:
                if not status and not isinstance(failure, (asyncio.CancelledError, type(None))):
                    status = 500  # what the server answers for an exception that escaped
                if is_database_error(failure or scope.get(FAILURE_KEY)):
                    DATABASE_ERRORS.inc()
            self.tallies.request((scope.get(ROUTE_KEY) or self.route(scope),
                                  _METHODS.get(scope["method"], "other"), status),
                                 seconds, sent, received)
        except Exception:  # metrics must never fail a request
            log.exception("could not count a request")

    def route(self, scope: Scope) -> str:
        """The template of a request no handler labelled (never its raw path)."""
        path = scope["path"]
        exact = _EXACT.get(path)
        if exact is not None:
            return exact
        if path.startswith("/v2/"):
            return self.registry_route(path) or UNMATCHED_V2
        if path.startswith("/api/"):
            found = getattr(scope.get("route"), "path", None)  # FastAPI's, after routing
            return found or self.api_route(scope) or UNMATCHED_API
        if path.startswith("/static/"):
            return "static"
        return "console"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = incoming_request_id(scope) or new_request_id()
        set_request_id(rid)
        header = (b"x-request-id", rid.encode())
        start = time.perf_counter()
        status = 0
        sent = 0
        received = 0
        whole_file = False
        started: Any = ()

        async def send_observed(message: dict[str, Any]) -> None:
            nonlocal status, sent, started, whole_file
            kind = message["type"]
            if kind == "http.response.body":
                sent += len(message.get("body", b""))
            elif kind == "http.response.start":
                status = message["status"]
                started = message["headers"] = [*message.get("headers", ()), header]
            elif kind == "http.response.pathsend":
                sent += _content_length(started)
                whole_file = True
            await send(message)

        counted_receive = receive
        if scope["method"] in _BODY_METHODS:
            async def counted_receive() -> dict[str, Any]:
                nonlocal received
                message = await receive()
                body = message.get("body")
                if body:
                    received += len(body)
                return message

        failure: BaseException | None = None
        try:
            await self.app(scope, counted_receive, send_observed)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            seconds = time.perf_counter() - start
            if self.counting:
                self._count(scope, status, sent, received, seconds, failure)
            if self.access_log is not None:
                self.access_log.write(scope, int(status), -1 if whole_file else sent, seconds)


def fastapi_route(app: Any) -> Callable[[Scope], str | None]:
    """The template of the FastAPI route a request is for, asked of the app's routes (as its
    router would) for requests refused before routing, which FastAPI leaves unlabelled."""
    from starlette.routing import Match

    def find(scope: Scope) -> str | None:
        partial = None
        probe = {**scope, "type": "http"}
        for route in app.router.routes:
            match, _ = route.matches(probe)
            if match is Match.FULL:
                return getattr(route, "path", None)
            if match is Match.PARTIAL and partial is None:
                partial = getattr(route, "path", None)
        return partial
    return find


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int:
    for key, value in headers:
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


class InstanceCollector:
    """What the database knows, read when a scrape asks: jobs waiting and running per type,
    uploads in progress, and storage per namespace against its quota (the `limit` namespaces
    that use the most, so that the series stay bounded)."""

    def __init__(self, engine: Engine, job_types: Callable[[], Iterable[str]], limit: int,
                 edition: str) -> None:
        self.engine = engine
        self.job_types = job_types
        self.limit = limit
        self.edition = edition

    def describe(self) -> list[Metric]:
        return []  # collected on each scrape; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("moorage_build_info", "The version and edition serving",
                                 labels=["version", "edition"])
        info.add_metric([__version__, self.edition], 1)
        yield info
        try:
            depth, open_uploads, spaces = self._read()
        except Exception as exc:  # a scrape still answers with what the processes counted
            DATABASE_ERRORS.inc()
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            log.warning("metrics: the database did not answer (%s: %s); its series are left "
                        "out of this scrape", type(exc).__name__,
                        reason[0][:300] if reason else "")
            return
        queue = GaugeMetricFamily("moorage_job_queue_depth",
                                  "Jobs waiting (queued) or running, by type",
                                  labels=["type", "status"])
        for (job_type, status), count in sorted(depth.items()):
            queue.add_metric([job_type, status], count)
        yield queue
        yield GaugeMetricFamily("moorage_uploads_in_progress",
                                "Blob uploads started and not yet finished, cancelled or "
                                "expired", value=open_uploads)
        used = GaugeMetricFamily("moorage_namespace_storage_used_bytes",
                                 "Bytes of the distinct blobs a namespace's manifests "
                                 "reference", labels=["namespace"])
        quota = GaugeMetricFamily("moorage_namespace_storage_quota_bytes",
                                  "A namespace's storage quota (namespaces without one have "
                                  "no series)", labels=["namespace"])
        for name, storage_used, storage_quota in spaces:
            used.add_metric([name], storage_used)
            if storage_quota is not None:
                quota.add_metric([name], storage_quota)
        yield used
        yield quota

    def _read(self) -> tuple[dict[tuple[str, str], int], int, list[Any]]:
        depth = {(t, s): 0 for t in self.job_types() for s in ("queued", "running")}
        with self.engine.connect() as conn:
            for job_type, status, count in conn.execute(
                    select(jobs.c.type, jobs.c.status, func.count())
                    .where(jobs.c.status.in_(("queued", "running")))
                    .group_by(jobs.c.type, jobs.c.status)):
                depth[job_type, status] = count
            open_uploads = conn.execute(select(func.count()).select_from(uploads)).scalar_one()
            spaces = conn.execute(
                select(namespaces.c.name, namespaces.c.storage_used,
                       namespaces.c.storage_quota)
                .order_by(namespaces.c.storage_used.desc(), namespaces.c.name)
                .limit(self.limit)).all() if self.limit else []
        return depth, int(open_uploads), list(spaces)


class _Local:
    """This process's metrics, when there is no multiprocess folder."""

    def collect(self) -> Iterator[Metric]:
        return iter(_LOCAL.collect())


class Metrics:
    """The `/metrics` endpoint and the hooks that feed it, for one worker process."""

    def __init__(self, collector: InstanceCollector, token: str = "",
                 multiproc_dir: str | None = None) -> None:
        self.collector = collector
        self.token = token.encode()
        self.multiproc_dir = multiproc_dir if multiproc_dir is not None else \
            os.environ.get(MULTIPROC_ENV) or None
        # Read on every tick: values a feature keeps in this process that a gauge reports
        # (the audit backlog).
        self.samplers: list[Callable[[], None]] = []
        self.tallies = Tallies()
        self.cache_lookup = self.tallies.cache_lookup  # Registry.on_cache_lookup
        # One scrape at a time per process: scrapes that pile up while the database is slow
        # wait here, not in threads of their own.
        self._scraping: asyncio.Lock | None = None
        for cache in ("manifest", "tag"):  # both caches' series exist from the start, at 0
            CACHE_HITS.labels(cache)
            CACHE_MISSES.labels(cache)

    # -- hooks (called by the core and the features; cheap, never raising) ---------------
    @staticmethod
    def job_ended(job_type: str, status: str, seconds: float) -> None:
        JOB_RUNS.labels(job_type).inc()
        JOB_DURATION.labels(job_type).observe(seconds)
        if status != "succeeded":
            JOB_FAILURES.labels(job_type).inc()

    @staticmethod
    def redis_failed() -> None:
        REDIS_ERRORS.inc()

    @staticmethod
    def webhook_attempted(status: str) -> None:
        result = {"pending": "retrying"}.get(status, status)
        WEBHOOK_DELIVERIES.labels(result).inc()
        if status != "delivered":
            WEBHOOK_FAILURES.inc()

    @staticmethod
    def on_event(event: Event) -> None:
        """The event bus handler: uploads, mounts and garbage collections."""
        action = event.action
        if event.result != "success":
            return
        if action == "blob.push":
            BLOB_UPLOADS.inc()
            if event.size:
                BLOB_UPLOAD_BYTES.inc(event.size)
        elif action == "blob.mount":
            BLOB_MOUNTS.inc()
        elif action == "gc":
            GC_RUNS.inc()
            GC_FREED_BYTES.inc(int(event.detail.get("bytes_freed") or 0))
            GC_DELETED_BLOBS.inc(int(event.detail.get("blobs_deleted") or 0))

    @staticmethod
    def proxy_failed(namespace: str, reason: str) -> None:
        PROXY_UPSTREAM_FAILURES.labels(reason).inc()

    def watch_audit(self, recorder: Any) -> None:
        """Report an audit recorder's backlog and dropped events (audit/recorder.py)."""
        seen = {"dropped": 0}

        def sample() -> None:
            AUDIT_BACKLOG.set(recorder.waiting())
            dropped = recorder.stats.dropped
            if dropped < seen["dropped"]:  # the stats began again (a fork)
                seen["dropped"] = 0
            if dropped > seen["dropped"]:
                AUDIT_DROPPED.inc(dropped - seen["dropped"])
                seen["dropped"] = dropped
        self.samplers.append(sample)

    def tick(self) -> None:
        """Bring this process's shared values up to date: the tallies of the hot path, and
        the sampled gauges."""
        try:
            self.tallies.flush()
        except Exception:
            log.exception("metrics: the request tallies could not be written")
        for sampler in self.samplers:
            try:
                sampler()
            except Exception:
                log.exception("metrics: a sampler failed")

    async def tick_every(self, seconds: float = 1.0) -> None:
        """In each worker, for its lifetime (and once more as it stops)."""
        try:
            while True:
                await asyncio.sleep(seconds)
                self.tick()
        finally:
            self.tick()

    # -- the endpoint --------------------------------------------------------------------
    def authorized(self, scope: Scope) -> bool:
        if not self.token:
            return True
        given = header(scope, b"authorization") or ""
        scheme, _, credentials = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = scope["method"] == "HEAD"
        if scope["method"] not in ("GET", "HEAD"):
            await respond(send, 405, b"use GET\n", {"allow": "GET, HEAD",
                                                     "content-type": "text/plain"})
            return
        if not self.authorized(scope):
            await respond(send, 401, b"a bearer token is required (metrics_token)\n",
                          {"www-authenticate": 'Bearer realm="moorage metrics"',
                           "content-type": "text/plain", "cache-control": "no-store"},
                          head=head)
            return
        if self._scraping is None:
            self._scraping = asyncio.Lock()
        async with self._scraping:
            self.tick()  # this process's counts up to now; the others' are a second old at most
            body, content_type = await asyncio.to_thread(self.render,
                                                         header(scope, b"accept"))
        await respond(send, 200, body, {"content-type": content_type,
                                        "cache-control": "no-store"}, head=head)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition of every process's metrics and the database's, in the format the
        scraper asked for (Prometheus text, or OpenMetrics)."""
        scrape = CollectorRegistry(auto_describe=False)
        if self.multiproc_dir:
            forget_dead_processes(self.multiproc_dir)
            multiprocess.MultiProcessCollector(scrape, path=self.multiproc_dir)
        else:
            scrape.register(_Local())  # type: ignore[arg-type]
        scrape.register(self.collector)  # type: ignore[arg-type]
        encoder, content_type = choose_encoder(accept or "")
        return encoder(scrape), content_type


def forget_dead_processes(path: str) -> list[int]:
    """Drop the live gauges of worker processes that are gone (granian respawns a worker
    that dies, under a new PID). Their counters stay: what they counted happened."""
    dead = set()
    try:
        names = os.listdir(path)
    except OSError:
        return []
    for name in names:
        found = _LIVE_GAUGE_FILE.fullmatch(name)
        if found and not _alive(int(found[1])):
            dead.add(int(found[1]))
    for pid in dead:
        multiprocess.mark_process_dead(pid, path)
    return sorted(dead)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def install(*, registry: Any, worker: Any, engine: Engine, redis_health: Any,
            webhooks: Any, audit: Any, token: str, namespaces_limit: int,
            edition: str, proxy: Any = None) -> Metrics:
    """Wire metrics into the parts app.py hands over: the core's hooks, the event bus, the
    features' hooks. Returns the `/metrics` endpoint."""
    metrics = Metrics(InstanceCollector(engine, lambda: list(worker.types), namespaces_limit,
                                        edition), token)
    registry.on_cache_lookup = metrics.cache_lookup
    registry.bus.subscribe(metrics.on_event)
    worker.observers.append(metrics.job_ended)
    if redis_health is not None:
        redis_health.listeners.append(metrics.redis_failed)
    if webhooks is not None:
        webhooks.job.observers.append(metrics.webhook_attempted)
    if audit is not None:
        metrics.watch_audit(audit)
    if proxy is not None:
        proxy.on_failure.append(metrics.proxy_failed)
    return metrics
