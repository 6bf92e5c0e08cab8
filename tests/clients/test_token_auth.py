"""Real clients over the token flow: skopeo, podman and oras with credentials.

These run against a secured instance: the clients meet the 401 challenge, fetch a bearer
token from /auth/token with the credentials they were given, and retry, as with Docker Hub.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import oras.client
import pytest

from tests.clients.tools import ContainerStore, copy_in, inspect, skopeo, unique_repo
from tests.conftest import ADMIN_PASSWORD
from tests.support.images import busybox_image, layout_manifest
from tests.support.server import MoorageServer

pytestmark = [pytest.mark.clients]
CREDS = f"admin:{ADMIN_PASSWORD}"


def test_skopeo_with_credentials(secure_registry: MoorageServer, tmp_path: Path) -> None:
    digest = busybox_image(tmp_path / "src", "v1")
    repo = unique_repo("skopeo-auth")
    ref = f"docker://{secure_registry.host}/{repo}:v1"

    refused = skopeo("copy", "--quiet", "--dest-tls-verify=false", f"oci:{tmp_path / 'src'}:v1",
                     ref, check=False)
    assert refused.returncode != 0
    assert "authentication required" in refused.stderr or "unauthorized" in refused.stderr

    copy_in(f"oci:{tmp_path / 'src'}:v1", ref, "--dest-creds", CREDS)
    assert inspect(ref, "--creds", CREDS)["Digest"] == digest
    tags = skopeo("list-tags", "--tls-verify=false", "--creds", CREDS,
                  f"docker://{secure_registry.host}/{repo}").json()["Tags"]
    assert tags == ["v1"]

    anonymous = skopeo("inspect", "--tls-verify=false", ref, check=False)
    assert anonymous.returncode != 0, "a private repository must not be readable anonymously"
    wrong = skopeo("inspect", "--tls-verify=false", "--creds", "admin:wrong-password", ref,
                   check=False)
    assert wrong.returncode != 0
    assert "invalid username or password" in wrong.stderr or "unauthorized" in wrong.stderr


def test_podman_login_push_and_pull(secure_registry: MoorageServer, tmp_path: Path,
                                    podman_store: ContainerStore,
                                    podman_store2: ContainerStore) -> None:
    src = tmp_path / "src"
    busybox_image(src, "v1")
    _, manifest = layout_manifest(src, "v1")
    image_id = manifest["config"]["digest"].removeprefix("sha256:")
    repo = unique_repo("podman-auth")
    ref = f"{secure_registry.host}/{repo}:v1"
    authfile = tmp_path / "auth.json"

    podman_store("pull", "--quiet", f"oci:{src}:v1")
    refused = podman_store("push", "--tls-verify=false", "--authfile", str(authfile), image_id,
                           f"docker://{ref}", check=False)
    assert refused.returncode != 0

    podman_store("login", "--tls-verify=false", "--authfile", str(authfile), "-u", "admin",
                 "--password-stdin", secure_registry.host, input=ADMIN_PASSWORD)
    podman_store("push", "--quiet", "--tls-verify=false", "--authfile", str(authfile), image_id,
                 f"docker://{ref}")
    podman_store2("pull", "--quiet", "--tls-verify=false", "--authfile", str(authfile), ref)
    images = podman_store2("images", "--format", "{{.ID}}", "--no-trunc").text
    assert image_id in images


def test_oras_with_credentials(secure_registry: MoorageServer, tmp_path: Path) -> None:
    payload = tmp_path / "notes.txt"
    payload.write_text("artifact over the token flow\n")
    repo = unique_repo("oras-auth")
    target = f"{secure_registry.host}/{repo}:notes"

    client = oras.client.OrasClient(hostname=secure_registry.host, insecure=True)
    client.login(username="admin", password=ADMIN_PASSWORD, hostname=secure_registry.host,
                 tls_verify=False, config_path=str(tmp_path / "oras-config.json"))
    resp = client.push(files=[str(payload)], target=target, disable_path_validation=True)
    assert resp.status_code in (200, 201), resp.text

    out = tmp_path / "out"
    pulled = client.pull(target=target, outdir=str(out))
    assert [Path(p).read_text() for p in pulled] == [payload.read_text()]

    stranger = oras.client.OrasClient(hostname=secure_registry.host, insecure=True)
    with pytest.raises(Exception):
        stranger.pull(target=target, outdir=str(tmp_path / "nope"))



def _maintainer(server: MoorageServer, namespace: str) -> tuple[str, str]:
    """A fresh user holding the delete right (maintainer) in `namespace`."""
    name = "maint" + uuid.uuid4().hex[:10]
    password = "password-" + uuid.uuid4().hex
    admin = ("admin", ADMIN_PASSWORD)
    resp = httpx.post(f"{server.url}/api/v1/namespaces", auth=admin, json={"name": namespace})
    assert resp.status_code == 201, resp.text
    resp = httpx.post(f"{server.url}/api/v1/users", auth=admin,
                      json={"username": name, "password": password})
    assert resp.status_code == 201, resp.text
    resp = httpx.put(f"{server.url}/api/v1/namespaces/{namespace}/members/{name}", auth=admin,
                     json={"role": "maintainer"})
    assert resp.status_code in (200, 204), resp.text
    return name, password


def test_oras_deletes_a_tag_as_a_maintainer(secure_registry: MoorageServer,
                                            tmp_path: Path) -> None:
    """oras-py's delete: HEAD for the digest, then DELETE, on the token it already holds.
    After a push that token asked for pull,push (and carries delete, which the maintainer
    holds); after a pull it asked for pull only, and the 403 insufficient_scope challenge
    makes oras-py fetch a token for `repository:NAME:delete`."""
    payload = tmp_path / "notes.txt"
    namespace = "orasdel" + uuid.uuid4().hex[:10]
    repo = f"{namespace}/notes"
    user, password = _maintainer(secure_registry, namespace)

    pusher = oras.client.OrasClient(hostname=secure_registry.host, insecure=True)
    pusher.login(username=user, password=password, hostname=secure_registry.host,
                 tls_verify=False, config_path=str(tmp_path / "pusher.json"))
    for tag in ("one", "two"):  # two manifests: oras-py deletes by digest
        payload.write_text(f"to be deleted: {tag}\n")
        resp = pusher.push(files=[str(payload)], target=f"{secure_registry.host}/{repo}:{tag}",
                           disable_path_validation=True)
        assert resp.status_code in (200, 201), resp.text
    assert pusher.delete_tag(f"{secure_registry.host}/{repo}", "one")

    puller = oras.client.OrasClient(hostname=secure_registry.host, insecure=True)
    puller.login(username=user, password=password, hostname=secure_registry.host,
                 tls_verify=False, config_path=str(tmp_path / "puller.json"))
    puller.pull(target=f"{secure_registry.host}/{repo}:two", outdir=str(tmp_path / "out"))
    assert puller.delete_tag(f"{secure_registry.host}/{repo}", "two")

    tags = httpx.get(f"{secure_registry.url}/v2/{repo}/tags/list",
                     auth=("admin", ADMIN_PASSWORD))
    assert tags.status_code in (200, 404)
    assert tags.status_code == 404 or tags.json()["tags"] == []


def test_skopeo_deletes_as_a_maintainer(secure_registry: MoorageServer, tmp_path: Path) -> None:
    """skopeo asks for `pull,delete` itself; with a maintainer's credentials it deletes."""
    busybox_image(tmp_path / "src", "v1")
    namespace = "skopeodel" + uuid.uuid4().hex[:10]
    ref = f"docker://{secure_registry.host}/{namespace}/app:v1"
    user, password = _maintainer(secure_registry, namespace)
    copy_in(f"oci:{tmp_path / 'src'}:v1", ref, "--dest-creds", f"{user}:{password}")
    skopeo("delete", "--tls-verify=false", "--creds", f"{user}:{password}", ref)
    gone = skopeo("inspect", "--tls-verify=false", "--creds", CREDS, ref, check=False)
    assert gone.returncode != 0
