"""A secured Moorage server, the fixture image pushed to it with skopeo, and the test
scanner adapter (tests/support/harbor_adapter.py) run as separate processes on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from moorage.app import build_instance
from moorage.scan.engines.harbor import ScannerService
from moorage.scan.engines.harbor import install as install_scanners
from moorage.settings import load_settings
from tests.clients.tools import copy_in, require_tool
from tests.conftest import ADMIN_PASSWORD, ROOMY, SECURED
from tests.scan.sbom.conftest import SampleImage, write_rootfs
from tests.support.server import MoorageServer, free_port

REPO_ROOT = Path(__file__).resolve().parents[3]
API_KEY = "adapter-api-key-5f1c9a"  # what the adapter asks Moorage for, when it asks


class AdapterProcess:
    """The test adapter on a free loopback port; stopped by its process group."""

    def __init__(self, folder: Path, mode: str = "normal", api_key: str = "",
                 db: list[dict] | None = None) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.record = folder / "record"
        self.port = free_port()
        (folder / "db.json").write_text(json.dumps(db or []))
        self.args = [sys.executable, "-m", "tests.support.harbor_adapter", "--port",
                     str(self.port), "--db", str(folder / "db.json"), "--record",
                     str(self.record), "--mode", mode, "--api-key", api_key]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "AdapterProcess":
        self._log = open(self.folder / "adapter.log", "ab")
        self.proc = subprocess.Popen(self.args, cwd=REPO_ROOT, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.folder / "adapter.log").read_text())
            try:  # listening is enough: one mode never answers its metadata
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("the test adapter did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()

    def records(self, name: str) -> list[dict]:
        path = self.record / name
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]


@pytest.fixture
def adapters(tmp_path: Path) -> Iterator[Callable[..., AdapterProcess]]:
    started: list[AdapterProcess] = []

    def start(mode: str = "normal", api_key: str = "", db: list[dict] | None = None,
              name: str = "adapter") -> AdapterProcess:
        adapter = AdapterProcess(tmp_path / f"{name}-{len(started)}", mode, api_key, db)
        started.append(adapter.start())
        return adapter

    yield start
    for adapter in started:
        adapter.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    instance = MoorageServer(tmp_path_factory.mktemp("harbor") / "data",
                             env={**SECURED, **ROOMY})
    # where adapters pull from: this server (its port is chosen before it starts)
    instance.env["MOORAGE_SCAN_ADAPTER_REGISTRY_URL"] = instance.url
    instance.start()
    yield instance
    instance.stop()


@dataclass(frozen=True)
class Pushed:
    repository: str
    digest: str


@pytest.fixture(scope="module")
def sample_layout(tmp_path_factory: pytest.TempPathFactory) -> SampleImage:
    """The fixture image of ../sbom (bookworm's dpkg database) as a one-layer OCI layout."""
    require_tool("umoci")
    base = tmp_path_factory.mktemp("harbor-sample")
    rootfs = write_rootfs(base / "rootfs")
    layout = base / "oci"
    for args in (["init", "--layout", str(layout)],
                 ["new", "--image", f"{layout}:sample"],
                 ["insert", "--rootless", "--image", f"{layout}:sample", str(rootfs), "/"]):
        subprocess.run(["umoci", *args], check=True, capture_output=True, timeout=300)
    return SampleImage(rootfs, layout)


def push(server: MoorageServer, layout: Path, repository: str) -> Pushed:
    require_tool("skopeo")
    index = json.loads((layout / "index.json").read_text())
    copy_in(f"oci:{layout}:sample", f"docker://{server.host}/{repository}:v1",
            "--preserve-digests", f"--dest-creds=admin:{ADMIN_PASSWORD}")
    return Pushed(repository, index["manifests"][0]["digest"])


@pytest.fixture(scope="module")
def pushed(server: MoorageServer, sample_layout: SampleImage) -> Pushed:
    return push(server, sample_layout.layout, "harbortest/app")


@pytest.fixture(scope="module")
def other(server: MoorageServer, sample_layout: SampleImage) -> Pushed:
    return push(server, sample_layout.layout, "harbortest/other")


@pytest.fixture(scope="module")
def scanners(server: MoorageServer) -> ScannerService:
    """The adapters' service of the server's own data folder, in this process (as a scan
    job in a worker process would use it): same database, same token signing key."""
    settings = load_settings(environ={}, overrides={
        "data_dir": server.data_dir, "scan_adapter_registry_url": server.url})
    instance = build_instance(settings)
    return install_scanners(settings, instance.registry.db.engine, instance.edition,
                            instance.issuer, instance.registry)
