"""Subscriptions against a real upstream (Distribution with htpasswd and TLS): a tag pushed
upstream after the subscription was made comes in on the next run with its signature tag
and SBOM referrer, digests unchanged; the tag filters include and exclude the right tags; a
moved tag is copied again, an unchanged one is not; keep-newest-N deletes only what the
subscription brought in."""

from __future__ import annotations

import time

from tests.remote.conftest import Distribution
from tests.replication.rules.conftest import BASIC_PASSWORD
from tests.replication.rules.helpers import ADMIN, api, client_for, manifest_digest, run
from tests.replication.subscriptions.helpers import (create, local_tags, log_of,
                                                     push_signed_upstream, push_upstream,
                                                     run_subscription, subscription)
from tests.support.certs import Authority
from tests.support.schedules import make_due
from tests.support.server import MoorageServer

VERSIONS = ["1.0.0", "1.2.0", "v1.4.1", "2.0.0", "2.0.0-rc.1", "latest", "1.4", "nightly-7"]


def test_new_tags_come_in_with_signatures_and_sboms_moved_ones_again(
        primary: MoorageServer, distribution: Distribution, authority: Authority) -> None:
    pushed = push_upstream(distribution, authority, VERSIONS, seed="first")
    found = create(primary, subscription(distribution, authority, "semver-1",
                                         "mirror/app", filter_kind="semver",
                                         filter=">=1.0 <2"))
    assert found["has_password"] and "password" not in found

    first = run_subscription(primary, "semver-1")
    assert first["status"] == "succeeded" and first["copied"] == 3, first
    here = local_tags(primary, "mirror/app")
    assert set(here) == {"1.0.0", "1.2.0", "v1.4.1"}, here  # not 2.x, the rc, 1.4, latest
    assert all(here[tag] == pushed[tag] for tag in here)
    log = log_of(primary, first)
    assert "upstream/app" in log and BASIC_PASSWORD not in log

    # after the subscription was made: a signed multi-arch 1.5.0 with an SBOM
    signed = push_signed_upstream(distribution, authority, "1.5.0")
    second = run_subscription(primary, "semver-1")
    assert second["status"] == "succeeded" and second["copied"] == 1, second
    assert "3 unchanged" in log_of(primary, second)
    here = local_tags(primary, "mirror/app")
    assert here["1.5.0"] == signed["index"]
    assert here[signed["sig_tag"]] == signed["sig"]

    async def referrers() -> list[str]:
        async with client_for(primary, *ADMIN) as client:
            for child in signed["children"]:
                assert await manifest_digest(client, "mirror/app", child) == child
            return [d.digest for d in await client.referrers("mirror/app", signed["index"])]
    assert signed["sbom"] in run(referrers())

    # nothing new: no tag copied, no byte sent
    third = run_subscription(primary, "semver-1")
    assert (third["status"], third["copied"], third["bytes"]) == ("succeeded", 0, 0), third

    # 1.2.0 moves upstream: copied again, the others are not
    moved = push_upstream(distribution, authority, ["1.2.0"], seed="moved")
    fourth = run_subscription(primary, "semver-1")
    assert fourth["status"] == "succeeded" and fourth["copied"] == 1, fourth
    assert local_tags(primary, "mirror/app")["1.2.0"] == moved["1.2.0"] != pushed["1.2.0"]
    assert "(moved)" in log_of(primary, fourth)

    # audited, and the result announced
    entries = api(primary, "GET", "/audit?action=subscription*").json()["entries"]
    actions = {e["action"] for e in entries}
    assert {"subscription.create", "subscription.run", "subscription.succeeded"} <= actions
    assert BASIC_PASSWORD not in str(entries) and BASIC_PASSWORD not in primary.log()


