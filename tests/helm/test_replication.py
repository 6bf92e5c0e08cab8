"""Charts travel like any artifact: a pull replication rule copies a chart uploaded through
the ChartMuseum API of one Moorage (its .tgz and .prov layers, digests unchanged) into
another, whose index.yaml then lists it, with the same digest, served byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.helm.helpers import api, new_namespace, package, provenance, repo, sha256
from tests.replication.rules.conftest import moorage
from tests.replication.rules.helpers import ADMIN, create_rule, run_rule
from tests.support.server import MoorageServer

pytestmark = pytest.mark.slow


def test_a_replicated_chart_is_in_the_destinations_chart_repository(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    source = moorage(tmp_path_factory.mktemp("helm-source"))
    destination = moorage(tmp_path_factory.mktemp("helm-destination"))
    try:
        _replicate(source, destination, tmp_path)
    finally:
        source.kill()
        destination.kill()


def _replicate(source: MoorageServer, destination: MoorageServer, tmp_path: Path) -> None:
    chart = package(tmp_path, "web", "1.2.3")
    with api(source) as client:
        charts = new_namespace(client)
    with api(destination) as client:
        mirror = new_namespace(client)
    with repo(source, charts) as client:
        resp = client.post("/api/charts", files={
            "chart": (chart.name, chart.read_bytes()),
            "prov": (chart.name + ".prov", provenance(chart))})
        assert resp.status_code == 201, resp.text

    create_rule(destination, name="charts-in", mode="pull", url=source.url,
                username=ADMIN[0], password=ADMIN[1], repositories=f"{charts}/*",
                destination_namespace=mirror, on_event=False)
    execution = run_rule(destination, "charts-in")
    assert execution["status"] == "succeeded" and execution["copied"] == 1, execution

    with repo(destination, mirror) as client:
        index = client.get("/index.yaml")
        assert index.status_code == 200, index.text
        entries = yaml.safe_load(index.text)["entries"]
        assert [e["version"] for e in entries["web"]] == ["1.2.3"]
        assert entries["web"][0]["digest"] == sha256(chart.read_bytes())
        tgz = client.get("/charts/web-1.2.3.tgz")
        assert tgz.status_code == 200 and tgz.content == chart.read_bytes()
        prov = client.get("/charts/web-1.2.3.tgz.prov")
        assert prov.status_code == 200 and prov.content == provenance(chart)
