"""Creating webhooks and images over the real API, for the webhook tests."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.support.server import MoorageServer
from tests.web.helpers import ADMIN, api


def create_hook(server: MoorageServer, url: str, events: list[str],
                namespace: str | None = None, auth: tuple[str, str] = ADMIN,
                **fields: Any) -> dict[str, Any]:
    resp = api(server, "POST", "/webhooks", auth=auth,
               json={"namespace": namespace, "url": url, "events": events, **fields})
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


def deliveries(server: MoorageServer, hook_id: int) -> list[dict[str, Any]]:
    resp = api(server, "GET", f"/webhooks/{hook_id}/deliveries")
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def wait_deliveries(server: MoorageServer, hook_id: int, count: int, status: str = "delivered",
                    timeout: float = 120.0) -> list[dict[str, Any]]:
    """Poll the history until `count` deliveries have `status` (the timeout bounds a hang)."""
    deadline = time.monotonic() + timeout
    while True:
        found = deliveries(server, hook_id)
        if sum(d["status"] == status for d in found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not {count} {status} deliveries in {timeout}s: {found}")
        time.sleep(0.1)


def delete_manifest(server: MoorageServer, repo: str, reference: str,
                    auth: tuple[str, str] = ADMIN) -> None:
    resp = httpx.delete(f"{server.url}/v2/{repo}/manifests/{reference}", auth=auth)
    assert resp.status_code == 202, resp.text


def get_manifest(server: MoorageServer, repo: str, reference: str,
                 auth: tuple[str, str] = ADMIN, head: bool = False) -> None:
    resp = httpx.request("HEAD" if head else "GET",
                         f"{server.url}/v2/{repo}/manifests/{reference}", auth=auth,
                         headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert resp.status_code == 200, resp.text