def test_glob_and_regex_filters(primary: MoorageServer, distribution: Distribution,
                                authority: Authority) -> None:
    push_upstream(distribution, authority, VERSIONS, seed="filters")
    create(primary, subscription(distribution, authority, "glob-1", "mirror/glob",
                                 filter_kind="glob", filter="1.*"))
    create(primary, subscription(distribution, authority, "regex-1", "mirror/regex",
                                 filter_kind="regex", filter=r"v?\d+\.\d+\.\d+"))
    for name in ("glob-1", "regex-1"):
        assert run_subscription(primary, name)["status"] == "succeeded"
    assert set(local_tags(primary, "mirror/glob")) >= {"1.0.0", "1.2.0", "1.4"}
    assert not set(local_tags(primary, "mirror/glob")) & {"v1.4.1", "2.0.0", "latest",
                                                           "nightly-7", "2.0.0-rc.1"}
    regex = {t for t in local_tags(primary, "mirror/regex") if not t.startswith("sha256-")}
    assert {"1.0.0", "1.2.0", "v1.4.1", "2.0.0"} <= regex
    assert not regex & {"1.4", "latest", "nightly-7", "2.0.0-rc.1"}


def test_keep_newest_deletes_only_what_it_brought(
        primary: MoorageServer, distribution: Distribution, authority: Authority) -> None:
    name = "upstream/keep"
    push_upstream(distribution, authority, ["3.0.0", "3.1.0", "3.2.0"], seed="keep",
                  name=name)
    body = subscription(distribution, authority, "keep-2", "mirror/keep",
                        filter_kind="semver", filter="^3", keep_newest=2, upstream=name)
    create(primary, body)
    assert run_subscription(primary, "keep-2")["copied"] == 2
    assert set(local_tags(primary, "mirror/keep")) == {"3.1.0", "3.2.0"}

    # a user's own tag, and a user's push over a tag the subscription brought
    async def user_pushes() -> None:
        from tests.replication.rules.helpers import push_image
        async with client_for(primary, *ADMIN) as client:
            await push_image(client, "mirror/keep", "amd64", b"mine" * 10, "mine")
            await push_image(client, "mirror/keep", "amd64", b"over" * 10, "3.1.0")
    run(user_pushes())
    user_tagged = local_tags(primary, "mirror/keep")["3.1.0"]

    push_upstream(distribution, authority, ["3.3.0", "3.4.0"], seed="keep", name=name)
    execution = run_subscription(primary, "keep-2")
    assert execution["status"] == "succeeded", execution
    here = local_tags(primary, "mirror/keep")
    # 3.3.0 and 3.4.0 are the newest two; 3.2.0 (brought in) is deleted; 3.1.0 was pushed
    # over by a user and `mine` is a user's: both stay
    assert set(here) == {"3.3.0", "3.4.0", "3.1.0", "mine"}, here
    assert here["3.1.0"] == user_tagged
    assert "3.2.0 deleted" in log_of(primary, execution)


def test_a_schedule_runs_it(primary: MoorageServer, distribution: Distribution,
                            authority: Authority) -> None:
    name = "upstream/scheduled"
    pushed = push_upstream(distribution, authority, ["9.0.0"], seed="cron", name=name)
    made = create(primary, subscription(distribution, authority, "every-minute",
                                        "mirror/scheduled", upstream=name, cron="* * * * *"))
    make_due(primary, "subscription", made["id"])  # not a minute's wait for the clock
    deadline = time.monotonic() + 300  # bounds a hang
    while True:
        found = api(primary, "GET", "/subscriptions/every-minute/executions").json()
        done = [e for e in found if e["status"] not in ("pending", "running")]
        if done:
            break
        assert time.monotonic() < deadline, found
        time.sleep(0.2)
    assert done[0]["trigger"] == "schedule" and done[0]["status"] == "succeeded", done
    assert local_tags(primary, "mirror/scheduled") == pushed
    # and it can be disabled (its schedule then enqueues nothing)
    changed = api(primary, "PATCH", "/subscriptions/every-minute", json={"enabled": False})
    assert changed.status_code == 200 and changed.json()["enabled"] is False
