"""The tables of artifact subscriptions: subscriptions, executions, the tags they brought in.

Executions have the shape of replication rules' (replication/store.py `Execution`, whose
`rule_id` holds the subscription's id here), so the CLI and console show both alike; they
live in a table of their own because a rule's executions reference the rules table.

The edition's quota is enforced by the database, not by a count read before the insert: the
insert itself carries the condition (`INSERT … SELECT … WHERE count < limit`), under a table
lock on PostgreSQL and SQLite's single writer, so that two creates at the same moment on two
workers cannot both take the last place.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, literal, select, text, update
from sqlalchemy.exc import IntegrityError

from moorage.access.errors import AlreadyExists, NotFound
from moorage.db.schema import subscription_executions, subscription_tags, subscriptions
from moorage.replication.store import MAX_ERRORS, Execution
from moorage.replication.subscriptions.model import Subscription

_t = subscriptions.c
_x = subscription_executions.c


def _subscription(row: Any) -> Subscription:
    v = dict(row._mapping)
    return Subscription(
        id=v["id"], name=v["name"], url=v["url"], upstream=v["upstream"],
        username=v["username"], has_password=v["secret"] is not None, ca_pem=v["ca_pem"],
        insecure=bool(v["insecure"]), repository=v["repository"],
        filter_kind=v["filter_kind"], filter=v["filter"], cron=v["cron"],
        keep_newest=v["keep_newest"], enabled=bool(v["enabled"]), created_at=v["created_at"],
        updated_at=v["updated_at"], updated_by=v["updated_by"])


def _execution(row: Any) -> Execution:
    v = dict(row._mapping)
    return Execution(v["id"], v["subscription_id"], v["trigger"], v["status"], v["job_id"],
                     json.loads(v["scope"] or "{}"), v["artifacts_done"],
                     v["artifacts_total"], v["bytes"], v["copied"],
                     json.loads(v["errors"] or "[]"), v["message"], v["created_at"],
                     v["started_at"], v["ended_at"])


class QuotaReached(Exception):
    """The insert found the quota's places taken."""

    def __init__(self, in_use: int) -> None:
        super().__init__(in_use)
        self.in_use = in_use


class SubscriptionStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- subscriptions -------------------------------------------------------------------
    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(subscriptions))
                       .scalar_one())

    def add(self, values: dict[str, Any], limit: int | None) -> Subscription:
        """Insert unless `limit` subscriptions exist already (QuotaReached), atomically."""
        try:
            with self.engine.begin() as conn:
                new_id = self.insert(conn, values, limit)
        except IntegrityError:
            raise AlreadyExists(f"a subscription named {values['name']!r} exists") from None
        return self.get(new_id)

    def insert(self, conn: Connection, values: dict[str, Any], limit: int | None) -> int:
        """The insert of `add` in the caller's transaction (a test holds one open)."""
        now = time.time()
        row = {**values, "created_at": now, "updated_at": now}
        if conn.dialect.name == "postgresql":  # waits for a concurrent create's commit
            conn.execute(text("LOCK TABLE subscriptions IN SHARE ROW EXCLUSIVE MODE"))
        if limit is None:
            return int(conn.execute(insert(subscriptions).values(**row)
                                    .returning(_t.id)).scalar_one())
        names = list(row)
        chosen = select(*[literal(row[n], subscriptions.c[n].type).label(n) for n in names]) \
            .where(select(func.count()).select_from(subscriptions).scalar_subquery() < limit)
        new_id = conn.execute(insert(subscriptions).from_select(names, chosen)
                              .returning(_t.id)).scalar()
        if new_id is None:
            raise QuotaReached(int(conn.execute(
                select(func.count()).select_from(subscriptions)).scalar_one()))
        return int(new_id)

    def update(self, subscription_id: int, values: dict[str, Any]) -> Subscription:
        try:
            with self.engine.begin() as conn:
                done = conn.execute(update(subscriptions).where(_t.id == subscription_id)
                                    .values(**values, updated_at=time.time())).rowcount
        except IntegrityError:
            raise AlreadyExists(f"a subscription named {values.get('name')!r} "
                                "exists") from None
        if not done:
            raise NotFound(f"no subscription {subscription_id}")
        return self.get(subscription_id)

    def delete(self, subscription_id: int) -> bool:
        with self.engine.begin() as conn:
            for table in (subscription_tags, subscription_executions):
                conn.execute(delete(table).where(table.c.subscription_id == subscription_id))
            return conn.execute(delete(subscriptions)
                                .where(_t.id == subscription_id)).rowcount > 0

    def get(self, subscription_id: int) -> Subscription:
        with self.engine.connect() as conn:
            row = conn.execute(select(subscriptions).where(_t.id == subscription_id)).first()
        if row is None:
            raise NotFound(f"no subscription {subscription_id}")
        return _subscription(row)

    def find(self, name_or_id: str) -> Subscription:
        with self.engine.connect() as conn:
            row = conn.execute(select(subscriptions).where(_t.name == name_or_id)).first()
        if row is None and name_or_id.isdigit() and len(name_or_id) < 12:
            return self.get(int(name_or_id))
        if row is None:
            raise NotFound(f"no subscription {name_or_id[:80]!r}")
        return _subscription(row)

    def list(self) -> list[Subscription]:
        with self.engine.connect() as conn:
            return [_subscription(r) for r in conn.execute(
                select(subscriptions).order_by(_t.name))]

    def secret(self, subscription_id: int) -> bytes | None:
        with self.engine.connect() as conn:
            return conn.execute(select(_t.secret).where(_t.id == subscription_id)).scalar()

    # -- the tags a subscription brought in ----------------------------------------------
    def brought(self, subscription_id: int) -> dict[str, tuple[str, int]]:
        """tag → (digest set, seq)."""
        c = subscription_tags.c
        with self.engine.connect() as conn:
            return {r.tag: (r.digest, r.seq) for r in conn.execute(
                select(c.tag, c.digest, c.seq).where(c.subscription_id == subscription_id))}

    def remember(self, subscription_id: int, tag: str, digest: str, seq: int) -> None:
        c = subscription_tags.c
        with self.engine.begin() as conn:
            conn.execute(delete(subscription_tags).where(
                (c.subscription_id == subscription_id) & (c.tag == tag)))
            conn.execute(insert(subscription_tags).values(
                subscription_id=subscription_id, tag=tag, digest=digest, seq=seq,
                at=time.time()))

    def forget(self, subscription_id: int, tag: str) -> None:
        c = subscription_tags.c
        with self.engine.begin() as conn:
            conn.execute(delete(subscription_tags).where(
                (c.subscription_id == subscription_id) & (c.tag == tag)))

    # -- executions ----------------------------------------------------------------------
    def add_execution(self, subscription_id: int, trigger: str,
                      scope: dict[str, Any] | None = None) -> int:
        with self.engine.begin() as conn:
            return int(conn.execute(insert(subscription_executions).values(
                subscription_id=subscription_id, trigger=trigger, status="pending",
                scope=json.dumps(scope or {}), errors="[]", message="",
                created_at=time.time()).returning(_x.id)).scalar_one())

    def set_job(self, execution_id: int, job_id: int) -> None:
        self.set_execution(execution_id, job_id=job_id)

    def set_execution(self, execution_id: int, **values: Any) -> None:
        if "errors" in values:
            values["errors"] = json.dumps(values["errors"][:MAX_ERRORS])
        with self.engine.begin() as conn:
            conn.execute(update(subscription_executions).where(_x.id == execution_id)
                         .values(**values))

    def execution(self, execution_id: int) -> Execution:
        with self.engine.connect() as conn:
            row = conn.execute(select(subscription_executions)
                               .where(_x.id == execution_id)).first()
        if row is None:
            raise NotFound(f"no subscription execution {execution_id}")
        return _execution(row)

    def execution_of_job(self, job_id: int) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(select(_x.id).where(_x.job_id == job_id)).scalar()

    def executions(self, subscription_id: int, limit: int = 50) -> list[Execution]:
        with self.engine.connect() as conn:
            return [_execution(r) for r in conn.execute(
                select(subscription_executions).where(_x.subscription_id == subscription_id)
                .order_by(_x.id.desc()).limit(limit))]
