"""The three faces of charts: /api/v1 (and its OpenAPI document), `moorage chart`, and the
console's pages (headless Chromium, with axe-core's accessibility check)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.helm.helpers import ADMIN, api, helm, new_namespace, repo, sha256
from tests.support.browser import accessibility_violations, browse, chromium  # noqa: F401
from tests.support.server import MoorageServer

README = """# Shop chart

Installs **the shop**. See [the docs](https://example.com/docs).

<script>window.pwned = true</script>
[click](javascript:alert(1))
"""


def _shop(tmp_path: Path) -> Path:
    """A chart with a README, keywords, a maintainer and a dependency, packaged by Helm."""
    h = helm()
    folder = tmp_path / "src"
    folder.mkdir()
    h.Chart.create("shop", folder)
    chart_yaml = folder / "shop" / "Chart.yaml"
    chart_yaml.write_text(chart_yaml.read_text() + "keywords: [shop, web]\n"
                          "maintainers:\n- name: Ada\n  email: ada@example.com\n")
    (folder / "shop" / "README.md").write_text(README)
    out = tmp_path / "pkg"
    out.mkdir()
    return Path(h.package(folder / "shop", destination=out, version="1.4.0",
                          app_version="2.0"))


@pytest.fixture(scope="module")
def shop(server: MoorageServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    tmp = tmp_path_factory.mktemp("shop")
    ns = new_namespace(api(server))
    chart = _shop(tmp)
    with repo(server, ns) as client:
        assert client.post("/api/charts", content=chart.read_bytes()).status_code == 201
    h = helm()
    older = Path(h.package(chart.parent.parent / "src" / "shop", destination=tmp,
                           version="1.3.0"))
    with repo(server, ns) as client:
        assert client.post("/api/charts", content=older.read_bytes()).status_code == 201
    return ns, chart


def test_the_api_lists_charts_versions_values_and_readme(server: MoorageServer,
                                                         shop: tuple[str, Path]) -> None:
    ns, chart = shop
    client = api(server)
    [listed] = client.get(f"/namespaces/{ns}/charts").json()
    assert (listed["name"], listed["latest_version"], listed["versions"]) == ("shop", "1.4.0", 2)
    versions = client.get(f"/namespaces/{ns}/charts/shop").json()
    assert [v["version"] for v in versions] == ["1.4.0", "1.3.0"]
    v = client.get(f"/namespaces/{ns}/charts/shop/1.4.0").json()
    assert v["digest"] == "sha256:" + sha256(chart.read_bytes())
    assert v["keywords"] == ["shop", "web"] and v["maintainers"][0]["name"] == "Ada"
    assert v["app_version"] == "2.0" and "replicaCount" in v["values"]
    assert v["readme"] == README and v["repository"] == f"{ns}/shop" and v["tag"] == "1.4.0"
    assert client.get(f"/namespaces/{ns}/charts/shop/latest").json()["version"] == "1.4.0"
    assert client.get(f"/namespaces/{ns}/charts/shop/9.9.9").status_code == 404
    assert client.get(f"/namespaces/{ns}/charts/nothing").status_code == 404
    assert api(server, auth=None).get(f"/namespaces/{ns}/charts/shop").status_code == 401
    doc = client.get("/openapi.json").json()
    assert {"get", "delete"} <= set(doc["paths"]["/api/v1/namespaces/{namespace}/charts/"
                                                 "{chart}/{version}"])


def test_the_cli_lists_shows_and_deletes(server: MoorageServer, shop: tuple[str, Path],
                                         tmp_path: Path) -> None:
    ns, _ = shop

    def moorage(*args: str) -> str:
        env = {**os.environ, "MOORAGE_URL": server.url, "MOORAGE_USERNAME": ADMIN[0],
               "MOORAGE_PASSWORD": ADMIN[1], "XDG_CONFIG_HOME": str(tmp_path), "NO_COLOR": "1",
               "COLUMNS": "200"}
        proc = subprocess.run([sys.executable, "-m", "moorage", *args], capture_output=True,
                              text=True, env=env, timeout=120)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc.stdout

    table = moorage("chart", "list", ns)
    assert "CHART" in table and "shop" in table and "1.4.0" in table
    assert json.loads(moorage("chart", "list", ns, "--json"))[0]["versions"] == 2
    versions = moorage("chart", "show", f"{ns}/shop")
    assert versions.index("1.4.0") < versions.index("1.3.0")
    one = moorage("chart", "show", f"{ns}/shop:1.4.0")
    assert "Ada" in one and f"{ns}/shop:1.4.0" in one
    assert "replicaCount" in moorage("chart", "show", f"{ns}/shop:1.4.0", "--values")
    assert json.loads(moorage("chart", "show", f"{ns}/shop:latest", "--json"))["version"] == "1.4.0"
    deleted = json.loads(moorage("chart", "delete", f"{ns}/shop:1.3.0", "--yes", "--json"))
    assert deleted["deleted"] is True
    assert [v["version"] for v in json.loads(moorage("chart", "show", f"{ns}/shop", "--json"))] \
        == ["1.4.0"]
    with repo(server, ns) as client:
        assert client.get("/api/charts/shop/1.3.0").status_code == 404


def test_the_console_shows_versions_pull_commands_values_and_a_safe_readme(
        server: MoorageServer, shop: tuple[str, Path], browse) -> None:  # noqa: F811
    ns, chart = shop
    b = browse(server)
    page = b.new_page()
    b.sign_in(page, *ADMIN)
    page.goto(f"{b.base}/namespaces/{ns}")
    page.get_by_role("link", name="Its Helm charts").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Helm charts of {ns}")
    assert accessibility_violations(page) == []
    page.get_by_role("link", name="shop", exact=True).click()
    expect(page.locator("#pull-oci")).to_have_text(
        f"helm pull oci://{b.host}/{ns}/shop --version 1.4.0")
    expect(page.locator("#pull-classic")).to_have_text(f"helm pull {ns}/shop --version 1.4.0")
    expect(page.get_by_role("cell", name="sha256:" + sha256(chart.read_bytes()))).to_be_visible()
    assert accessibility_violations(page) == []
    page.get_by_role("link", name="1.4.0", exact=True).click()
    readme = page.locator("#readme")
    expect(readme.get_by_role("heading", name="Shop chart")).to_be_visible()
    expect(readme.locator("strong")).to_have_text("the shop")
    expect(readme.get_by_role("link", name="the docs")).to_have_attribute(
        "href", "https://example.com/docs")
    # raw HTML is shown as text, and a javascript: link is not made a link
    expect(readme).to_contain_text("<script>window.pwned = true</script>")
    assert readme.locator("script").count() == 0
    assert page.evaluate("window.pwned === undefined")
    assert readme.get_by_role("link", name="click").count() == 0
    expect(page.locator("#values")).to_contain_text("replicaCount: 1")
    assert accessibility_violations(page) == []
