"""Shared fixtures: real Moorage processes on loopback."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from tests.support.server import MoorageServer

if TYPE_CHECKING:
    from tests.support.scaleout import ScaleOut

# `secured`: secured instances on both backends with 2 processes each, made once per session
# for every folder that uses them (imported into each folder's conftest, each folder would
# get instances of its own); tests/access overrides them with throttled ones.
pytest_plugins = ["tests.support.secured"]


# Property tests explore the same examples on every run (a red CI is always reproducible) and
# have no per-example deadline (a loaded 2-core machine is not a failing test).
hypothesis_settings.register_profile("moorage", derandomize=True, deadline=None)
hypothesis_settings.load_profile("moorage")

# The registry-protocol and client tests exercise the OCI API itself, so they run on an open
# instance (auth off); tests/access exercises accounts and tokens on secured instances.
# Shared instances serve hundreds of tests that each make their own namespace: the edition's
# quotas are tested on instances of their own (tests/access, tests/web), not hit by accident.
# Scans on push (on by default) are off on the shared instances: a scan attaches an SBOM
# referrer to each pushed image, which the registry tests would count; tests/scan turns it on.
ROOMY = {"MOORAGE_QUOTA_NAMESPACES": "100000", "MOORAGE_QUOTA_REPOSITORIES": "1000000",
         "MOORAGE_SCAN_ON_PUSH": "false", "MOORAGE_SCAN_SYFT": "off"}
OPEN = {"MOORAGE_AUTH": "off", **ROOMY}
ADMIN_PASSWORD = "admin-password-for-tests"
# Test webhooks are received on loopback, which production instances refuse by default.
# Every test client comes from 127.0.0.1, and the suite fails logins on purpose far more often
# than the per-address lockout allows an hour: tests of the lockout (tests/access) set it
# themselves and send their failures from addresses of their own.
SECURED = {"MOORAGE_ADMIN_PASSWORD": ADMIN_PASSWORD, "MOORAGE_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
           "MOORAGE_SCAN_ON_PUSH": "false", "MOORAGE_SCAN_SYFT": "off",
           "MOORAGE_LOGIN_LOCKOUT_ADDRESS_FAILURES": "0"}


# The registry tests run on both backends; MOORAGE_TEST_BACKENDS=embedded skips scale-out
# for a quick local run (CI runs both).
BACKENDS = [b.strip() for b in os.environ.get("MOORAGE_TEST_BACKENDS",
                                              "embedded,scaleout").split(",") if b.strip()]


# The terminal size the CLI's tables are drawn for. An xdist worker imports readline, which
# exports COLUMNS=80 and LINES=24 into its environment (and so into every `moorage` command
# a test runs, whose tables then wrap at 80 columns): workers take the controller's values.
_TERMINAL = ("COLUMNS", "LINES")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """On the xdist controller: hand each worker this process's terminal variables."""
    node.workerinput["terminal_environment"] = {name: os.environ.get(name) for name in _TERMINAL}


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist 3.7 and later sort `loadscope`'s modules by their number of tests (most
    # first) unless told not to, which undid LONGEST_FIRST: the fuzz run's 4 tests and the
    # image build's 2 were handed out among the last, and kept a worker busy for minutes
    # after the others had finished. The order of the collection is kept instead.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False
    given = getattr(config, "workerinput", {}).get("terminal_environment")
    for name, value in (given or {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# The modules that take longest (a minute or more, mostly waiting on builds, servers and
# restarts), run first: pytest-xdist's `loadscope` hands modules out in collection order, and
# a long module handed out last kept one worker busy for minutes after the others were done
# (the suite's last tenth took a third of its time). Longest first lets the workers end
# together. Ordered by the wall time of each module in a full run (MOORAGE_TEST_COST_LOG,
# scripts/test-costs.py); every module over ~20 s is listed.
LONGEST_FIRST = (
    "web/test_api_fuzz.py", "packaging/test_containerfile.py",
    "replication/imports/test_harbor.py", "replication/imports/test_import.py",
    "ops/test_domains.py", "replication/imports/test_resume.py", "scaleout/test_replicas.py",
    "cli/test_serve_process.py", "replication/rules/test_crash.py",
    "helm/test_index_scale.py", "console/test_admin.py", "ops/test_tls.py",
    "api/test_manifests.py", "console/test_repositories.py",
    "replication/rules/test_bad_upstreams.py", "packaging/test_scale_out.py",
    "console/test_every_page.py", "console/test_namespaces.py", "api/test_durability.py",
    "replication/rules/test_push_pull.py", "lifecycle/test_policies.py", "lifecycle/test_gc.py",
    "cli/test_commands.py", "console/test_rules.py", "scaleout/test_commit_signal.py",
    "api/test_blob_pulls.py", "sso/test_oidc_bad_input.py", "sso/test_oidc.py",
    "console/test_jobs.py", "events/test_delivery.py", "api/test_upload_races.py",
    "audit/test_reports.py", "access/test_cached_decisions.py",
    "signing/service/test_keys.py", "replication/proxy/test_pull_through.py",
    "replication/subscriptions/test_follow.py", "lifecycle/test_immutability.py",
    "web/test_number_ranges.py", "replication/subscriptions/test_quota_and_bad_input.py",
    "scan/advisories/test_import.py", "db/test_concurrent_writes.py", "events/test_api.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest modules first (a stable sort: the order within a module is kept)."""
    rank = {module: i for i, module in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(
        item.nodeid.split("::", 1)[0].removeprefix("tests/"), len(rank)))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """With MOORAGE_TEST_COST_LOG=FILE, one line per test: its wall time, this process's CPU,
    the CPU of the processes it started and reaped (servers, clients), and the CPU of the
    server processes it stopped (read before the signal; a killed server's workers are
    reaped by init and missing from the third figure), setup and teardown included; for
    finding what makes the suite long (`scripts/test-costs.py FILE`)."""
    target = os.environ.get("MOORAGE_TEST_COST_LOG")
    if not target:
        yield
        return
    import resource
    import time

    def cpu(who: int) -> float:
        usage = resource.getrusage(who)
        return usage.ru_utime + usage.ru_stime

    from tests.support import server

    start = (time.monotonic(), cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN),
             server.servers_cpu)
    yield
    end = (time.monotonic(), cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN),
           server.servers_cpu)
    with open(target, "a") as log:
        log.write("\t".join([item.nodeid, *(f"{b - a:.3f}" for a, b in zip(start, end))]) + "\n")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the servers the scale-out deployments shared (after every fixture's teardown)."""
    from tests.support.backends import stop_shared

    stop_shared()


@pytest.fixture(scope="session")
def scaleout(tmp_path_factory: pytest.TempPathFactory) -> Iterator["ScaleOut"]:
    """Two replicas on PostgreSQL, SeaweedFS and Redis, auth off (for the protocol tests)."""
    from tests.support.scaleout import ScaleOut

    cluster = ScaleOut(tmp_path_factory.mktemp("scaleout"), env=OPEN)
    try:
        yield cluster.start(replicas=2)
    finally:
        cluster.stop()


@pytest.fixture(scope="session", params=BACKENDS)
def registry(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    """One server shared by the tests that only push and pull (fast), on each backend."""
    if request.param == "scaleout":
        yield request.getfixturevalue("scaleout").replicas[0]
        return
    server = MoorageServer(tmp_path_factory.mktemp("shared") / "data", env=OPEN).start()
    yield server
    server.stop()


@pytest.fixture
def fresh_registry(tmp_path: Path) -> Iterator[MoorageServer]:
    """A server of the test's own, for tests that restart, kill or count things."""
    server = MoorageServer(tmp_path / "data", env=OPEN).start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def secure_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    """A shared instance with token auth on and a known administrator password."""
    server = MoorageServer(tmp_path_factory.mktemp("secure") / "data",
                           env={**SECURED, **ROOMY}).start()
    yield server
    server.stop()


@pytest.fixture
def make_registry(tmp_path: Path) -> Iterator[Callable[..., MoorageServer]]:
    """Start instances with their own settings (edition, rules, proxies); all stopped after."""
    started: list[MoorageServer] = []

    def start(name: str = "data", env: dict[str, str] | None = None,
              args: list[str] | None = None) -> MoorageServer:
        server = MoorageServer(tmp_path / name, extra_args=args,
                               env={**SECURED, **(env or {})})
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.kill()
