"""The unsigned rule end to end with the real signing service: skopeo
and podman pulls of an unsigned image are refused with "no signature from a trusted key",
pass once it is signed with a trusted key (signed on the server with a key it holds), and
are refused again when that key is revoked; the signature tag stays readable throughout."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.blocking.helpers import (ADMIN, CLEAN, api, image, manifest, new_namespace,
                                    podman_pull, push, set_policy, skopeo_pull, token,
                                    wait_report)
from tests.blocking.test_pulls import podman  # noqa: F401 - the fixture
from tests.clients.tools import ContainerStore, require_tool
from tests.conftest import ROOMY, SECURED
from tests.scan.service.helpers import OSV_PYPA, import_advisories, moorage
from tests.support.server import MoorageServer

pytestmark = [pytest.mark.clients, pytest.mark.slow]


@pytest.fixture(scope="module")
def signing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    require_tool("skopeo")
    started = MoorageServer(tmp_path_factory.mktemp("blocking-signing") / "data",
                            extra_args=["--workers", "2"],
                            env={**SECURED, **ROOMY, "MOORAGE_SCAN_ON_PUSH": "true",
                                 "MOORAGE_ENCRYPTION": "true"}).start()
    import_advisories(started, OSV_PYPA / "jinja2")
    yield started
    started.kill()


def test_unsigned_images_are_refused_until_signed_by_a_trusted_key(
        signing_server: MoorageServer, tmp_path: Path,
        podman: ContainerStore) -> None:  # noqa: F811
    server = signing_server
    env = {"MOORAGE_URL": server.url, "MOORAGE_USERNAME": ADMIN[0],
           "MOORAGE_PASSWORD": ADMIN[1], "HOME": os.fspath(tmp_path)}
    with api(server) as client:
        ns = new_namespace(client)
        repo = f"{ns}/app"
        digest = push(server, image(tmp_path, "clean", CLEAN), f"{repo}:1")
        wait_report(client, repo, "1")
        policy = set_policy(client, ns, block_unsigned=True, block_unscanned=True)
        assert policy["signing_available"] is True
    refused = skopeo_pull(server, f"{repo}:1", tmp_path / "a")
    assert refused.returncode != 0
    assert "no signature from a trusted key" in refused.stderr, refused.stderr
    refused = podman_pull(podman, server, f"{repo}:1")
    assert refused.returncode != 0 and "no signature from a trusted key" in refused.stderr

    made = moorage("signing", "key", "generate", "release", "--namespace", ns, "--server",
                   env=env)
    assert made.returncode == 0, made.stderr
    signed = moorage("sign", f"{repo}:1", "--key", "release", "--server", env=env)
    assert signed.returncode == 0, signed.stderr
    pulled = skopeo_pull(server, f"{repo}:1", tmp_path / "b")
    assert pulled.returncode == 0, pulled.stderr
    assert podman_pull(podman, server, f"{repo}:1").returncode == 0

    revoked = moorage("signing", "key", "revoke", "release", "--namespace", ns, env=env)
    assert revoked.returncode == 0, revoked.stderr
    bearer = token(server, repo)
    assert manifest(server, repo, "1", bearer).status_code == 403
    # the signature itself stays readable while its image is refused
    sig = manifest(server, repo, f"sha256-{digest.split(':')[1]}.sig", bearer)
    assert sig.status_code == 200, sig.text
