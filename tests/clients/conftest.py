"""Fixtures for the real-client tests, and the switch to run them against CNCF Distribution.

`MOORAGE_TEST_PEER=distribution` replaces the `registry` fixture (for tests in this folder)
with a Debian `docker-registry` (CNCF Distribution 2.8) on a free loopback port. That lets
the client tests themselves be validated against a reference registry, and lets a failure
be classified at once: fails on both -> the test (or the client) is wrong; fails only on
Moorage -> Moorage is.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.clients.tools import ContainerStore
from tests.support.server import RegistryProcess

PEER = os.environ.get("MOORAGE_TEST_PEER", "").strip().lower()
if PEER not in ("", "moorage", "distribution"):
    raise pytest.UsageError(f"MOORAGE_TEST_PEER={PEER!r}: expected 'distribution' or unset")


class DistributionServer(RegistryProcess):
    """`docker-registry serve` with its own config and storage; stopped by PID, like Moorage."""

    name = "docker-registry"

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        super().__init__(data_dir, port, log_name="distribution")
        self.config_path = self.data_dir.parent / f"{self.data_dir.name}-distribution.yml"

    def write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(f"""\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {self.data_dir}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {self.host}
""")

    def command(self) -> list[str]:
        exe = shutil.which("docker-registry")
        if exe is None:
            pytest.skip("MOORAGE_TEST_PEER=distribution needs `apt-get install docker-registry`")
        self.write_config()
        return [exe, "serve", str(self.config_path)]

    def environment(self) -> dict[str, str]:
        # Go's S3 drivers trip over this machine's AWS_CA_BUNDLE; Distribution needs none.
        return {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}


if PEER == "distribution":

    @pytest.fixture(scope="session")
    def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DistributionServer]:
        """The shared session registry, here CNCF Distribution instead of Moorage."""
        server = DistributionServer(tmp_path_factory.mktemp("distribution") / "data").start()
        yield server
        server.kill()

    @pytest.fixture
    def fresh_registry(tmp_path: Path) -> Iterator[DistributionServer]:
        """A Distribution of the test's own."""
        server = DistributionServer(tmp_path / "data").start()
        yield server
        server.kill()


@pytest.fixture(scope="session")
def peer_name() -> str:
    """Which registry the `registry` fixture is: "moorage" or "distribution"."""
    return PEER or "moorage"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None],
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure, attach the registry's log tail: the server side of what the client saw."""
    report: pytest.TestReport = yield
    if report.failed and call.when == "call":
        funcargs = getattr(item, "funcargs", {})
        for name in ("registry", "fresh_registry"):
            server = funcargs.get(name)
            if server is not None and hasattr(server, "log"):
                report.sections.append((f"{name} log (tail)", server.log()[-4000:]))
    return report


# ---------------------------------------------------------------------------------------------
# Client stores


@pytest.fixture
def podman_store(tmp_path: Path) -> Iterator[ContainerStore]:
    """A podman with a private vfs store (vfs: no mounts, works anywhere, fine for pull/push)."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (apt-get install podman)")
    store = ContainerStore("podman", tmp_path / "podman", "vfs")
    yield store
    store.cleanup()


@pytest.fixture
def podman_store2(tmp_path: Path) -> Iterator[ContainerStore]:
    """A second, empty podman store: pulls there cannot be served from a local cache."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (apt-get install podman)")
    store = ContainerStore("podman", tmp_path / "podman2", "vfs")
    yield store
    store.cleanup()


@pytest.fixture(scope="session")
def buildah_driver(tmp_path_factory: pytest.TempPathFactory) -> str:
    """overlay if this kernel lets buildah mount it (>10x faster RUN steps), else vfs."""
    if shutil.which("buildah") is None:
        pytest.skip("buildah is not installed (apt-get install buildah)")
    probe = ContainerStore("buildah", tmp_path_factory.mktemp("buildah-probe"), "overlay")
    made = probe("from", "--quiet", "scratch", check=False, timeout=60)
    ok = made.returncode == 0
    if ok:
        name = made.text.strip().splitlines()[-1]
        ok = probe("mount", name, check=False, timeout=60).returncode == 0
        probe("umount", name, check=False, timeout=60)
        probe("rm", name, check=False, timeout=60)
    probe.cleanup()
    return "overlay" if ok else "vfs"


@pytest.fixture
def buildah_store(tmp_path: Path, buildah_driver: str) -> Iterator[ContainerStore]:
    """A buildah with a private store on the driver `buildah_driver` chose."""
    store = ContainerStore("buildah", tmp_path / "buildah", buildah_driver)
    yield store
    store.cleanup()

