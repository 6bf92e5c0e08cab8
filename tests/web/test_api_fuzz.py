"""A bounded fuzz run of /api/v1 with schemathesis, from the OpenAPI document the server
serves: no server error, and every answer as documented (status code, content type,
headers, body schema), with an administrator's credentials and with none.

Bounded and reproducible: a fixed number of examples per operation (no time budget, which
would make the cases depend on the machine's speed) in schemathesis's deterministic mode,
one worker, against a server of its own per backend (so that no other test's data changes
what the fuzzer finds). Invoked as

    python -m schemathesis.cli run URL/api/v1/openapi.json --checks all \
        --exclude-checks positive_data_acceptance --generation-deterministic --workers 1 \
        --auth fuzzer:PASSWORD --max-examples 2               (every phase, each backend)
        --phases examples,fuzzing --max-examples 3            (anonymous, embedded)

with the hooks in fuzz_hooks.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BACKENDS, ROOMY, SECURED
from tests.support.server import MoorageServer
from tests.web.helpers import api, server_log

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FUZZER = ("fuzzer", "fuzzer-password-for-tests")
# Checked: everything schemathesis knows, but one. The API refuses with 400, as documented,
# values whose rules a JSON schema cannot state (cron expressions, CIDR blocks, globs,
# repository names in paths) and requests the state forbids (the last administrator, a rule
# that would lock its author out); "schema-valid request rejected" would flag each of them.
EXCLUDED = ["positive_data_acceptance"]
# Production's default (tests elsewhere receive webhooks on loopback): the fuzzer's
# webhooks then point nowhere reachable, and each delivery is tried once (every management
# change the fuzzer makes is an event: with 8 tries each, thousands of doomed deliveries cost
# the server more CPU than the fuzzing). No account lockout: the fuzzer's own checks send
# wrong credentials for its account on purpose, and would lock it out (lockouts have their
# tests in tests/access). Its resolver waits 1 s, once, for the examples' hosts
# (ci.example.com for webhooks, scanner and upstream URLs: they resolve nowhere), as every
# test server's (tests/support/server.py, RESOLVER): the webhook, scanner and proxy-cache
# checks resolve in the request, and each dropped DNS query cost one 5-10 s.
ENV = {**SECURED, **ROOMY, "MOORAGE_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "false",
       "MOORAGE_WEBHOOK_MAX_ATTEMPTS": "1", "MOORAGE_LOGIN_LOCKOUT_FAILURES": "0"}


@pytest.fixture(scope="module", params=BACKENDS)
def target(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    """A fresh secured instance for the fuzzer, with its own administrator account."""
    root = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    if request.param == "scaleout":
        from tests.support.scaleout import ScaleOut

        cluster = ScaleOut(root, env=ENV)
        request.addfinalizer(cluster.stop)
        server = cluster.start(replicas=1).replicas[0]
    else:
        server = MoorageServer(root / "data", env=ENV).start()
        request.addfinalizer(server.kill)
    made = api(server, "POST", "/users", json={"username": FUZZER[0], "password": FUZZER[1],
                                                "is_admin": True})
    assert made.status_code == 201, made.text
    yield server


def _fuzz(server: MoorageServer, tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "schemathesis.cli", "run",
               f"{server.url}/api/v1/openapi.json", "--checks", "all",
               "--exclude-checks", ",".join(EXCLUDED), "--generation-deterministic",
               "--workers", "1", "--no-color",
               "--request-timeout", "60", *options]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.web.fuzz_hooks",
           "MOORAGE_FUZZ_USERNAME": FUZZER[0],
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=1200)


def _report(run: subprocess.CompletedProcess[str]) -> str:
    return (run.stdout[-20000:] + run.stderr[-4000:]).strip()


def test_as_an_administrator(target: MoorageServer, tmp_path: Path) -> None:
    run = _fuzz(target, tmp_path, "--auth", ":".join(FUZZER), "--max-examples", "2")
    assert run.returncode == 0, _report(run)
    # The run tested something: the fuzzer was an administrator to the end.
    me = api(target, "GET", "/user", auth=FUZZER)
    assert me.status_code == 200 and me.json()["is_admin"] is True, me.text
    assert "Traceback" not in server_log(target), "no error, even one no answer showed"


def test_anonymously(target: MoorageServer, tmp_path: Path) -> None:
    """Every operation but /info refuses, as documented, before it looks at what was sent.
    (The refusal does not depend on the database, so one backend is enough.)"""
    if target.env.get("MOORAGE_DATABASE_URL"):
        pytest.skip("the anonymous pass runs on the embedded backend")
    run = _fuzz(target, tmp_path, "--phases", "examples,fuzzing", "--max-examples", "3")
    assert run.returncode == 0, _report(run)
    assert "Traceback" not in server_log(target)
