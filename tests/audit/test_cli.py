"""`moorage audit list | export | verify`, run as a subprocess against real servers."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Callable

from tests.audit.helpers import cli_env, cli_for, verify, wait_for
from tests.support.server import MoorageServer
from tests.web.helpers import api, error, make_namespace


def test_list_export_and_verify(secure_registry: MoorageServer, tmp_path: Path) -> None:
    cli, env = cli_for(secure_registry, tmp_path), cli_env(secure_registry)
    make_namespace(secure_registry, prefix="audit-cli")
    namespace = make_namespace(secure_registry, prefix="audit-cli")
    wait_for(secure_registry, lambda es: len(es) >= 2, action="namespace.create")

    listed = json.loads(cli.ok("audit", "list", "--action", "namespace.create", "--actor",
                               "admin", "--limit", "5", "--json", env=env))
    assert f"namespaces/{namespace}" in [e["target"] for e in listed["entries"]]
    table = cli.ok("audit", "list", "--action", "namespace.*", "--limit", "1", env=env)
    assert table.split("\n")[0].split() == ["ID", "TIME", "ACTOR", "ADDRESS", "ACTION",
                                           "TARGET", "RESULT"]
    assert f"namespaces/{namespace}" in table and "More: add --before" in table

    out = tmp_path / "audit.jsonl"
    result = cli("audit", "export", "--action", "namespace.create", "-o", str(out), env=env)
    assert result.code == 0, result
    lines = out.read_text().splitlines()
    assert result.stderr.strip() == f"Exported {len(lines)} entries to {out}."
    assert all(json.loads(line)["action"] == "namespace.create" for line in lines)
    assert not list(tmp_path.glob("*.partial"))
    piped = cli.ok("audit", "export", "--actor", "admin", "--after-id",
                   str(json.loads(lines[-1])["id"] - 1), env=env)
    assert json.loads(piped.splitlines()[0])["id"] == json.loads(lines[-1])["id"]

    intact = cli("audit", "verify", env=env)
    assert intact.code == 0 and intact.stdout.startswith("The audit log is intact:"), intact


def test_verify_names_the_first_broken_link(make_registry: Callable[..., MoorageServer],
                                            tmp_path: Path) -> None:
    server = make_registry("tampered")
    cli, env = cli_for(server, tmp_path), cli_env(server)
    for _ in range(4):
        make_namespace(server, prefix="audit-tamper")
    wait_for(server, lambda es: len(es) >= 4, action="namespace.create")
    assert verify(server)["ok"]

    # Someone with the database file hides who created namespace 2, while the server runs.
    db = sqlite3.connect(server.data_dir / "moorage.db")
    with db:
        db.execute("UPDATE audit_log SET actor = 'someone-else' WHERE id = 2")
    broken = cli("audit", "verify", env=env)
    assert broken.code == 1, broken
    assert broken.stderr.startswith("moorage: the audit log is broken at entry 2:"), broken
    assert "edited" in broken.stderr
    listed = cli("audit", "verify", "--json", env=env)
    assert listed.code == 1 and json.loads(listed.stdout)["first_broken_id"] == 2

    # Putting it back restores the chain; removing an entry breaks it at the next one.
    with db:
        db.execute("UPDATE audit_log SET actor = 'admin' WHERE id = 2")
    assert verify(server)["ok"]
    with db:
        db.execute("DELETE FROM audit_log WHERE id = 3")
    db.close()
    found = verify(server)
    assert (found["ok"], found["first_broken_id"], found["checked"]) == (False, 4, 3)
    assert "entries 3..3 are missing" in found["reason"]


def test_personal_edition_refuses_by_name(make_registry: Callable[..., MoorageServer],
                                          tmp_path: Path) -> None:
    """The API and the CLI both name the edition needed; nothing is recorded meanwhile."""
    server = make_registry("personal", env={"MOORAGE_EDITION": "personal"})
    make_namespace(server, prefix="audit-personal")
    for path in ("/audit", "/audit/export", "/audit/verify", "/audit/status"):
        resp = api(server, "GET", path)
        assert resp.status_code == 403, resp.text
        assert error(resp) == ("EDITION", "audit log needs the basic edition or higher; this "
                                          "instance runs the personal edition")
    result = cli_for(server, tmp_path)("audit", "verify", env=cli_env(server))
    assert result.code == 1
    assert result.stderr == ("moorage: audit log needs the basic edition or higher; this "
                             "instance runs the personal edition\n"), result
    server.stop()
    with sqlite3.connect(server.data_dir / "moorage.db") as db:
        assert db.execute("SELECT count(*) FROM audit_log").fetchone() == (0,)
