"""Quotas and features of the personal edition, as the management API reports them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.server import MoorageServer
from tests.conftest import ADMIN_PASSWORD
from tests.web.helpers import api, error


@pytest.fixture(scope="module")
def personal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    server = MoorageServer(tmp_path_factory.mktemp("personal") / "data",
                           env={"MOORAGE_ADMIN_PASSWORD": ADMIN_PASSWORD,
                                "MOORAGE_EDITION": "personal"}).start()
    yield server
    server.kill()


def test_fourth_namespace_exceeds_the_quota(personal: MoorageServer) -> None:
    for name in ("one", "two", "three"):
        assert api(personal, "POST", "/namespaces", json={"name": name}).status_code == 201
    refused = api(personal, "POST", "/namespaces", json={"name": "four"})
    assert refused.status_code == 403
    code, message = error(refused)
    assert code == "QUOTA_EXCEEDED"
    assert "namespaces" in message and " 3 " in message and "personal" in message
    assert api(personal, "GET", "/namespaces/four").status_code == 404

    info = api(personal, "GET", "/info", auth=None).json()
    assert info["edition"] == "personal"
    assert info["quotas"]["namespaces"] == {"limit": 3, "used": 3}
    assert info["features"]["network_acl"] is False


def test_allowlists_need_the_basic_edition(personal: MoorageServer) -> None:
    refused = api(personal, "POST", "/network-rules", json={"cidr": "127.0.0.1/32"})
    assert refused.status_code == 403
    code, message = error(refused)
    assert code == "EDITION"
    assert "basic edition" in message and "personal" in message
    # Trusted networks (credential-free pull) are in every edition.
    trusted = api(personal, "POST", "/network-rules",
                  json={"cidr": "10.1.0.0/16", "kind": "trusted"})
    assert trusted.status_code == 201
    assert api(personal, "DELETE", f"/network-rules/{trusted.json()['id']}").status_code == 204
