"""The three faces that exist this session, through a real server: `moorage advisories
import` on the instance's data folder while it serves, then `status` and `show` through the
API with the CLI, and the API itself (OpenAPI, authentication, clear errors)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, ROOMY, SECURED
from tests.scan.advisories.conftest import DEBIAN_OSV, PYPA
from tests.support.server import MoorageServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    instance = MoorageServer(tmp_path_factory.mktemp("advisories") / "data",
                             env={**SECURED, **ROOMY}).start()
    yield instance
    instance.stop()


def moorage(server: MoorageServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env.update({"MOORAGE_URL": server.url, "MOORAGE_USERNAME": "admin",
                "MOORAGE_PASSWORD": ADMIN_PASSWORD, "NO_COLOR": "1", "COLUMNS": "200",
                "XDG_CONFIG_HOME": str(server.data_dir.parent / "config")})
    return subprocess.run([sys.executable, "-m", "moorage", *args], capture_output=True,
                          text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def imported(server: MoorageServer, tmp_path_factory: pytest.TempPathFactory) -> dict:
    dump = tmp_path_factory.mktemp("dump")
    for package in ("jinja2", "urllib3"):
        (dump / package).mkdir()
        for path in (PYPA / package).glob("*.yaml"):
            (dump / package / path.name).write_bytes(path.read_bytes())
    done = moorage(server, "advisories", "import", str(dump), "--data-dir",
                   str(server.data_dir), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_import_reports_counts_as_json(imported: dict) -> None:
    assert imported["added"] == 16 and imported["skipped"] == 0
    assert {"updated", "unchanged", "withdrawn", "removed", "writes"} <= set(imported)


def test_import_prints_a_summary_for_people(server: MoorageServer) -> None:
    done = moorage(server, "advisories", "import", str(DEBIAN_OSV), "--partial",
                   "--data-dir", str(server.data_dir))
    assert done.returncode == 0, done.stderr
    assert "added" in done.stdout and "1" in done.stdout
    assert "Traceback" not in done.stderr


def test_status_through_the_api_and_the_cli(server: MoorageServer, imported: dict) -> None:
    state = httpx.get(f"{server.url}/api/v1/advisories", auth=("admin", ADMIN_PASSWORD),
                      timeout=60).json()
    assert state["ecosystems"]["PyPI"] == 16 and state["last_import"]["summary"]
    shown = moorage(server, "advisories", "status", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["ecosystems"]["PyPI"] == 16
    table = moorage(server, "advisories", "status")
    assert "PyPI" in table.stdout and "16" in table.stdout


def test_show_by_id_or_alias(server: MoorageServer, imported: dict) -> None:
    record = httpx.get(f"{server.url}/api/v1/advisories/CVE-2019-10906",
                       auth=("admin", ADMIN_PASSWORD), timeout=60).json()
    assert record["id"] == "PYSEC-2019-217" and record["record"]["affected"]
    shown = moorage(server, "advisories", "show", "PYSEC-2019-217")
    assert shown.returncode == 0, shown.stderr
    assert "jinja2" in shown.stdout and "fixed 2.10.1" in shown.stdout


def test_unknown_advisories_and_anonymous_callers_get_clear_errors(
        server: MoorageServer, imported: dict) -> None:
    missing = httpx.get(f"{server.url}/api/v1/advisories/CVE-1999-0000",
                        auth=("admin", ADMIN_PASSWORD), timeout=60)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
    assert httpx.get(f"{server.url}/api/v1/advisories", timeout=60).status_code == 401
    too_long = httpx.get(f"{server.url}/api/v1/advisories/{'X' * 300}",
                         auth=("admin", ADMIN_PASSWORD), timeout=60)
    assert too_long.status_code == 422 and too_long.json()["error"]["code"] == "INVALID"
    shown = moorage(server, "advisories", "show", "CVE-1999-0000")
    assert shown.returncode == 1 and "no advisory" in shown.stderr
    assert "Traceback" not in shown.stderr


def test_the_openapi_document_has_both_paths(server: MoorageServer) -> None:
    paths = httpx.get(f"{server.url}/api/v1/openapi.json", timeout=60).json()["paths"]
    assert "get" in paths["/api/v1/advisories"]
    assert "get" in paths["/api/v1/advisories/{ident}"]


def test_import_refuses_a_folder_without_an_instance(server: MoorageServer,
                                                    tmp_path: Path) -> None:
    done = moorage(server, "advisories", "import", str(DEBIAN_OSV), "--data-dir",
                   str(tmp_path / "nothing"))
    assert done.returncode == 1 and "no Moorage instance" in done.stderr
    bad = moorage(server, "advisories", "import", str(tmp_path / "missing.zip"), "--data-dir",
                  str(server.data_dir))
    assert bad.returncode == 1 and "does not exist" in bad.stderr
