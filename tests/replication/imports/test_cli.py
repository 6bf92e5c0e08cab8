"""`moorage import …` and `moorage imports …` as subprocesses against real servers: an import
started with the password on stdin and followed to its end, listed, shown, logged; a table
for people, `--json` for scripts, no password ever printed; usage errors and refusals in one
line."""

from __future__ import annotations

import asyncio
import json

from tests.cli.conftest import Cli
from tests.remote.conftest import Distribution
from tests.replication.imports.helpers import Seeded, digests_at, expected
from tests.replication.rules.conftest import BASIC_PASSWORD, BASIC_USER
from tests.support.server import MoorageServer


def test_import_through_the_cli(importer: MoorageServer, distribution: Distribution,
                                seeded: Seeded, authority, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cli = Cli(importer, tmp_path / "config")
    assert cli.login().code == 0
    result = cli("import", distribution.url, "--repository", "team/c", "--repository",
                 "other/c", "--into", "cli", "--user", BASIC_USER, "--password-stdin",
                 "--ca", str(authority.ca_file), "--follow", input=BASIC_PASSWORD + "\n")
    assert result.code == 0, result
    assert "succeeded" in result.stdout and "repositories 2/2, tags 2/2" in result.stdout
    assert BASIC_PASSWORD not in result.stdout + result.stderr
    chosen = {k: seeded.images[k] for k in ("team/c", "other/c")}
    assert asyncio.run(digests_at(importer, chosen, "cli/")) == expected(chosen)

    listed = json.loads(cli.ok("imports", "list", "--json"))
    mine = listed[0]
    assert mine["status"] == "succeeded" and mine["into"] == "cli" and mine["has_password"]
    table = cli.ok("imports", "list")
    assert table.splitlines()[0].split()[:3] == ["ID", "STATUS", "SOURCE"]
    shown = cli.ok("imports", "show", str(mine["id"]))
    assert "team/c, other/c" in shown and BASIC_PASSWORD not in shown
    log = cli.ok("imports", "log", str(mine["id"]))
    assert "team/c:1.0" in log and BASIC_PASSWORD not in log
    started = json.loads(cli.ok("import", distribution.url, "-n", "team", "--into",
                                "cli-json", "--user", BASIC_USER, "--password-stdin", "--ca",
                                str(authority.ca_file), "--follow", "--json",
                                input=BASIC_PASSWORD + "\n"))
    assert started["status"] == "succeeded" and started["repositories_done"] == 5

    cancelled = cli("imports", "cancel", str(mine["id"]))
    assert cancelled.code == 1 and "already ended" in cancelled.stderr
    bad = cli("import", "ftp://nowhere")
    assert bad.code == 1 and "http(s)://host" in bad.stderr
    no_stdin = cli("import", distribution.url, "--user", BASIC_USER)
    assert no_stdin.code == 2 and "--password-stdin" in no_stdin.stderr
    gone = cli("imports", "show", "999999")
    assert gone.code != 0 and "no import 999999" in gone.stderr
