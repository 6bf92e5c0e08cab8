"""index.yaml of 1,000 chart versions across 100 charts, read by Helm's own index loader:
every entry there, with the sha256 of the .tgz that was uploaded as its digest."""

from __future__ import annotations

import pytest

from tests.helm.helpers import ADMIN, api, helm, new_namespace, seed
from tests.support.server import MoorageServer


@pytest.mark.slow
def test_an_index_of_a_thousand_versions_loads_in_helm_with_the_right_digests(
        server: MoorageServer) -> None:
    ns = new_namespace(api(server))
    uploaded = seed(server, ns, charts=100, versions=10)
    index = helm().repo_index(f"{server.url}/chartrepo/{ns}", username=ADMIN[0],
                              password=ADMIN[1])
    entries = index["entries"]
    assert len(entries) == 100
    found = {f"{v['name']}-{v['version']}.tgz": v for versions in entries.values()
             for v in versions}
    assert len(found) == 1000
    assert {name: v["digest"] for name, v in found.items()} == uploaded
    assert all(v["urls"] == [f"charts/{name}"] for name, v in found.items())
    # newest first, by SemVer precedence
    assert [v["version"] for v in entries["c042"]] == [f"1.{v}.0" for v in range(9, -1, -1)]
