"""Artifact subscriptions (issue 18, item 3): follow an upstream repository into a local
one with a tag filter (glob, regex or SemVer range) on a schedule, optionally keeping only
the newest N. model.py and filters.py are pure; store.py holds the tables; service.py the
management and the run (a job on the copy engine)."""

from __future__ import annotations

from typing import Any


def install(settings: Any, engine: Any, registry: Any, worker: Any, edition: Any,
            bus: Any) -> Any:
    """The service, with its job type registered; schedules live in the scheduler."""
    from pathlib import Path

    from moorage.replication.service import Tuning
    from moorage.replication.subscriptions.service import SubscriptionService
    from moorage.replication.subscriptions.store import SubscriptionStore
    from moorage.store.keys import load_keyring

    data_dir = Path(settings.data_dir).resolve()
    keyring = load_keyring(settings.master_key_file, data_dir) if settings.encryption else None
    # the replication settings: a subscription's transfers are a pull rule's
    limits = {name: getattr(settings, f"replication_{name}")
              for name in ("job_timeout", "attempts", "concurrency")}
    tuning = Tuning(step_timeout=float(settings.replication_step_timeout),
                    work_dir=data_dir / "tmp" / "subscriptions", **limits)
    service = SubscriptionService(SubscriptionStore(engine), registry, worker, edition, bus,
                                  keyring, tuning)
    worker.register(service.job_type())
    return service
