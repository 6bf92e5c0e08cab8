"""Bringing a cron schedule's next run to now, for tests of what a schedule runs.

A `* * * * *` schedule first fires at the next minute boundary: a test that waited for it
spent 30 s on average (up to a minute) doing nothing. `make_due` checks that the server made
the schedule the cron asks for (enabled, due at a minute boundary no more than a minute
away), then moves that due time to now, the way the clock would: the server's own scheduler
(jobs/scheduler.py, every job worker's maintenance pass, every 5 s) still finds it due, wins
it, enqueues the job with its schedule's payload and computes the following run. Only the
wait for the wall clock is skipped; the cron arithmetic has its own tests (tests/jobs).
"""

from __future__ import annotations

import json
import sqlite3
import time

from tests.support.server import MoorageServer


def make_due(server: MoorageServer, job_type: str, ident: int) -> None:
    """Make the schedule of `job_type` for rule `ident` (named `job_type:ident`, payload
    {"rule": ident}; replication rules and subscriptions) due now, on an embedded server."""
    name = f"{job_type}:{ident}"
    with sqlite3.connect(server.data_dir / "moorage.db", timeout=60) as db:
        row = db.execute("SELECT cron, job_type, payload, enabled, next_run_at FROM schedules "
                         "WHERE name = ?", (name,)).fetchone()
        assert row is not None, f"no schedule {name}"
        cron, kind, payload, enabled, due = row
        assert cron == "* * * * *" and kind == job_type and enabled, row
        assert json.loads(payload).get("rule") == ident, row
        # The next minute boundary (or the one after, if it passed since the rule was made
        # and the scheduler already moved it on).
        assert due % 60 == 0 and time.time() - 60 < due <= time.time() + 120, row
        # Compare-and-set, as the scheduler does: if it fired meanwhile, it ran on its own.
        db.execute("UPDATE schedules SET next_run_at = ? WHERE name = ? AND next_run_at = ?",
                   (time.time() - 1, name, due))
