"""Assembles the house: settings → adapters → core → features → routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator
from typing import TYPE_CHECKING

from moorage.access.authentication import Authenticator
from moorage.access.authorization import Authorizer
from moorage.access.editions import Edition, artifact_check
from moorage.access.management import AccessManager
from moorage.access.sessions import ConsoleSessions
from moorage.access.throttle import LoginThrottle, ThrottlePolicy
from moorage.access.tokens import (TokenIssuer, derived_key, load_or_create_key,
                                   load_or_create_shared_key)
from moorage.cache.login_failures import FallbackFailures, RedisLoginFailures
from moorage.cache.outage import RedisHealth
from moorage.db.migrate import ensure_schema
from moorage.audit import AuditRecorder, AuditStore  # audit
from moorage.db.access import AccessStore, LoginFailureStore
from moorage.db.metadata import MetadataStore, open_engine, sqlite_url
from moorage.db.policy import PolicyStore
from moorage.domains import DomainService
from moorage.domains import install as install_domains
from moorage.processes import FRONT_SECRET_ENV
from moorage.events import WebhookService
from moorage.events import install as install_webhooks
from moorage.jobs.queue import JobQueue
from moorage.jobs.scheduler import Scheduler
from moorage.jobs.worker import JobContext, JobType, Worker
from moorage.ops.logs import configure as configure_logs
from moorage.ops.maintenance import ReadOnlyMode, registry_refusal
from moorage.ops.metrics import Metrics, ObservedRequests, fastapi_route
from moorage.ops.metrics import install as install_metrics
from moorage.ops.health import Readiness, alive, database_check, redis_check, store_check
from moorage.policy.immutability import ImmutabilityPolicy
from moorage.policy.retention import run_rule
from moorage.registry.events import EventBus
from moorage.registry.gc import announce as announce_gc
from moorage.registry.gc import collect_garbage
from moorage.cache.tags import RedisTagCache
from moorage.db.changes import SharedTableSignal, per_request, signal_of
from moorage.registry.locks import (FileBlobLock, FileUploadLock, RedisBlobLock,
                                    RedisUploadLock)
from moorage.registry.service import Registry
from moorage.settings import Settings, load_settings
from moorage.store.encrypted import warn_if_plaintext, wrap_if_enabled
from moorage.store.factory import open_blob_store
from moorage.web.auth import RegistryAccess
from moorage.web.bodyguard import BODY_METHODS, guarded
from moorage.web.front import FrontHeaders
from moorage.web.ratelimit import RateLimited, RateLimiter
from moorage.web.http import Receive, Scope, Send, respond_error
from moorage.web.registry_api import RegistryAPI, route_template
from moorage.web.token_api import TokenAPI
from moorage.web.chartrepo import PREFIXES as CHART_PREFIXES
from moorage.web.chartrepo import ChartRepositoryAPI

log = logging.getLogger("moorage")
# Methods that change something on /v2: refused while the registry is read-only.
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


if TYPE_CHECKING:  # imported when configured: authlib and joserfc cost every worker's start
    from moorage.web.console import ConsoleSite  # imported by build_console (see there)
    from moorage.sso.oidc_console import OidcSignIn
    from moorage.scan.service import ScanService
    from moorage.signing.service import SigningService
    from moorage.blocking import PullBlocking
    from moorage.replication.service import ReplicationService
    from moorage.replication.proxy import ProxyService
    from moorage.replication.subscriptions.service import SubscriptionService
    from moorage.replication.imports.service import ImportService
    from moorage.helm import HelmService

@dataclass
class Instance:
    """Everything one Moorage instance is made of, wired together once per process."""

    settings: Settings
    registry: Registry
    access_store: AccessStore
    edition: Edition
    authenticator: Authenticator
    authorizer: Authorizer
    manager: AccessManager
    issuer: TokenIssuer
    access: RegistryAccess
    policies: PolicyStore
    immutability: ImmutabilityPolicy
    worker: Worker
    sessions: ConsoleSessions
    read_only: ReadOnlyMode
    redis: object | None = None  # the Redis client, when one is configured
    redis_health: RedisHealth | None = None  # this process's view of whether Redis answers
    # -- features (set by their install functions in build_instance) --
    webhooks: WebhookService | None = None
    audit: AuditRecorder | None = None  # audit: None when the edition has no audit log
    domains: DomainService | None = None  # custom domain names (refused by small editions)
    oidc: OidcSignIn | None = None  # OpenID Connect sign-in, when oidc_issuer is set
    scans: ScanService | None = None  # vulnerability scanning, when the edition has it
    signing: SigningService | None = None  # image signing, when the edition has it
    blocking: PullBlocking | None = None  # pull policies (threat blocking), when it has it
    replication: ReplicationService | None = None  # replication rules, when the edition has them
    proxy: ProxyService | None = None  # proxy cache namespaces, when the edition has them
    subscriptions: SubscriptionService | None = None  # artifact subscriptions (basic and up)
    imports: ImportService | None = None  # imports from other registries, when the edition has them
    helm: HelmService | None = None  # Helm charts: installed on every edition (personal refuses)


def redis_from_url(url: str):  # type: ignore[no-untyped-def]
    """A client that fails fast when Redis is away (one immediate retry, which reconnects
    after a Redis restart; redis-py's default retries for seconds with backoff), so that the
    callers' fallbacks (cache/outage.py) answer at once."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2,
                                health_check_interval=30, retry=Retry(NoBackoff(), 1))


