"""`moorage subscription …` as a subprocess against real servers: created, listed, shown,
changed, run with a progress bar, its executions listed and logged, deleted; tables for
people, `--json` for scripts, no password ever printed."""

from __future__ import annotations

import json

from tests.cli.conftest import Cli
from tests.remote.conftest import Distribution
from tests.replication.rules.conftest import BASIC_PASSWORD, BASIC_USER
from tests.replication.subscriptions.helpers import UPSTREAM, local_tags, push_upstream
from tests.support.certs import Authority
from tests.support.server import MoorageServer


def test_subscription_lifecycle_through_the_cli(primary: MoorageServer,
                                                distribution: Distribution,
                                                authority: Authority,
                                                tmp_path) -> None:  # type: ignore[no-untyped-def]
    pushed = push_upstream(distribution, authority, ["5.0.1", "5.1.0", "6.0.0"], seed="cli")
    cli = Cli(primary, tmp_path / "config")
    assert cli.login().code == 0

    out = cli.ok("subscription", "create", "cli-sub", "--url", distribution.url,
                 "--upstream", UPSTREAM, "-r", "cli/app", "--kind", "semver", "-t", "~5",
                 "-u", BASIC_USER, "--ca-file", str(authority.ca_file), "--keep", "3",
                 env={"MOORAGE_SUBSCRIPTION_PASSWORD": BASIC_PASSWORD})
    assert "cli-sub" in out and BASIC_PASSWORD not in out
    listed = json.loads(cli.ok("subscription", "list", "--json"))
    found = next(s for s in listed if s["name"] == "cli-sub")
    assert found["filter"] == "~5" and found["has_password"] and found["keep_newest"] == 3
    table = cli.ok("subscription", "list")
    assert table.splitlines()[0].split()[:3] == ["NAME", "UPSTREAM", "REPOSITORY"]
    shown = cli.ok("subscription", "show", "cli-sub")
    assert "semver ~5" in shown and BASIC_PASSWORD not in shown

    result = cli("subscription", "run", "cli-sub", "--follow")
    assert result.code == 0, result
    assert "succeeded" in result.stdout
    here = local_tags(primary, "cli/app")
    assert here == {"5.0.1": pushed["5.0.1"], "5.1.0": pushed["5.1.0"]}, here

    executions = json.loads(cli.ok("subscription", "executions", "cli-sub", "--json"))
    assert executions[0]["status"] == "succeeded" and executions[0]["copied"] == 2
    listing = cli.ok("subscription", "executions", "cli-sub")
    assert listing.splitlines()[0].split()[:3] == ["ID", "TRIGGER", "STATUS"]
    log = cli.ok("subscription", "executions", "cli-sub", "--log", str(executions[0]["id"]))
    assert "cli/app:5.1.0" in log and BASIC_PASSWORD not in log

    cli.ok("subscription", "update", "cli-sub", "--disable", "--keep", "0", "-t", "^6")
    changed = json.loads(cli.ok("subscription", "show", "cli-sub", "--json"))
    assert changed["enabled"] is False and changed["keep_newest"] is None
    assert changed["filter"] == "^6" and changed["has_password"]

    bad = cli("subscription", "update", "cli-sub", "--kind", "regex", "-t", "(x+)+")
    assert bad.code != 0 and "repetition" in bad.stderr
    cli.ok("subscription", "delete", "cli-sub")
    gone = cli("subscription", "show", "cli-sub")
    assert gone.code != 0 and "no subscription" in gone.stderr
