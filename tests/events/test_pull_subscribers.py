"""The pull webhooks' subscriber list that each worker keeps (events/dispatcher.py) follows
every change at once, whichever worker made it.

A server with two granian workers is pulled on fresh connections until both workers have
kept their list of pull subscribers (none yet); then a pull webhook is created through the
API (on one worker), and every following pull, on either worker, must be delivered. Disabled
again, no further pull may be.
"""

from __future__ import annotations

import httpx

from tests.events.helpers import create_hook
from tests.events.receiver import Receiver
from tests.web.helpers import ADMIN, api, make_namespace, push_image

ROUNDS = 12  # pulls on new connections per check: each worker answers some of them
ACCEPT = {"Accept": "application/vnd.oci.image.manifest.v1+json", "Connection": "close"}


def _pulls(url: str, repo: str) -> None:
    for _ in range(ROUNDS):
        resp = httpx.get(f"{url}/v2/{repo}/manifests/v1", auth=ADMIN, headers=ACCEPT)
        assert resp.status_code == 200, resp.text


def test_a_pull_webhook_applies_to_the_next_pull_on_every_worker(make_registry,  # type: ignore[no-untyped-def]
                                                                 receiver: Receiver) -> None:
    server = make_registry(args=["--workers", "2"])
    ns = make_namespace(server)
    repo = f"{ns}/app"
    push_image(server, repo, "v1")
    _pulls(server.url, repo)  # both workers now keep "no pull subscribers"
    hook = create_hook(server, receiver.url, ["pull"], ns)
    _pulls(server.url, repo)
    got = receiver.wait_for(ROUNDS, event="pull", settle=0.5)
    assert len(got) == ROUNDS and all(r.json()["repository"] == repo for r in got)

    assert api(server, "PATCH", f"/webhooks/{hook['id']}",
               json={"enabled": False}).status_code == 200
    _pulls(server.url, repo)
    assert len(receiver.wait_for(ROUNDS, event="pull", settle=2.0)) == ROUNDS
