"""Distribution between registries (issue 18): proxy cache namespaces (proxy/), replication
rules and their executions (service.py, on the copy engine of copy.py and endpoints.py),
artifact subscriptions and import. Each part installs itself from app.py through a small
function here."""

from __future__ import annotations

from typing import Any


def install_proxy(settings: Any, engine: Any, registry: Any, manager: Any) -> Any:
    """Proxy cache namespaces (the `proxy_cache` edition switch); the service."""
    from pathlib import Path

    from moorage.replication.proxy import install
    from moorage.store.keys import load_keyring

    data_dir = Path(settings.data_dir).resolve()
    opened: list[Any] = []

    def keyring() -> Any:  # opened on first use: only a sealed password needs it
        if not settings.encryption:
            return None
        if not opened:
            opened.append(load_keyring(settings.master_key_file, data_dir))
        return opened[0]
    return install(engine, registry, manager, keyring, data_dir / "tmp")


def _keyring_and_tuning(settings: Any, work: str) -> tuple[Any, Any]:
    """What rules, subscriptions and imports share: the master keyring that seals their
    upstream passwords (with encryption on) and the replication settings (step timeout, job
    timeout, attempts, concurrency), with `work` the folder under tmp/ for CA bundles."""
    from pathlib import Path

    from moorage.replication.service import Tuning
    from moorage.store.keys import load_keyring

    data_dir = Path(settings.data_dir).resolve()
    keyring = load_keyring(settings.master_key_file, data_dir) if settings.encryption else None
    return keyring, Tuning(step_timeout=float(settings.replication_step_timeout),
                           job_timeout=settings.replication_job_timeout,
                           attempts=settings.replication_attempts,
                           concurrency=settings.replication_concurrency,
                           work_dir=data_dir / "tmp" / work)


def install_rules(settings: Any, engine: Any, registry: Any, worker: Any, edition: Any,
                  bus: Any) -> Any:
    """Replication rules: their job type, the push/delete trigger on the bus, schedules."""
    from moorage.replication.service import ReplicationService
    from moorage.replication.store import RuleStore

    keyring, tuning = _keyring_and_tuning(settings, "replication")
    service = ReplicationService(RuleStore(engine), registry, worker, edition, bus, keyring,
                                 tuning)
    worker.register(service.job_type())
    bus.subscribe(service.on_event)
    return service


def install_subscriptions(settings: Any, engine: Any, registry: Any, worker: Any,
                          edition: Any, bus: Any) -> Any:
    """Artifact subscriptions (the `artifact_subscriptions` quota): the service, with its
    job type registered; schedules live in the scheduler. A subscription's transfers are a
    pull rule's, under the same settings."""
    from moorage.replication.subscriptions.service import SubscriptionService
    from moorage.replication.subscriptions.store import SubscriptionStore

    keyring, tuning = _keyring_and_tuning(settings, "subscriptions")
    service = SubscriptionService(SubscriptionStore(engine), registry, worker, edition, bus,
                                  keyring, tuning)
    worker.register(service.job_type())
    return service


def install_imports(settings: Any, engine: Any, registry: Any, worker: Any, edition: Any,
                    bus: Any) -> Any:
    """Imports from other registries (the `import` edition switch): their job type. They
    share the replication settings (step timeout, job timeout, attempts, concurrency)."""
    from moorage.replication.imports.service import ImportService
    from moorage.replication.imports.store import ImportStore

    keyring, tuning = _keyring_and_tuning(settings, "imports")
    service = ImportService(ImportStore(engine), registry, worker, edition, bus, keyring,
                            tuning)
    worker.register(service.job_type())
    return service
