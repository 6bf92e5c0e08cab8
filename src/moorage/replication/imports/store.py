"""The tables of imports: the import rows and their plans (import_items).

A plan is written as it is discovered: first one row a repository (tag ''), then, when a
repository's tags are listed, one row a tag in the same transaction that marks the
repository listed. An item is marked done (with the bytes its copy fetched) only after the
copy engine verified it, so a restart resumes exactly where the plan stands. Counts are
counted from the plan, never kept beside it, so they cannot drift.

SQLAlchemy Core, called from worker threads (the job) and FastAPI's thread pool (the API).
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import Engine, and_, case, delete, func, insert, select, update

from moorage.access.errors import NotFound
from moorage.db.schema import import_items, imports
from moorage.replication.imports.model import MAX_ERRORS, Counts, Import

_ITEMS = import_items.c


def _import(row: Any) -> Import:
    v = dict(row._mapping)
    scope = json.loads(v["scope"] or "{}")
    return Import(id=v["id"], url=v["url"], kind=v["kind"], namespace=scope.get("namespace"),
                  repositories=scope.get("repositories"), prefix=v["prefix"],
                  username=v["username"], has_password=v["secret"] is not None,
                  ca_pem=v["ca_pem"], insecure=bool(v["insecure"]), bandwidth=v["bandwidth"],
                  status=v["status"], job_id=v["job_id"], planned=bool(v["planned"]),
                  message=v["message"], created_by=v["created_by"],
                  created_at=v["created_at"], started_at=v["started_at"],
                  ended_at=v["ended_at"])


class ImportStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- imports -------------------------------------------------------------------------
    def add(self, values: dict[str, Any]) -> Import:
        scope = {k: values.pop(k) for k in ("namespace", "repositories")
                 if values.get(k) is not None}
        values.pop("namespace", None)
        values.pop("repositories", None)
        with self.engine.begin() as conn:
            import_id = conn.execute(insert(imports).values(
                **values, scope=json.dumps(scope), status="pending", planned=False,
                message="", created_at=time.time()).returning(imports.c.id)).scalar_one()
        return self.get(import_id)

    def get(self, import_id: int) -> Import:
        with self.engine.connect() as conn:
            row = conn.execute(select(imports).where(imports.c.id == import_id)).first()
        if row is None:
            raise NotFound(f"no import {import_id}")
        return _import(row)

    def list(self, limit: int = 50) -> list[Import]:
        with self.engine.connect() as conn:
            return [_import(r) for r in conn.execute(
                select(imports).order_by(imports.c.id.desc()).limit(limit))]

    def secret(self, import_id: int) -> bytes | None:
        with self.engine.connect() as conn:
            return conn.execute(select(imports.c.secret)
                                .where(imports.c.id == import_id)).scalar()

    def status(self, import_id: int) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(imports.c.status)
                                .where(imports.c.id == import_id)).scalar()

    def set(self, import_id: int, only_if: tuple[str, ...] | None = None,
            **values: Any) -> bool:
        """Change an import; with `only_if`, only while its status is one of those (so a
        cancel is never overwritten by a job that did not see it yet)."""
        where = imports.c.id == import_id
        if only_if is not None:
            where = and_(where, imports.c.status.in_(only_if))
        with self.engine.begin() as conn:
            return conn.execute(update(imports).where(where).values(**values)).rowcount > 0

    def unfinished(self) -> list[Import]:
        with self.engine.connect() as conn:
            return [_import(r) for r in conn.execute(
                select(imports).where(imports.c.status.in_(("pending", "running"))))]

    # -- the plan ------------------------------------------------------------------------
    def plan_repositories(self, import_id: int, names: list[str]) -> None:
        """The repositories, once: the import is marked planned in the same transaction."""
        with self.engine.begin() as conn:
            known = set(conn.execute(select(_ITEMS.repository).where(
                _ITEMS.import_id == import_id, _ITEMS.tag == "")).scalars())
            rows = [{"import_id": import_id, "repository": n, "tag": "", "state": "pending",
                     "bytes": 0, "attempt": 0} for n in dict.fromkeys(names) if n not in known]
            if rows:
                conn.execute(insert(import_items), rows)
            conn.execute(update(imports).where(imports.c.id == import_id)
                         .values(planned=True))

    def plan_tags(self, import_id: int, repository: str, tags: list[str]) -> None:
        with self.engine.begin() as conn:
            known = set(conn.execute(select(_ITEMS.tag).where(
                _ITEMS.import_id == import_id, _ITEMS.repository == repository,
                _ITEMS.tag != "")).scalars())
            rows = [{"import_id": import_id, "repository": repository, "tag": t,
                     "state": "pending", "bytes": 0, "attempt": 0}
                    for t in dict.fromkeys(tags) if t not in known]
            if rows:
                conn.execute(insert(import_items), rows)
            conn.execute(update(import_items).where(
                _ITEMS.import_id == import_id, _ITEMS.repository == repository,
                _ITEMS.tag == "").values(state="listed"))

    def open_repositories(self, import_id: int) -> list[tuple[str, str]]:
        """(repository, state) of the repositories not finished yet, in name order."""
        with self.engine.connect() as conn:
            return [(r[0], r[1]) for r in conn.execute(
                select(_ITEMS.repository, _ITEMS.state).where(
                    _ITEMS.import_id == import_id, _ITEMS.tag == "",
                    _ITEMS.state.in_(("pending", "listed"))).order_by(_ITEMS.repository))]

    def pending_tags(self, import_id: int, repository: str) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(_ITEMS.tag).where(
                _ITEMS.import_id == import_id, _ITEMS.repository == repository,
                _ITEMS.tag != "", _ITEMS.state == "pending").order_by(_ITEMS.tag)).scalars())

    def finish(self, import_id: int, repository: str, tag: str, *, ok: bool,
               digest: str | None = None, fetched: int = 0, attempt: int = 0,
               error: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(import_items).where(
                _ITEMS.import_id == import_id, _ITEMS.repository == repository,
                _ITEMS.tag == tag).values(state="done" if ok else "failed", digest=digest,
                                          bytes=fetched, attempt=attempt,
                                          error=None if ok else (error or "")[:2000]))

    def finish_repository(self, import_id: int, repository: str, attempt: int) -> bool:
        """A listed repository is done when all its tags are, failed when one failed."""
        with self.engine.begin() as conn:
            failed = conn.execute(select(func.count()).select_from(import_items).where(
                _ITEMS.import_id == import_id, _ITEMS.repository == repository,
                _ITEMS.tag != "", _ITEMS.state == "failed")).scalar_one()
            conn.execute(update(import_items).where(
                _ITEMS.import_id == import_id, _ITEMS.repository == repository,
                _ITEMS.tag == "").values(state="failed" if failed else "done",
                                         attempt=attempt,
                                         error=f"{failed} tag(s) failed" if failed else None))
            return not failed

    def counts(self, import_id: int) -> Counts:
        is_repo = _ITEMS.tag == ""
        state = _ITEMS.state

        def count(condition: Any) -> Any:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)
        query = select(count(is_repo), count(and_(is_repo, state == "done")),
                       count(and_(is_repo, state == "failed")), count(~is_repo),
                       count(and_(~is_repo, state == "done")),
                       count(and_(~is_repo, state == "failed")),
                       func.coalesce(func.sum(_ITEMS.bytes), 0)
                       ).where(_ITEMS.import_id == import_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).one()
            errors = [{"item": f"{r[0]}:{r[1]}" if r[1] else r[0], "error": r[2] or ""}
                      for r in conn.execute(
                          select(_ITEMS.repository, _ITEMS.tag, _ITEMS.error).where(
                              _ITEMS.import_id == import_id, state == "failed",
                              ~and_(is_repo, _ITEMS.error.like("% tag(s) failed")))
                          .order_by(_ITEMS.repository, _ITEMS.tag).limit(MAX_ERRORS))]
        return Counts(*(int(v) for v in row), errors=errors)  # type: ignore[arg-type]

    def items(self, import_id: int, state: str | None = None,
              limit: int = 1000) -> list[dict[str, Any]]:
        query = select(_ITEMS.repository, _ITEMS.tag, _ITEMS.state, _ITEMS.digest,
                       _ITEMS.bytes, _ITEMS.attempt, _ITEMS.error).where(
            _ITEMS.import_id == import_id).order_by(_ITEMS.repository, _ITEMS.tag).limit(limit)
        if state is not None:
            query = query.where(_ITEMS.state == state)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def delete(self, import_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(import_items).where(_ITEMS.import_id == import_id))
            conn.execute(delete(imports).where(imports.c.id == import_id))