def build_instance(settings: Settings) -> Instance:
    data_dir = Path(settings.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = open_engine(settings.database_url or sqlite_url(data_dir))
    ensure_schema(engine)
    db = MetadataStore(engine)
    edition = Edition(settings.edition, settings.quota_overrides())
    redis_client = redis_from_url(settings.redis_url) if settings.redis_url else None
    # one view per process of whether Redis answers: callers skip it for a moment after a
    # failure, and the outage is logged once a minute, not once per request
    health = RedisHealth(settings.redis_url)
    if redis_client is not None:  # replicas: locks every one of them sees
        blob_lock = RedisBlobLock(redis_client, health=health)
        upload_lock = RedisUploadLock(redis_client, health=health)
    else:  # one machine: file locks cover all its worker processes
        blob_lock = FileBlobLock(data_dir / "locks" / "blobs")
        upload_lock = FileUploadLock(data_dir / "locks" / "uploads")
    bus = EventBus()
    store = wrap_if_enabled(open_blob_store(settings, data_dir), settings, data_dir)
    registry = Registry(db, store, blob_lock, upload_lock,
                        bus, settings.manifest_cache_bytes, settings.small_blob_cache_bytes)
    registry.touch_interval = min(60.0, settings.gc_grace_seconds / 4)
    registry.uploads.max_open = settings.max_open_uploads
    if redis_client is not None and not isinstance(signal_of(engine), SharedTableSignal):
        # On PostgreSQL each worker keeps tag → digest itself until the next commit on any
        # replica (db/changes.py, db/rawreads.py): a Redis round trip per pull would only
        # repeat that answer, would miss tags changed by anything but a Registry, and would
        # refuse tag changes while Redis is away (docs/benchmarks.md, "The pull path on
        # PostgreSQL")
        registry.tags_cache = RedisTagCache(redis_client, health=health)
    if not edition.has("oci_artifacts"):
        registry.manifest_checks.append(artifact_check(edition))
    access_store = AccessStore(engine)
    key = (load_or_create_key(data_dir / "keys") if engine.dialect.name == "sqlite"
           else load_or_create_shared_key(engine))
    failures = (FallbackFailures(RedisLoginFailures(redis_client), LoginFailureStore(engine),
                                 health) if redis_client is not None
                else LoginFailureStore(engine))
    throttle = LoginThrottle(failures, ThrottlePolicy(
        settings.login_lockout_failures, settings.login_lockout_address_failures,
        settings.login_lockout_base_seconds, settings.login_lockout_max_seconds))
    authenticator = Authenticator(access_store, throttle, bus, derived_key(key, "login names"))
    authorizer = Authorizer(access_store, edition, settings.auto_create_namespace,
                            settings.namespace_creators)
    manager = AccessManager(access_store, authorizer, edition)
    issuer = TokenIssuer(key, settings.service, ttl_seconds=settings.token_ttl_seconds)
    access = RegistryAccess(settings.auth == "token", authenticator, authorizer, manager, issuer,
                            RegistryAccess.proxies(settings.trusted_proxies),
                            settings.proxy_header, bus)
    access.public_url = settings.public_url.rstrip("/")
    if settings.rate_limit_per_minute > 0:
        access.limiter = RateLimiter(settings.rate_limit_per_minute, settings.redis_url,
                                     health=health)
    policies = PolicyStore(engine)
    immutability = ImmutabilityPolicy(policies)
    registry.tag_checks.append(immutability.check)
    registry.guards.append(immutability)
    manager.guards.append(immutability)
    worker = Worker(JobQueue(engine, settings.job_lease_seconds), Scheduler(engine))
    sessions = ConsoleSessions(access_store, authenticator, derived_key(key, "console csrf"),
                               settings.console_session_seconds, settings.console_idle_seconds)
    instance = Instance(settings, registry, access_store, edition, authenticator, authorizer,
                        manager, issuer, access, policies, immutability, worker, sessions,
                        ReadOnlyMode(engine))
    instance.redis = redis_client
    instance.redis_health = health
    register_jobs(instance)
    # -- features: each wires its bus handlers, hooks and job types itself --
    instance.webhooks = install_webhooks(settings, registry, worker, edition, manager)
    instance.domains = install_domains(settings, engine, edition, data_dir)
    if settings.ldap_url:  # single sign-on: an LDAP directory checks its accounts' passwords
        from moorage.sso.ldap import install as install_ldap
        install_ldap(settings, authenticator, manager)
    if settings.oidc_issuer:  # single sign-on: the console's OpenID Connect sign-in
        from moorage.sso import oidc_setup
        instance.oidc = oidc_setup.install(settings, authenticator, manager,
                                           derived_key(key, "oidc state"))
    if edition.has("scanning"):  # scan: jobs, scan on push, reports (imported only then)
        from moorage.scan.engines.harbor import install as install_adapters
        from moorage.scan.service import SyftConfig
        from moorage.scan.service import install as install_scanning
        # registered Harbor adapters: read from the database when each scan starts (their
        # service, which opens the keyring of sealed secrets, is built on first use)
        built: list = []

        def adapters():  # type: ignore[no-untyped-def]
            if not built:
                built.append(install_adapters(settings, engine, edition, issuer, registry))
            return built[0]
        instance.scans = install_scanning(
            registry, worker, edition, concurrency=settings.scan_concurrency,
            timeout_seconds=settings.scan_timeout, on_push=settings.scan_on_push,
            engine_sources=[lambda: adapters().engines()],
            syft=SyftConfig(settings.scan_syft, settings.scan_syft_path,
                            data_dir / "tmp" / "scan"))
        instance.scans.source_names = lambda: [f"harbor:{r.name}" for r in
                                               adapters().store.list() if r.enabled]
    if edition.has("signing"):  # signing: keys, signatures, stored verification
        from moorage.signing.service import install as install_signing
        from moorage.store.keys import load_keyring
        # server-held private keys are sealed with the master key: only with encryption on
        keyring = load_keyring(settings.master_key_file, data_dir) \
            if settings.encryption else None
        instance.signing = install_signing(registry, worker, keyring,
                                           settings.signing_trusted_root)
    if edition.has("threat_blocking"):  # blocking: pull policies, asked before each pull
        from moorage.blocking import install as install_blocking
        instance.blocking = install_blocking(
            registry, worker, signing=lambda: getattr(instance, "signing", None))
    if edition.quota("sync_rules"):  # replication: rules, executions, the push trigger
        from moorage.replication import install_rules
        instance.replication = install_rules(settings, engine, registry, worker, edition, bus)
    if edition.quota("artifact_subscriptions"):  # replication: artifact subscriptions
        from moorage.replication import install_subscriptions
        instance.subscriptions = install_subscriptions(settings, engine, registry, worker,
                                                       edition, bus)
    if edition.has("proxy_cache"):  # replication: proxy cache namespaces (pull through)
        from moorage.replication import install_proxy
        instance.proxy = install_proxy(settings, engine, registry, manager)
    if edition.has("import"):  # replication: imports from other registries (jobs)
        from moorage.replication import install_imports
        instance.imports = install_imports(settings, engine, registry, worker, edition, bus)
    # helm: on every edition, so that a personal instance refuses charts by name
    from moorage.helm import install as install_helm
    instance.helm = install_helm(settings, engine, registry, edition, bus)
    if edition.has("audit_log"):  # audit: record pushes, pulls, logins, management changes
        instance.audit = AuditRecorder(AuditStore(engine))
        bus.subscribe(instance.audit)
    return instance


def register_jobs(instance: Instance) -> None:
    """The job types of the core; features add theirs the same way."""
    registry, settings = instance.registry, instance.settings

    def gc(ctx: JobContext) -> dict[str, object]:
        if not ctx.payload.get("dry_run") and instance.read_only.state().on:
            ctx.log("skipped: the registry is in read-only mode")
            return {"skipped": "read-only mode"}
        grace = float(ctx.payload.get("grace_seconds", settings.gc_grace_seconds))
        result = collect_garbage(registry.db, registry.store, registry.lock, grace,
                                 bool(ctx.payload.get("dry_run")), ctx.log, ctx.progress,
                                 registry.gc_holds)
        announce_gc(registry.bus, result)
        return result.as_dict()

    def retention(ctx: JobContext) -> dict[str, object]:
        rule = instance.policies.retention_rule(int(ctx.payload["rule_id"]))
        if rule is None:
            ctx.log(f"retention rule {ctx.payload['rule_id']} no longer exists")
            return {"skipped": "rule deleted"}
        if not rule.enabled and ctx.payload.get("schedule"):
            return {"skipped": "rule disabled"}
        if not ctx.payload.get("dry_run") and instance.read_only.state().on:
            ctx.log("skipped: the registry is in read-only mode")
            return {"skipped": "read-only mode"}
        return run_rule(rule, instance.policies, registry, instance.immutability.snapshot(),
                        bool(ctx.payload.get("dry_run")), ctx.log, ctx.check)

    instance.worker.register(JobType("gc", gc, concurrency=1, timeout_seconds=6 * 3600,
                                     max_attempts=1))
    instance.worker.register(JobType("retention", retention, concurrency=2,
                                     timeout_seconds=3600, max_attempts=3))
    if settings.gc_schedule:
        instance.worker.scheduler.upsert("gc", settings.gc_schedule, "gc")  # type: ignore[union-attr]


class MoorageApp:
    """The ASGI application: /v2 registry API, /auth/token, /api/v1, health, lifespan."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.instance = build_instance(settings)
        self.registry = self.instance.registry
        self.registry_api = RegistryAPI(self.registry, self.instance.access,
                                        settings.max_manifest_bytes)
        self.token_api = TokenAPI(self.instance.access, settings.refresh_token_ttl_seconds)
        from moorage.web.management_api import create_management_api
        # The request rate limit applies to the management API as to /v2 and /auth/token.
        api = create_management_api(self.instance)
        self.management_api = RateLimited(api, self.instance.access.limit)
        self.console = build_console(self.instance, api)
        self.chartrepo = build_chartrepo(self.instance)
        self.readiness = build_readiness(self.instance)
        self.metrics = build_metrics(self.instance)
        # Outermost: every request gets its id (and its access log line) whatever answers it,
        # and is counted by route template: one layer for both (ops/metrics.py).
        self._http = ObservedRequests(self._guarded, self.metrics.tallies, route_template,
                                      fastapi_route(api), self.instance.access,
                                      settings.access_log)
        signal = signal_of(self.instance.registry.db.engine)
        if isinstance(signal, SharedTableSignal):
            # PostgreSQL: each request reads the shared commit signal once (db/changes.py)
            self._http = per_request(self._http, signal)
        front_secret = os.environ.get(FRONT_SECRET_ENV)
        if front_secret:  # behind the TLS front of `moorage serve`: believe what it says
            self._http = FrontHeaders(self._http, front_secret)
        self._tasks: list[asyncio.Task[None]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        timeout = self.settings.body_read_timeout_seconds
        if timeout and scope["method"] in BODY_METHODS:
            await guarded(self._route, scope, receive, send, timeout)
        else:
            await self._route(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path.startswith("/v2"):
            if scope["method"] in WRITES:
                read_only = self.instance.read_only
                state = read_only.kept() or await asyncio.to_thread(read_only.state)
                if state.on:
                    await respond_error(send, registry_refusal(state))
                    return
            await self.registry_api(scope, receive, send)
        elif path == "/auth/token":
            await self.token_api(scope, receive, send)
        elif path.startswith(CHART_PREFIXES):  # helm: the chart repositories
            await self.chartrepo(scope, receive, send)
        elif path.startswith("/api/"):
            await self.management_api(scope, receive, send)
        elif path == "/healthz":
            await alive(scope, receive, send)
        elif path == "/readyz":
            await self.readiness(scope, receive, send)
        elif path == "/metrics":
            await self.metrics(scope, receive, send)
        else:  # the web console has every other path
            await self.console(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._tasks.append(asyncio.create_task(self._expire_uploads()))
                self._tasks.append(asyncio.create_task(self.metrics.tick_every()))
                if self.instance.audit is not None:  # audit: start the flusher
                    self.instance.audit.start()
                if self.settings.run_workers:
                    self._stop_workers = asyncio.Event()
                    self._tasks.append(asyncio.create_task(
                        self.instance.worker.run(self._stop_workers)))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in self._tasks:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                if self.instance.audit is not None:  # audit: write what is still buffered
                    await asyncio.to_thread(self.instance.audit.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _expire_uploads(self) -> None:
        """Uploads idle past their TTL are dropped, hourly; until then they can resume."""
        while True:
            try:
                gone = await self.registry.uploads.expire(self.settings.upload_ttl_seconds)
                if gone:
                    log.info("expired %d abandoned uploads", gone)
            except Exception:
                log.exception("upload expiry failed")
            await asyncio.sleep(3600)


def build_chartrepo(instance: Instance) -> ChartRepositoryAPI:
    """helm: ChartMuseum's API at /chartrepo/NS (and Harbor's /api/chartrepo/NS alias)."""
    assert instance.helm is not None
    return ChartRepositoryAPI(instance.helm, instance.access, instance.edition,
                              lambda: instance.read_only.state().on)


def build_readiness(instance: Instance) -> Readiness:
    """What /readyz checks: the database, the blob store and, when configured, Redis."""
    checks = {"database": database_check(instance.registry.db.engine),
              "storage": store_check(instance.registry.store)}
    if instance.redis is not None:
        checks["redis"] = redis_check(instance.redis)
    return Readiness(checks)


def build_metrics(instance: Instance) -> Metrics:
    """/metrics, and the hooks of the core and the features that feed it."""
    settings = instance.settings
    return install_metrics(registry=instance.registry, worker=instance.worker,
                           engine=instance.registry.db.engine,
                           redis_health=instance.redis_health, webhooks=instance.webhooks,
                           audit=instance.audit, proxy=instance.proxy,
                           token=settings.metrics_token,
                           namespaces_limit=settings.metrics_namespaces,
                           edition=settings.edition)


def build_console(instance: Instance, api: object) -> ConsoleSite:
    """The web console, with the core's pages; features add theirs here when they are on.

    Imported here, not with this module: the console brings FastAPI and the whole management
    API with it (~1 s of CPU), which `moorage serve`'s preparation child, importing this module
    for build_instance, and the CLI's local commands never use."""
    from moorage.web.console import ConsoleSite
    from moorage.web.console.pages import CORE_PAGES

    site = ConsoleSite(instance.access, instance.sessions, api,
                       instance.settings.console_secure_cookies)
    for pages in CORE_PAGES:
        site.install(pages)
    if instance.edition.has("scanning"):  # scan: the scanner adapters' page
        from moorage.web.console.pages import scanners as scanner_pages
        from moorage.web.console.pages import scanning as scanning_pages
        site.install(scanner_pages)
        site.install(scanning_pages)
    if instance.edition.has("signing"):  # signing: keys pages, the manifest's signatures
        from moorage.web.console.pages import signing as signing_pages
        site.install(signing_pages)
    if instance.proxy is not None:  # replication: the proxy caches' administration page
        from moorage.web.console.pages import proxy as proxy_pages
        site.install(proxy_pages)
    if instance.blocking is not None:  # blocking: the namespace's pull policy page
        from moorage.web.console.pages import pull_policy as pull_policy_pages
        site.install(pull_policy_pages)
    if instance.replication is not None:  # replication: rules, executions, logs
        from moorage.web.console.pages import replication as replication_pages
        site.install(replication_pages)
    if instance.subscriptions is not None:  # replication: artifact subscriptions' pages
        from moorage.web.console.pages import subscriptions as subscription_pages
        site.install(subscription_pages)
    if instance.imports is not None:  # replication: imports (start, progress, log)
        from moorage.web.console.pages import imports as import_pages
        site.install(import_pages)
    if instance.edition.has("helm_charts"):  # helm: charts, versions, values and README
        from moorage.web.console.pages import charts as chart_pages
        site.install(chart_pages)
    if instance.oidc is not None:  # the "Sign in with …" button and the provider's callback
        from moorage.sso import oidc_setup
        oidc_setup.install_pages(site, instance.oidc)
    return site


