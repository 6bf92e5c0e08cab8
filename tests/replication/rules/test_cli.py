"""`moorage replication …` as a subprocess against real servers: rules created, listed,
shown, changed, run with a progress bar, reported on, their executions listed and logged,
deleted; tables for people, `--json` for scripts, no password ever printed."""

from __future__ import annotations

import json

from tests.cli.conftest import Cli
from tests.replication.rules.helpers import ADMIN, client_for, push_multiarch, run
from tests.support.server import MoorageServer

SECRET = "cli-password-never-printed-90"


def test_rule_lifecycle_through_the_cli(primary: MoorageServer, peer: MoorageServer,
                                        tmp_path) -> None:  # type: ignore[no-untyped-def]
    cli = Cli(primary, tmp_path / "config")
    assert cli.login().code == 0

    async def seed() -> dict[str, object]:
        async with client_for(primary, *ADMIN) as client:
            return await push_multiarch(client, "cli/app", "2.0", seed="cli")
    pushed = run(seed())

    out = cli.ok("replication", "rule", "create", "cli-out", "--mode", "push", "--url",
                 peer.url, "-u", "admin", "-r", "cli/*", "-t", "2.*", "--no-event",
                 "--bandwidth", "100M", env={"MOORAGE_REPLICATION_PASSWORD": ADMIN[1]})
    assert "cli-out" in out
    listed = json.loads(cli.ok("replication", "rule", "list", "--json"))
    rule = next(r for r in listed if r["name"] == "cli-out")
    assert rule["bandwidth"] == 100 << 20 and rule["has_password"]
    shown = cli.ok("replication", "rule", "show", "cli-out")
    assert "cli/*" in shown and ADMIN[1] not in shown

    report = cli.ok("replication", "rule", "report", "cli-out")
    assert "1 missing" in report and "cli/app" in report

    result = cli("replication", "rule", "run", "cli-out", "--follow")
    assert result.code == 0, result
    assert "succeeded" in result.stdout

    executions = json.loads(cli.ok("replication", "executions", "cli-out", "--json"))
    assert executions[0]["status"] == "succeeded" and executions[0]["copied"] == 1
    table = cli.ok("replication", "executions", "cli-out")
    assert table.splitlines()[0].split()[:3] == ["ID", "TRIGGER", "STATUS"]
    log = cli.ok("replication", "executions", "cli-out", "--log", str(executions[0]["id"]))
    assert "cli/app" in log and ADMIN[1] not in log

    async def at_peer() -> str | None:
        async with client_for(peer, *ADMIN) as client:
            info = await client.head_manifest("cli/app", "2.0")
            return info.digest if info else None
    assert run(at_peer()) == pushed["index"]

    cli.ok("replication", "rule", "update", "cli-out", "--disable", "--bandwidth", "0")
    changed = json.loads(cli.ok("replication", "rule", "show", "cli-out", "--json"))
    assert changed["enabled"] is False and changed["bandwidth"] is None

    bad = cli("replication", "rule", "create", "x", "--mode", "push", "--url", peer.url,
              "--bandwidth", "fast")
    assert bad.code != 0 and "bandwidth" in bad.stderr
    cli.ok("replication", "rule", "delete", "cli-out")
    gone = cli("replication", "rule", "show", "cli-out")
    assert gone.code != 0 and "no replication rule" in gone.stderr
