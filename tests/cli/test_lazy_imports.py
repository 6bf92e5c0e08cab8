"""`moorage --help` imports only what it uses: no HTTP client, no Rich, no server.

The CLI imports every command module to build its command tree, so one eager `import httpx`
in any of them costs every invocation ~40 ms (and Rich ~25 ms, the server's settings and
asyncio more): `--help` once took over 0.3 s. Lazy imports rot silently, since nothing fails
when one comes back; this test is what notices.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

# Runs the real entry point (`python -m moorage ARGS`) with its output swallowed, then prints
# the names of the modules it imported as one JSON line on stdout.
PROBE = """
import contextlib, io, json, runpy, sys
sys.argv = ["moorage", *sys.argv[1:]]
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        runpy.run_module("moorage", run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
print(json.dumps(sorted(name for name, module in sys.modules.items() if module is not None)))
"""

# what a command that talks to no server must not pay for (pydantic is not among them:
# typer 0.2x converts a subcommand's parameters with pydantic's TypeAdapter, its own choice)
HEAVY = ("httpx", "rich", "asyncio", "ssl", "moorage.settings", "moorage.app", "granian",
         "sqlalchemy")


def imported(*args: str, **env: str) -> set[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def loaded(modules: set[str], package: str) -> bool:
    return package in modules or any(m.startswith(package + ".") for m in modules)


@pytest.mark.parametrize("args", [("--help",), ("repo", "list", "--help"), ()],
                         ids=["help", "repo-list-help", "no-arguments"])
def test_help_imports_no_http_client_rich_or_server(args: tuple[str, ...]) -> None:
    modules = imported(*args)
    assert "moorage.cli.main" in modules  # the probe ran the CLI
    assert [p for p in HEAVY if loaded(modules, p)] == []


def test_a_command_that_talks_to_a_server_imports_its_client() -> None:
    """The probe sees an import when there is one: the check above can fail."""
    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    modules = imported("repo", "list", MOORAGE_URL=f"http://127.0.0.1:{port}",
                       MOORAGE_USERNAME="nobody", MOORAGE_PASSWORD="not-a-secret")
    assert loaded(modules, "httpx")