def prepare_instance(settings: Settings, admin_password: str | None) -> str | None:
    """First-start work done once, before workers fork: schema, keys, the admin account.

    Returns the admin password when it was generated, so the caller can print it once.
    """
    with collector_paused():
        instance = build_instance(settings)
    warn_if_plaintext(instance.registry.store)
    return instance.manager.bootstrap_admin(admin_password)


def create_app() -> MoorageApp:
    """Factory for granian workers: settings come from the environment the CLI exported."""
    bind_worker_to_server()
    settings = load_settings()
    configure_logs(settings.log_level, settings.log_format)
    with collector_paused():
        app = MoorageApp(settings)
    tune_worker_runtime()
    return app


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while the app is built, on again after.

    Building the app makes hundreds of thousands of objects that all live on (modules,
    pydantic schemas, FastAPI's ~140 routes), so every collection the allocations trigger
    meanwhile walks a growing heap and frees almost nothing: ~8% of a worker's start-up CPU.
    What the build left as garbage is collected by the next collection (tune_worker_runtime
    runs one at once in a worker)."""
    import gc

    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def bind_worker_to_server() -> None:
    """First thing in a worker: it exits when the `moorage serve` main process that forked it
    dies (moorage/processes.py), and what it writes in the data folder is private (umask 077,
    store/datadir.py). Kept out of the app's assembly: it is about the process, not the app.
    """
    from moorage.processes import die_with_parent
    from moorage.store.datadir import private_umask

    private_umask()
    die_with_parent()


def tune_worker_runtime() -> None:
    """Runtime settings for a long-lived server process, applied once the app is built.

    gc.freeze(): the modules and the app built at start-up (~100 MiB of objects that live as
    long as the process) leave the collector's view, so full collections, which otherwise walk
    all of them and stall every request in flight, stay short. A GIL switch interval of 1 ms
    instead of 5 ms bounds how long a request waits while the audit flusher thread runs.
    """
    import gc
    import sys

    gc.collect()
    gc.freeze()
    sys.setswitchinterval(0.001)
    release_big_buffers()


def release_big_buffers() -> None:
    """Buffers of 4 MiB and more (upload batches, Range pieces) mmapped and given back to the
    system when freed, and two malloc arenas at most (store/heap.py says why): with a thread
    pool each thread may get an arena of its own, and after the first upload every 8 MiB
    batch would stay in one once freed."""
    from moorage.store.heap import bound_arenas, keep_big_buffers_off_the_heap

    keep_big_buffers_off_the_heap(4 << 20)
    bound_arenas(2)
