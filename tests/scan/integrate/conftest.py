"""A secured Moorage server scanning on push, whose scanner adapters pull from it (its own
URL), with the fixture's PyPI advisories for jinja2 imported; the test adapter of
tests/support/harbor_adapter.py as a separate process; and helpers shared by the tests of
the scanner's parts working together (issue 16)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.clients.tools import require_tool
from tests.conftest import ADMIN_PASSWORD, ROOMY, SECURED
from tests.scan.harbor.conftest import adapters  # noqa: F401 - the adapter processes
from tests.scan.service.helpers import OSV_PYPA, import_advisories
from tests.support.server import MoorageServer


def start_server(folder: Path, **env: str) -> MoorageServer:
    require_tool("skopeo")
    server = MoorageServer(folder / "data", env={**SECURED, **ROOMY,
                                                 "MOORAGE_SCAN_ON_PUSH": "true", **env})
    server.env["MOORAGE_SCAN_ADAPTER_REGISTRY_URL"] = server.url
    return server.start()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    started = start_server(tmp_path_factory.mktemp("scan-integrate"))
    import_advisories(started, OSV_PYPA / "jinja2")
    yield started
    started.stop()


def cli(server: MoorageServer, *args: str) -> subprocess.CompletedProcess[str]:
    """`moorage ARGS` against the server, as the administrator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env.pop("COLUMNS", None)
    env.update({"MOORAGE_URL": server.url, "MOORAGE_USERNAME": "admin",
                "MOORAGE_PASSWORD": ADMIN_PASSWORD, "NO_COLOR": "1", "COLUMNS": "250",
                "XDG_CONFIG_HOME": str(server.data_dir.parent / "config")})
    return subprocess.run([sys.executable, "-m", "moorage", *args], capture_output=True,
                          text=True, env=env, timeout=600, stdin=subprocess.DEVNULL)


def osv_records(folder: Path, records: list[dict[str, Any]]) -> Path:
    """OSV records written as files, for `moorage advisories import --partial`."""
    folder.mkdir(parents=True, exist_ok=True)
    for record in records:
        (folder / f"{record['id']}.json").write_text(json.dumps(record))
    return folder


def debian_record(ident: str, package: str, fixed: str, aliases: list[str],
                  severity: str = "HIGH", withdrawn: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": ident, "modified": "2026-12-07T00:00:00Z", "summary": f"{package} test advisory",
        "aliases": aliases, "database_specific": {"severity": severity},
        "affected": [{"package": {"ecosystem": "Debian:12", "name": package},
                      "ranges": [{"type": "ECOSYSTEM", "events": [
                          {"introduced": "0"}, {"fixed": fixed}]}]}]}
    if withdrawn:
        record["withdrawn"] = withdrawn
        record["modified"] = withdrawn
    return record


def dpkg_installed(status: Path) -> dict[str, str]:
    """Package -> version of a dpkg status file, read here on its own."""
    out, name = {}, None
    for line in status.read_text().splitlines():
        if line.startswith("Package: "):
            name = line.split(": ", 1)[1]
        elif line.startswith("Version: ") and name:
            out[name] = line.split(": ", 1)[1]
    return out


def dpkg_older(installed: str, fixed: str) -> bool:
    """Debian's own order (dpkg --compare-versions)."""
    require_tool("dpkg")
    return subprocess.run(["dpkg", "--compare-versions", installed, "lt", fixed],
                          timeout=60).returncode == 0
