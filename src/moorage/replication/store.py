"""The tables of replication rules: rules, executions, and the uploads a next attempt resumes.

SQLAlchemy Core, called from worker threads (jobs) and FastAPI's thread pool (the API).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from moorage.access.errors import AlreadyExists, NotFound
from moorage.db.schema import replication_executions, replication_rules, replication_uploads
from moorage.replication.model import Rule

_RULE_COLUMNS = ("id", "name", "mode", "url", "username", "ca_pem", "insecure",
                 "repositories", "tags", "destination_namespace", "on_event", "cron",
                 "propagate_deletes", "bandwidth", "enabled", "created_at", "updated_at",
                 "updated_by")
MAX_ERRORS = 200  # per-artifact errors kept per execution


def _rule(row: Any) -> Rule:
    values = dict(row._mapping)
    return Rule(id=values["id"], name=values["name"], mode=values["mode"], url=values["url"],
                username=values["username"], has_password=values["secret"] is not None,
                ca_pem=values["ca_pem"], insecure=bool(values["insecure"]),
                repositories=values["repositories"], tags=values["tags"],
                destination_namespace=values["destination_namespace"],
                on_event=bool(values["on_event"]), cron=values["cron"],
                propagate_deletes=bool(values["propagate_deletes"]),
                bandwidth=values["bandwidth"], enabled=bool(values["enabled"]),
                created_at=values["created_at"], updated_at=values["updated_at"],
                updated_by=values["updated_by"])


@dataclass
class Execution:
    id: int
    rule_id: int
    trigger: str
    status: str
    job_id: int | None
    scope: dict[str, Any]
    artifacts_done: int
    artifacts_total: int
    bytes: int
    copied: int
    errors: list[dict[str, str]] = field(default_factory=list)
    message: str = ""
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None


def _execution(row: Any) -> Execution:
    v = dict(row._mapping)
    return Execution(v["id"], v["rule_id"], v["trigger"], v["status"], v["job_id"],
                     json.loads(v["scope"] or "{}"), v["artifacts_done"], v["artifacts_total"],
                     v["bytes"], v["copied"], json.loads(v["errors"] or "[]"), v["message"],
                     v["created_at"], v["started_at"], v["ended_at"])


class RuleStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- rules ---------------------------------------------------------------------------
    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(replication_rules))
                       .scalar_one())

    def add(self, values: dict[str, Any]) -> Rule:
        now = time.time()
        try:
            with self.engine.begin() as conn:
                rule_id = conn.execute(insert(replication_rules).values(
                    **values, created_at=now, updated_at=now)
                    .returning(replication_rules.c.id)).scalar_one()
        except IntegrityError:
            raise AlreadyExists(f"a replication rule named {values['name']!r} exists") from None
        return self.get(rule_id)

    def update(self, rule_id: int, values: dict[str, Any]) -> Rule:
        try:
            with self.engine.begin() as conn:
                done = conn.execute(update(replication_rules)
                                    .where(replication_rules.c.id == rule_id)
                                    .values(**values, updated_at=time.time())).rowcount
        except IntegrityError:
            raise AlreadyExists(f"a replication rule named {values.get('name')!r} "
                                "exists") from None
        if not done:
            raise NotFound(f"no replication rule {rule_id}")
        return self.get(rule_id)

    def delete(self, rule_id: int) -> bool:
        with self.engine.begin() as conn:
            conn.execute(delete(replication_uploads)
                         .where(replication_uploads.c.rule_id == rule_id))
            conn.execute(delete(replication_executions)
                         .where(replication_executions.c.rule_id == rule_id))
            return conn.execute(delete(replication_rules)
                                .where(replication_rules.c.id == rule_id)).rowcount > 0

    def get(self, rule_id: int) -> Rule:
        with self.engine.connect() as conn:
            row = conn.execute(select(replication_rules)
                               .where(replication_rules.c.id == rule_id)).first()
        if row is None:
            raise NotFound(f"no replication rule {rule_id}")
        return _rule(row)

    def find(self, name_or_id: str) -> Rule:
        with self.engine.connect() as conn:
            row = conn.execute(select(replication_rules)
                               .where(replication_rules.c.name == name_or_id)).first()
        if row is None and name_or_id.isdigit():
            return self.get(int(name_or_id))
        if row is None:
            raise NotFound(f"no replication rule {name_or_id[:80]!r}")
        return _rule(row)

    def list(self) -> list[Rule]:
        with self.engine.connect() as conn:
            return [_rule(r) for r in conn.execute(select(replication_rules)
                                                   .order_by(replication_rules.c.name))]

    def secret(self, rule_id: int) -> bytes | None:
        with self.engine.connect() as conn:
            return conn.execute(select(replication_rules.c.secret)
                                .where(replication_rules.c.id == rule_id)).scalar()

    # -- executions ----------------------------------------------------------------------
    def add_execution(self, rule_id: int, trigger: str, scope: dict[str, Any]) -> int:
        with self.engine.begin() as conn:
            return int(conn.execute(insert(replication_executions).values(
                rule_id=rule_id, trigger=trigger, status="pending", scope=json.dumps(scope),
                errors="[]", message="", created_at=time.time())
                .returning(replication_executions.c.id)).scalar_one())

    def set_job(self, execution_id: int, job_id: int) -> None:
        self.set_execution(execution_id, job_id=job_id)

    def set_execution(self, execution_id: int, **values: Any) -> None:
        if "errors" in values:
            values["errors"] = json.dumps(values["errors"][:MAX_ERRORS])
        with self.engine.begin() as conn:
            conn.execute(update(replication_executions)
                         .where(replication_executions.c.id == execution_id).values(**values))

    def execution(self, execution_id: int) -> Execution:
        with self.engine.connect() as conn:
            row = conn.execute(select(replication_executions)
                               .where(replication_executions.c.id == execution_id)).first()
        if row is None:
            raise NotFound(f"no replication execution {execution_id}")
        return _execution(row)

    def execution_of_job(self, job_id: int) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(select(replication_executions.c.id)
                                .where(replication_executions.c.job_id == job_id)).scalar()

    def executions(self, rule_id: int, limit: int = 50) -> list[Execution]:
        with self.engine.connect() as conn:
            return [_execution(r) for r in conn.execute(
                select(replication_executions)
                .where(replication_executions.c.rule_id == rule_id)
                .order_by(replication_executions.c.id.desc()).limit(limit))]

    def unfinished(self) -> list[Execution]:
        with self.engine.connect() as conn:
            return [_execution(r) for r in conn.execute(
                select(replication_executions).where(
                    replication_executions.c.status.in_(("pending", "running"))))]


class UploadMemory:
    """ResumeStore for one rule: unfinished uploads at its destination, in the database so
    that they outlive the process."""

    def __init__(self, engine: Engine, rule_id: int) -> None:
        self.engine, self.rule_id = engine, rule_id

    def _where(self, repository: str, digest: str):  # type: ignore[no-untyped-def]
        c = replication_uploads.c
        return (c.rule_id == self.rule_id) & (c.repository == repository) & (c.digest == digest)

    def get(self, repository: str, digest: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(replication_uploads.c.location)
                                .where(self._where(repository, digest))).scalar()

    def put(self, repository: str, digest: str, location: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(replication_uploads).where(self._where(repository, digest)))
            conn.execute(insert(replication_uploads).values(
                rule_id=self.rule_id, repository=repository, digest=digest,
                location=location, at=time.time()))

    def drop(self, repository: str, digest: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(replication_uploads).where(self._where(repository, digest)))
