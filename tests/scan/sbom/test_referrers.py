"""SBOMs stored as OCI 1.1 referrers of their image, through the registry core in-process,
and found again through a real Moorage server the way clients find them: the referrers API
(what `oras discover` calls) and an ORAS pull (oras-py).

The image is the fixture image (../shared/fixtures/sbom/) pushed with skopeo; its SBOMs are
made from the inventory the real Syft took of it. The SBOM is attached by a Registry built
in the test process on the server's own data folder, as a second worker process would."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from moorage.app import build_instance
from moorage.oci.errors import RegistryError
from moorage.registry.service import Registry
from moorage.scan.engines.syft import merge_inventories
from moorage.scan.inventory import inventory_of
from moorage.scan.model import Inventory
from moorage.scan.sbom import (ImageRef, attach_sbom, cyclonedx_document, spdx_document,
                                stored_sbom)
from moorage.settings import load_settings
from tests.clients.tools import copy_in, require_tool
from tests.scan.sbom.conftest import SampleImage
from tests.support.server import MoorageServer

oras_client = pytest.importorskip("oras.client")

pytestmark = [pytest.mark.clients, pytest.mark.slow]

CYCLONEDX = "application/vnd.cyclonedx+json"
SPDX = "application/spdx+json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    from tests.conftest import OPEN

    started = MoorageServer(tmp_path_factory.mktemp("sbom-referrers") / "data",
                            env=OPEN).start()
    yield started
    started.kill()


@pytest.fixture
def repo() -> str:
    """A repository of the test's own on the module's server."""
    return f"sbom/sample-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def pushed(server: MoorageServer, sample_image: SampleImage, repo: str) -> str:
    """The fixture image pushed with skopeo; its manifest digest."""
    require_tool("skopeo")
    index = json.loads((sample_image.layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    copy_in(f"oci:{sample_image.layout}:sample", f"docker://{server.host}/{repo}:v1",
            "--preserve-digests")
    return digest


@pytest.fixture(scope="module")
def registry(server: MoorageServer) -> Registry:
    """The registry core of the server's data folder, in this process."""
    settings = load_settings(environ={}, overrides={"data_dir": server.data_dir,
                                                    "auth": "off"})
    return build_instance(settings).registry


def referrers(server: MoorageServer, repo: str, digest: str,
              artifact_type: str | None = None) -> httpx.Response:
    params = {"artifactType": artifact_type} if artifact_type else None
    return httpx.get(f"{server.url}/v2/{repo}/referrers/{digest}", params=params,
                     timeout=120)


def test_both_sboms_are_referrers_that_clients_find_and_pull(
        server: MoorageServer, repo: str, pushed: str, registry: Registry,
        syft_of_layout: Inventory, tmp_path: Path) -> None:
    assert syft_of_layout.problems == () and len(syft_of_layout.packages) == 91
    image = ImageRef(repo, pushed, "linux/amd64", host=server.host)
    documents = {"cyclonedx": cyclonedx_document(syft_of_layout, image),
                 "spdx": spdx_document(syft_of_layout, image)}
    assert stored_sbom(registry, repo, pushed, "spdx") is None
    attached = {fmt: asyncio.run(attach_sbom(registry, repo, pushed, doc,
                                             fmt))  # type: ignore[arg-type]
                for fmt, doc in documents.items()}

    # discover: both artifact types, each with its annotations
    resp = referrers(server, repo, pushed)
    assert resp.status_code == 200, resp.text
    found = {m["artifactType"]: m for m in resp.json()["manifests"]}
    assert set(found) == {CYCLONEDX, SPDX}
    assert found[CYCLONEDX]["digest"] == attached["cyclonedx"]
    assert found[SPDX]["digest"] == attached["spdx"]
    for descriptor in found.values():
        annotations = descriptor["annotations"]
        assert annotations["io.moorage.sbom.generator"].startswith("moorage ")
        assert annotations["org.opencontainers.image.created"].endswith("Z")

    # the filter
    for artifact_type, fmt in ((CYCLONEDX, "cyclonedx"), (SPDX, "spdx")):
        resp = referrers(server, repo, pushed, artifact_type)
        assert resp.status_code == 200, resp.text
        assert [m["digest"] for m in resp.json()["manifests"]] == [attached[fmt]]
        assert resp.headers.get("OCI-Filters-Applied") == "artifactType"

    # the manifest as a client reads it
    resp = httpx.get(f"{server.url}/v2/{repo}/manifests/{attached['spdx']}", timeout=120,
                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    manifest = resp.json()
    assert manifest["artifactType"] == SPDX
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert manifest["subject"]["digest"] == pushed
    [layer] = manifest["layers"]
    assert layer["mediaType"] == SPDX and layer["size"] == len(documents["spdx"])

    # pull: the document's bytes, under the layer's title
    client = oras_client.OrasClient(hostname=server.host, insecure=True)
    for fmt, name in (("cyclonedx", "sbom.cdx.json"), ("spdx", "sbom.spdx.json")):
        outdir = tmp_path / "pulled" / fmt
        files = client.pull(target=f"{server.host}/{repo}@{attached[fmt]}",
                            outdir=str(outdir))
        assert [Path(f).name for f in files] == [name]
        assert Path(files[0]).read_bytes() == documents[fmt]

    # read back in-process, as the API and `moorage sbom` will
    for fmt, document in documents.items():
        assert stored_sbom(registry, repo, pushed, fmt) == document  # type: ignore[arg-type]

    # the pulled CycloneDX names the image it describes and Syft's packages
    cdx = json.loads(documents["cyclonedx"])
    assert cdx["metadata"]["component"]["version"] == pushed
    assert len([c for c in cdx["components"] if c["type"] == "library"]) == 91


def test_attaching_the_same_document_again_changes_nothing(
        server: MoorageServer, repo: str, pushed: str, registry: Registry,
        syft_of_layout: Inventory) -> None:
    document = cyclonedx_document(syft_of_layout, ImageRef(repo, pushed))
    first = asyncio.run(attach_sbom(registry, repo, pushed, document, "cyclonedx"))
    again = asyncio.run(attach_sbom(registry, repo, pushed, document, "cyclonedx"))
    assert again == first
    listed = referrers(server, repo, pushed).json()["manifests"]
    assert [m["digest"] for m in listed] == [first]
    # a new document (a later scan) is one more referrer, and the one read back
    newer = cyclonedx_document(syft_of_layout, ImageRef(repo, pushed))
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=5)
    second = asyncio.run(attach_sbom(registry, repo, pushed, newer, "cyclonedx",
                                     created=later))
    assert second != first
    assert len(referrers(server, repo, pushed, CYCLONEDX).json()["manifests"]) == 2
    assert stored_sbom(registry, repo, pushed, "cyclonedx") == newer
    assert stored_sbom(registry, repo, pushed, "spdx") is None


