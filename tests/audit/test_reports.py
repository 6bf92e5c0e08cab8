"""When writing the log fails, administrators see it: in the chain, the API and the CLI.

The database is made to fail for real: a trigger refuses some rows (as PostgreSQL refuses a
NUL in text), or another connection holds the write lock past busy_timeout. Two workers
serve, each with its own recorder: what an administrator reads must be the same whichever
worker answers, so it comes from the chain, not from one process.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Callable

import httpx
import pytest

from tests.audit.helpers import cli_env, cli_for, wait_for
from tests.support.server import MoorageServer
from tests.web.helpers import ADMIN, api, make_namespace, make_user


def _statuses(server: MoorageServer, times: int = 6) -> list[dict[str, object]]:
    """GET /audit/status on fresh connections, so that both workers answer."""
    found = []
    for _ in range(times):
        with httpx.Client(base_url=f"{server.url}/api/v1", auth=ADMIN) as fresh:
            resp = fresh.get("/audit/status")
            assert resp.status_code == 200, resp.text
            found.append(resp.json())
    return found


@pytest.mark.slow
def test_an_entry_the_database_refuses_is_reported_by_every_worker(
        make_registry: Callable[..., MoorageServer], tmp_path: Path) -> None:
    server = make_registry("refusing", args=["--workers", "2"])
    mallory, _ = make_user(server, "mallory")  # an account: its name is recorded as it is
    db = sqlite3.connect(server.data_dir / "moorage.db")
    with db:
        db.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON audit_log WHEN NEW.actor = "
                   f"'{mallory}' BEGIN SELECT RAISE(ABORT, 'refused by the database'); END")
    db.close()
    assert httpx.get(f"{server.url}/v2/", auth=(mallory, "guess")).status_code == 401
    namespace = make_namespace(server, prefix="after-refusal")

    [stand_in] = wait_for(server, action="audit.unwritable")
    assert (stand_in["actor"], stand_in["result"], stand_in["target"]) == \
        ("", "failure", "moorage")
    assert stand_in["detail"]["actor"] == mallory and stand_in["detail"]["action"] == "login"
    assert "refused by the database" in stand_in["detail"]["error"]
    assert wait_for(server, lambda es: any(e["target"] == f"namespaces/{namespace}"
                                           for e in es), action="namespace.create")

    for status in _statuses(server):
        assert (status["complete"], status["unwritable"], status["dropped"]) == \
            (False, 1, 0), status
        report = status["last_report"]
        assert report["id"] == stand_in["id"] and report["action"] == "audit.unwritable"
        assert "refused by the database" in report["error"]
    found = api(server, "GET", "/audit/verify").json()
    assert found["ok"] and (found["complete"], found["unwritable"]) == (False, 1), found

    cli, env = cli_for(server, tmp_path), cli_env(server)
    verified = cli("audit", "verify", env=env)
    assert verified.code == 0 and verified.stdout.startswith("The audit log is intact"), verified
    assert "warning: 1 event could not be written unchanged" in verified.stderr
    assert f"newest report: entry {stand_in['id']} (audit.unwritable" in verified.stderr
    as_json = json.loads(cli.ok("audit", "verify", "--json", env=env))
    assert (as_json["ok"], as_json["unwritable"]) == (True, 1)
    table = cli.ok("audit", "status", env=env)
    assert re.search(r"complete\s+no", table) and re.search(r"unwritable\s+1", table), table
    assert "refused by the database" in table
    assert json.loads(cli.ok("audit", "status", "--json", env=env))["unwritable"] == 1
    listed = cli.ok("audit", "list", "--action", "audit.*", env=env)
    assert f"Entry {stand_in['id']} (audit.unwritable): a login by {mallory} could not be " \
           f"written" in listed, listed


@pytest.mark.slow
def test_a_locked_database_delays_entries_says_so_and_logs_once(
        make_registry: Callable[..., MoorageServer]) -> None:
    server = make_registry("locked", args=["--workers", "2"])
    reader = make_user(server, "reader")
    holder = sqlite3.connect(server.data_dir / "moorage.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # as a long backup or a stuck writer would
    try:
        # A successful login only reads the database (a failed one counts the failure), so
        # it is answered while the lock is held; its audit entry has to wait.
        assert httpx.get(f"{server.url}/auth/token", auth=reader).status_code == 200
        # Hold the lock until a worker has failed to write (its log says so), however long
        # busy_timeout takes on this machine.
        with httpx.Client(timeout=60) as wait:
            while "could not write" not in server.log():
                wait.get(f"{server.url}/v2/")
    finally:
        holder.rollback()
        holder.close()

    assert wait_for(server, actor=reader[0], action="login"), "the delayed entry is written"
    [report, *_] = wait_for(server, action="audit.write_failed")
    assert report["detail"]["attempts"] >= 1 and "database is locked" in report["detail"]["error"]
    for status in _statuses(server):
        assert status["write_failures"] >= 1 and status["complete"] is True, status
    server.stop()
    log = server.log()
    assert 1 <= log.count("could not write") <= 2, "one line per worker, not one per retry"
    assert log.count("audit writes resumed") == log.count("could not write")
