"""Distribution between registries (issue 18): the copy engine (copy.py, endpoints.py),
replication rules and their executions (service.py), and proxy cache namespaces (proxy/).
Each part installs itself from app.py through a small function here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moorage.access.editions import Edition
from moorage.jobs.worker import Worker
from moorage.registry.events import EventBus
from moorage.settings import Settings


def install_rules(settings: Settings, engine: Any, registry: Any, worker: Worker,
                  edition: Edition, bus: EventBus) -> Any:
    """Replication rules: their job type, the push/delete trigger on the bus, schedules."""
    from moorage.replication.service import ReplicationService, Tuning
    from moorage.replication.store import RuleStore
    from moorage.store.keys import load_keyring

    data_dir = Path(settings.data_dir).resolve()
    keyring = load_keyring(settings.master_key_file, data_dir) if settings.encryption else None
    service = ReplicationService(
        RuleStore(engine), registry, worker, edition, bus, keyring,
        Tuning(step_timeout=float(settings.replication_step_timeout),
               job_timeout=settings.replication_job_timeout,
               attempts=settings.replication_attempts,
               concurrency=settings.replication_concurrency,
               work_dir=data_dir / "tmp" / "replication"))
    worker.register(service.job_type())
    bus.subscribe(service.on_event)
    return service