def test_bad_attachments_are_refused_clearly(repo: str, pushed: str,
                                            registry: Registry) -> None:
    with pytest.raises(RegistryError) as refused:
        asyncio.run(attach_sbom(registry, repo, "sha256:" + "0" * 64, b"{}", "cyclonedx"))
    assert refused.value.code == "MANIFEST_UNKNOWN"
    with pytest.raises(RegistryError) as refused:
        asyncio.run(attach_sbom(registry, "sbom/other", pushed, b"{}", "spdx"))
    assert refused.value.code == "MANIFEST_UNKNOWN"
    with pytest.raises(ValueError, match="unknown SBOM format"):
        asyncio.run(attach_sbom(registry, repo, pushed, b"{}", "swid"))  # type: ignore[arg-type]


def test_a_scans_sbom_lists_what_both_engines_saw(
        server: MoorageServer, repo: str, pushed: str, registry: Registry,
        syft_of_layout: Inventory, tmp_path: Path) -> None:
    """The whole path a scan will take: Moorage's own inventory of the pushed image (read
    from the blob store), merged with Syft's of the same image, as a CycloneDX SBOM stored
    beside it. Both engines see all 91 packages of the fixture image, so each is listed
    once, found by both."""
    manifest = registry.get_manifest(repo, pushed, [], pull=False).content
    ours = inventory_of(registry.store, manifest)
    # umoci 0.4's `insert` writes its layer's tar without the end: no padding after the
    # last member and no end-of-archive blocks (GNU tar: "Unexpected EOF in archive"). The
    # built-in inventory says so; Syft reads on silently. Every member is whole, so
    # nothing is missing.
    [layer] = ours.layers
    tar = gzip.decompress(b"".join(registry.store.read(layer)))
    assert len(tar) % 512 != 0
    assert len(ours.problems) == 1 and "is corrupt or truncated" in ours.problems[0]
    merged = merge_inventories(ours, syft_of_layout)
    assert len(merged.packages) == len(ours.packages) == 91
    assert {p.engines for p in merged.packages} == {("moorage", "syft")}
    assert merged.distro == ours.distro and merged.layers == ours.layers
    assert merged.problems == ours.problems

    document = cyclonedx_document(merged, ImageRef(repo, pushed, "linux/amd64"))
    asyncio.run(attach_sbom(registry, repo, pushed, document, "cyclonedx"))
    assert stored_sbom(registry, repo, pushed, "cyclonedx") == document
    components = [c for c in json.loads(document)["components"] if c["type"] == "library"]
    assert len(components) == 91
    for component in components:
        props = {p["name"]: p["value"] for p in component["properties"]}
        assert props["moorage:package:foundBy"] == "moorage,syft"
        assert props["moorage:location:0:layerID"] == ours.layers[0]
