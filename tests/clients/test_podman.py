"""podman push and pull: the everyday workflow of anyone using the registry from a laptop."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients.tools import (
    ContainerStore,
    Registry,
    get_manifest,
    inspect_raw,
    sha256_digest,
    unique_repo,
)
from tests.support.images import busybox_image, layout_manifest

pytestmark = [pytest.mark.clients]


def test_podman_push_then_pull_into_fresh_store(registry: Registry, tmp_path: Path,
                                                podman_store: ContainerStore,
                                                podman_store2: ContainerStore) -> None:
    """An image podman pushes comes back into an empty store with the same ID and digest."""
    src = tmp_path / "src"
    busybox_image(src, "v1")
    _, manifest = layout_manifest(src, "v1")
    image_id = manifest["config"]["digest"].removeprefix("sha256:")
    repo = unique_repo("podman")
    ref = f"{registry.host}/{repo}:v1"

    loaded = podman_store("pull", "--quiet", f"oci:{src}:v1")
    assert loaded.text.strip().splitlines()[-1] == image_id, loaded.text

    digest_file = tmp_path / "pushed.digest"
    podman_store("push", "--quiet", "--tls-verify=false", "--digestfile", str(digest_file),
                 image_id, f"docker://{ref}")
    pushed = digest_file.read_text().strip()
    assert pushed.startswith("sha256:")
    assert sha256_digest(inspect_raw(f"docker://{ref}")) == pushed
    resp = get_manifest(registry, repo, "v1")
    assert resp.status_code == 200 and resp.headers["Docker-Content-Digest"] == pushed

    podman_store2("pull", "--quiet", "--tls-verify=false", ref)
    fmt = "{{.Id}} {{.Digest}}"
    got_id, got_digest = podman_store2("image", "inspect", "--format", fmt, ref).text.split()
    assert got_id == image_id, "image ID (config digest) changed on the way through"
    assert got_digest == pushed
    repo_digests = podman_store2("image", "inspect", "--format", "{{json .RepoDigests}}",
                                 ref).text
    assert f"{registry.host}/{repo}@{pushed}" in repo_digests

    by_digest = f"{registry.host}/{repo}@{pushed}"
    podman_store2("rmi", "--force", ref)
    podman_store2("pull", "--quiet", "--tls-verify=false", by_digest)
    assert podman_store2("image", "inspect", "--format", "{{.Id}}",
                         by_digest).text.strip() == image_id
