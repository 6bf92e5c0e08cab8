"""Read-only mode: pulls are served, every change is refused with 503 and the operator's
message, for an upgrade or a storage move.

The switch is a row of `instance_settings`, read where it applies (each write request to
`/v2`, each change through `/api/v1`, each GC or retention run), so that every worker and
replica sees it the moment the administrator's request returns. A write already past the
check when the switch flips finishes; the next is refused.

A write request to `/v2` asks `kept()` first: the state as last read in this worker, kept
only until the next commit on the database by any process (cache/decisions.py, the shared
commit signal). Switching the mode is such a commit, made before the administrator's request
returns, so no worker or replica answers from a state older than the switch; between commits
(a chunked upload's PATCHes commit nothing) the check costs no query and no thread hop.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from moorage.access.errors import AccessError
from moorage.cache.decisions import KeptUntilCommit
from moorage.db.changes import signal_of
from moorage.db.schema import instance_settings
from moorage.oci.errors import RegistryError

_NAME = "read_only"
MAX_MESSAGE = 500


@dataclass(frozen=True)
class ReadOnlyState:
    on: bool
    message: str = ""
    since: float | None = None
    by: str = ""

    def refusal(self) -> str:
        why = f": {self.message}" if self.message else ""
        return (f"the registry is in read-only mode{why}. Pulls work; pushes, deletes and "
                f"changes are refused until an administrator turns read-only mode off")

    def as_dict(self) -> dict[str, Any]:
        return {"read_only": self.on, "message": self.message, "since": self.since,
                "by": self.by}


class ReadOnlyMode:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._kept: KeptUntilCommit[ReadOnlyState] = KeptUntilCommit(signal_of(engine), 1)

    def kept(self) -> ReadOnlyState | None:
        """The state read since the last commit on the database, if any (no query); None:
        ask state()."""
        return self._kept.get(_NAME)

    def state(self) -> ReadOnlyState:
        version = self._kept.version()  # before the query: a commit after it is seen
        with self.engine.connect() as conn:
            row = conn.execute(select(instance_settings.c.value, instance_settings.c.updated_at,
                                      instance_settings.c.updated_by)
                               .where(instance_settings.c.name == _NAME)).first()
        state = _state_of(row)
        self._kept.put(_NAME, version, state)
        return state

    def set(self, on: bool, message: str, by: str) -> ReadOnlyState:
        try:
            self._write(on, message, by)
        except IntegrityError:  # a concurrent switch inserted the row first: update it
            self._write(on, message, by)
        return self.state()

    def _write(self, on: bool, message: str, by: str) -> None:
        value = json.dumps({"on": on, "message": message[:MAX_MESSAGE]})
        now = time.time()
        with self.engine.begin() as conn:
            if not on:
                conn.execute(delete(instance_settings).where(instance_settings.c.name == _NAME))
            elif conn.execute(update(instance_settings)
                              .where(instance_settings.c.name == _NAME)
                              .values(value=value, updated_at=now, updated_by=by)).rowcount == 0:
                conn.execute(insert(instance_settings).values(
                    name=_NAME, value=value, updated_at=now, updated_by=by))


def _state_of(row: Any) -> ReadOnlyState:
    if row is None:
        return ReadOnlyState(False)
    try:
        value = json.loads(row.value)
    except ValueError:
        value = {}
    return ReadOnlyState(bool(value.get("on")), str(value.get("message", "")),
                         row.updated_at, row.updated_by)


def registry_refusal(state: ReadOnlyState) -> RegistryError:
    """What a write to /v2 gets in read-only mode: 503 with the spec's error body (DENIED:
    the spec has no code for a registry that is read-only for a while) and Retry-After."""
    return RegistryError("DENIED", state.refusal(), detail={"reason": "read_only"},
                         status=503, headers={"retry-after": "60"})


class ReadOnly(AccessError):
    """What a change through /api/v1 gets in read-only mode."""

    status, code = 503, "READ_ONLY"

    def __init__(self, state: ReadOnlyState) -> None:
        super().__init__(state.refusal(), {"retry-after": "60"})
