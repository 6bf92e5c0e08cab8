"""A retention run carried out in-process on a real instance (SQLite, the local disk)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

from moorage.app import build_instance
from moorage.policy.retention import run_rule
from moorage.settings import load_settings

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


def test_a_delete_refused_at_run_time_is_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    """The plan was made before an immutability rule existed (is_immutable says no); the
    registry refuses the delete when it comes, and the run records it instead of failing."""
    instance = build_instance(load_settings(environ={}, overrides={"data_dir": tmp_path}))
    registry, repo = instance.registry, "team/app"
    digests = []
    for tag in ("v1", "latest"):
        config = json.dumps({"tag": tag}).encode()
        asyncio.run(registry.push_blob(repo, _digest(config), _body(config), len(config)))
        manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [],
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                          "digest": _digest(config), "size": len(config)}}).encode()
        digests.append(registry.put_manifest(repo, tag, manifest, OCI_MANIFEST).digest)
    namespace = instance.access_store.namespace("team")
    assert namespace is not None
    instance.policies.add_immutability(namespace.id, "**", "v*", None)
    rule_id = instance.policies.add_retention(
        namespace.id, repository_pattern="**", tag_pattern="*", keep_last=None,
        older_than_seconds=None, untagged=False, always_keep=None, schedule=None, enabled=True)
    rule = instance.policies.retention_rule(rule_id)
    assert rule is not None
    lines: list[str] = []

    result = run_rule(rule, instance.policies, registry, lambda _repo, _tag: False,
                      dry_run=False, report=lines.append)

    [plan] = result["repositories"]  # type: ignore[misc]
    assert list(plan["refused"]) == [digests[0]], plan
    assert "immutable tag v1" in plan["refused"][digests[0]]
    # The result lists what went.
    assert (plan["delete_tags"], plan["delete_manifests"]) == (["latest"], [digests[1]])
    assert result["deleted_tags"] == 1 and result["deleted_manifests"] == 1, result
    assert registry.resolve(repo, "v1") == digests[0]
    assert registry.db.tag_digest(repo, "latest") is None
    assert any(f"kept {digests[0]}" in line for line in lines), lines
