"""The CVE allowlist applies wherever a report is read, at read time: the report marks an
accepted finding with the reason and leaves it out of the summary, and the tag listing of the
API and `moorage repo tags` count the same; an expired entry accepts nothing any more (no
rescan in between). The clock of the read path is injectable: the same stored report read
in this process with a clock past an entry's expiry counts the finding again."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from moorage.app import build_instance
from moorage.settings import load_settings
from tests.scan.integrate.conftest import cli
from tests.scan.service.helpers import api, layout, push, python_layer, report, wait_report
from tests.support.server import MoorageServer

pytestmark = [pytest.mark.clients, pytest.mark.slow]
LEVELS = ("critical", "high", "medium", "low", "unknown")


def _summary(findings: list[dict[str, Any]]) -> dict[str, int]:
    """Counted here: the findings not accepted, by level."""
    counts = dict.fromkeys(LEVELS, 0)
    for f in findings:
        if f["accepted"] is None:
            counts[f["severity"]["level"]] += 1
    return counts


def _listed(client: httpx.Client, server: MoorageServer, repo: str) -> tuple[dict, str]:
    """The tag's counts from the API's listing and the CLI's table row."""
    [tag] = client.get(f"/repositories/{repo}/tags").json()
    done = cli(server, "repo", "tags", repo)
    assert done.returncode == 0, done.stderr
    [row] = [line for line in done.stdout.splitlines() if line.startswith("1 ")]
    return tag["vulnerabilities"], row


def _agree(client: httpx.Client, server: MoorageServer, repo: str,
           shown: dict[str, Any]) -> None:
    counts = _summary(shown["findings"])
    assert shown["summary"] == counts
    listed, row = _listed(client, server, repo)
    assert {k: listed[k] for k in LEVELS} == counts and listed["status"] == "done"
    assert " ".join(f"{k[0].upper()}:{counts[k]}" for k in LEVELS) in row


def test_accepted_findings_leave_every_count_and_come_back_when_expired(
        server: MoorageServer, tmp_path: Path) -> None:
    ns = f"al{uuid.uuid4().hex[:8]}"
    repo = f"{ns}/app"
    with api(server) as client:
        assert client.post("/namespaces", json={"name": ns}).status_code == 201
        push(server, layout(tmp_path / "img", [python_layer(("Jinja2", "2.10"))]), f"{repo}:1")
        before = wait_report(client, repo, "1")
        assert before["status"] == "done" and before["findings"]
        assert all(f["accepted"] is None for f in before["findings"])
        _agree(client, server, repo, before)
        # accept one finding by a CVE alias (its id is the PyPA or GHSA one)
        target = next(f for f in before["findings"]
                      if any(a.startswith("CVE-") for a in [f["id"], *f["aliases"]]))
        cve = next(a for a in [target["id"], *target["aliases"]] if a.startswith("CVE-"))
        hit = [f for f in before["findings"] if cve in [f["id"], *f["aliases"]]]
        reason = "the sandbox is not used by this service"
        added = client.post(f"/namespaces/{ns}/cve-allowlist",
                            json={"id": cve.lower(), "reason": reason})
        assert added.status_code == 201, added.text

        accepted = report(client, repo, "1")
        marked = [f for f in accepted["findings"] if f["accepted"] is not None]
        assert {(f["id"], f["package"]["name"]) for f in marked} == \
            {(f["id"], f["package"]["name"]) for f in hit}
        assert all(f["accepted"] == reason for f in marked)
        assert sum(accepted["summary"].values()) == sum(before["summary"].values()) - len(hit)
        _agree(client, server, repo, accepted)

        # replaced by an entry that expired a minute ago: counted again, no rescan
        past = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
        assert client.post(f"/namespaces/{ns}/cve-allowlist",
                           json={"id": cve, "reason": reason, "expires_at": past}
                           ).status_code == 200
        expired = report(client, repo, "1")
        assert all(f["accepted"] is None for f in expired["findings"])
        assert expired["summary"] == before["summary"]
        _agree(client, server, repo, expired)

        # until tomorrow: accepted now; read with a clock two days ahead: counted
        tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
        assert client.post(f"/namespaces/{ns}/cve-allowlist",
                           json={"id": cve, "reason": reason, "expires_at": tomorrow}
                           ).status_code == 200
        _agree(client, server, repo, report(client, repo, "1"))
        digest = before["digest"]

    settings = load_settings(environ={}, overrides={"data_dir": server.data_dir})
    scans = build_instance(settings).scans
    assert scans is not None
    row = scans.store.get(digest)
    assert row is not None
    now_counts = scans.shown(repo, row)[1]
    assert scans.tag_summaries([(digest, [])], repo)[digest] == {"status": "done",
                                                                 **now_counts}
    scans.clock = lambda: datetime.now(timezone.utc) + timedelta(days=2)
    later_findings, later = scans.shown(repo, row)
    assert later == before["summary"] and all(f.accepted is None for f in later_findings)
    assert scans.tag_summaries([(digest, [])], repo)[digest] == {"status": "done", **later}
    assert sum(later.values()) == sum(now_counts.values()) + len(hit)
    assert json.dumps(later)  # plain counts
