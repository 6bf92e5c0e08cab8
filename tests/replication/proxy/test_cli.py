"""`moorage proxy …` against a real server: create (password from stdin), list, show,
update, check, delete; tables for people, --json for scripts, refusals with exit code 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.remote.conftest import BASIC_PASSWORD, BASIC_USER
from tests.replication.proxy.conftest import ADMIN, CountedDistribution
from tests.support.certs import Authority
from tests.support.server import MoorageServer


def _cli(server: MoorageServer, home: Path, *args: str, stdin: str | None = None
         ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "MOORAGE_URL": server.url,
           "MOORAGE_USERNAME": ADMIN[0], "MOORAGE_PASSWORD": ADMIN[1]}
    return subprocess.run([sys.executable, "-m", "moorage", "proxy", *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=300)


def test_proxy_commands(tmp_path: Path, moorage: MoorageServer, upstream: CountedDistribution,
                        authority: Authority) -> None:
    made = _cli(moorage, tmp_path, "create", "clihub", "--upstream",
                f"https://localhost:{upstream.port}", "--username", BASIC_USER,
                "--password-stdin", "--ca-file", str(authority.ca_file), "--ttl", "120",
                "--rewrite-library", stdin=BASIC_PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    assert "clihub now pulls through" in made.stdout
    listed = _cli(moorage, tmp_path, "list")
    assert "clihub" in listed.stdout and BASIC_PASSWORD not in listed.stdout
    shown = json.loads(_cli(moorage, tmp_path, "show", "clihub", "--json").stdout)
    assert shown["ttl_seconds"] == 120 and shown["has_password"] and shown["has_ca"]
    checked = _cli(moorage, tmp_path, "check", "clihub")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert _cli(moorage, tmp_path, "update", "clihub", "--ttl", "600").returncode == 0
    refused = _cli(moorage, tmp_path, "update", "clihub", "--ttl", "5")
    assert refused.returncode == 1 and "ttl_seconds" in refused.stderr
    # a wrong password: the check fails, says why, and exits 1
    assert _cli(moorage, tmp_path, "update", "clihub", "--password-stdin",
                stdin="wrong\n").returncode == 0
    failed = _cli(moorage, tmp_path, "check", "clihub")
    assert failed.returncode == 1 and "cannot be reached" in failed.stdout
    assert "wrong" not in failed.stdout
    assert _cli(moorage, tmp_path, "delete", "clihub").returncode == 0
    assert _cli(moorage, tmp_path, "show", "clihub").returncode == 1
