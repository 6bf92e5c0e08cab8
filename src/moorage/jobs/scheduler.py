"""Cron schedules that enqueue jobs. A schedule fires once per due time across replicas:
advancing `next_run_at` is a compare-and-set, and only the replica that wins it enqueues."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from collections.abc import Callable
from typing import Any

from croniter import croniter
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from moorage.db.schema import schedules


def next_time(cron: str, after: float) -> float:
    return croniter(cron, datetime.fromtimestamp(after, timezone.utc)).get_next(float)


def valid_cron(cron: str) -> bool:
    return croniter.is_valid(cron)


@dataclass(frozen=True)
class Schedule:
    id: int
    name: str
    cron: str
    job_type: str
    payload: dict[str, Any]
    enabled: bool
    next_run_at: float
    last_job_id: int | None


_COLS = (schedules.c.id, schedules.c.name, schedules.c.cron, schedules.c.job_type,
         schedules.c.payload, schedules.c.enabled, schedules.c.next_run_at,
         schedules.c.last_job_id)


def _schedule(row: Any) -> Schedule:
    return Schedule(row[0], row[1], row[2], row[3], json.loads(row[4] or "{}"), bool(row[5]),
                    row[6], row[7])


class Scheduler:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def upsert(self, name: str, cron: str, job_type: str,
               payload: dict[str, Any] | None = None, enabled: bool = True) -> Schedule:
        if not valid_cron(cron):
            raise ValueError(f"invalid cron expression {cron!r} (five fields: m h dom mon dow)")
        values = {"cron": cron, "job_type": job_type, "payload": json.dumps(payload or {}),
                  "enabled": enabled, "next_run_at": next_time(cron, time.time())}
        with self.engine.begin() as conn:
            if not conn.execute(update(schedules).where(schedules.c.name == name)
                                .values(**values)).rowcount:
                try:
                    conn.execute(insert(schedules).values(name=name, **values))
                except IntegrityError:
                    pass
        found = self.get(name)
        assert found is not None
        return found

    def get(self, name: str) -> Schedule | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*_COLS).where(schedules.c.name == name)).first()
        return _schedule(row) if row else None

    def list(self) -> list[Schedule]:
        with self.engine.connect() as conn:
            return [_schedule(r) for r in conn.execute(select(*_COLS).order_by(schedules.c.name))]

    def remove(self, name: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(schedules).where(schedules.c.name == name)).rowcount > 0

    def tick(self, enqueue: Callable[..., int | None], now: float | None = None) -> list[int]:
        """Enqueue a job for every due schedule; returns the new job ids."""
        now = now or time.time()
        enqueued: list[int] = []
        with self.engine.connect() as conn:
            due = [_schedule(r) for r in conn.execute(select(*_COLS).where(
                schedules.c.enabled.is_(True), schedules.c.next_run_at <= now))]
        for schedule in due:
            following = next_time(schedule.cron, now)
            with self.engine.begin() as conn:
                won = conn.execute(update(schedules).where(
                    schedules.c.id == schedule.id,
                    schedules.c.next_run_at == schedule.next_run_at).values(
                    next_run_at=following)).rowcount
            if not won:
                continue
            job_id = enqueue(schedule.job_type,
                                   {**schedule.payload, "schedule": schedule.name},
                                   dedupe_key=f"schedule:{schedule.name}")
            if job_id is not None:
                enqueued.append(job_id)
                with self.engine.begin() as conn:
                    conn.execute(update(schedules).where(schedules.c.id == schedule.id)
                                 .values(last_job_id=job_id))
        return enqueued
