"""Encryption at rest, end to end: what is stored is not the layer, what is served is."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.lifecycle.helpers import make_image, pull, push
from tests.support.scaleout import ScaleOut
from tests.support.server import MoorageServer

CANARY = b"MOORAGE-PLAINTEXT-CANARY-" * 2000


def _check_served(server: MoorageServer, repo: str) -> str:
    layer = CANARY + os.urandom(100_000)
    image = make_image([layer], "encrypted")
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert push(client, repo, "v1", image).status_code == 201
        assert pull(client, repo, "v1").blobs == image.blobs
        layer_digest = next(d for d, b in image.blobs.items() if b == layer)
        part = client.get(f"/v2/{repo}/blobs/{layer_digest}", headers={"Range": "bytes=70000-70999"})
        assert part.status_code == 206 and part.content == layer[70000:71000]
        tail = client.get(f"/v2/{repo}/blobs/{layer_digest}", headers={"Range": "bytes=-5"})
        assert tail.content == layer[-5:]
    return layer_digest


def test_embedded_blobs_are_encrypted_on_disk(make_registry) -> None:  # type: ignore[no-untyped-def]
    server = make_registry(env={"MOORAGE_ENCRYPTION": "true", "MOORAGE_AUTH": "off"})
    _check_served(server, "team/secret")
    stored = list((Path(server.data_dir) / "blobs").rglob("*"))
    assert stored, "blobs exist on disk"
    for path in stored:
        if path.is_file():
            assert b"PLAINTEXT-CANARY" not in path.read_bytes(), f"{path} holds plaintext"
    status = subprocess.run([sys.executable, "-m", "moorage", "keys", "status", "--json",
                             "--data-dir", str(server.data_dir)], capture_output=True, text=True,
                            env={**os.environ, "MOORAGE_ENCRYPTION": "true"}, timeout=60)
    assert status.returncode == 0, status.stderr
    keys = json.loads(status.stdout)
    assert keys["plaintext_blobs"] == 0 and sum(k["blobs"] for k in keys["keys"]) >= 2

    rotated = subprocess.run([sys.executable, "-m", "moorage", "keys", "rotate", "--json",
                              "--data-dir", str(server.data_dir)], capture_output=True,
                             text=True, env={**os.environ, "MOORAGE_ENCRYPTION": "true"},
                             timeout=60)
    assert rotated.returncode == 0, rotated.stderr
    rewrapped = subprocess.run([sys.executable, "-m", "moorage", "keys", "rewrap", "--json",
                                "--data-dir", str(server.data_dir)], capture_output=True,
                               text=True, env={**os.environ, "MOORAGE_ENCRYPTION": "true"},
                               timeout=120)
    assert rewrapped.returncode == 0, rewrapped.stderr
    with httpx.Client(base_url=server.url, timeout=60) as client:  # served throughout
        assert client.get("/v2/team/secret/manifests/v1").status_code == 200


def test_s3_objects_are_encrypted_in_the_bucket(scaleout: ScaleOut) -> None:
    assert scaleout.s3 is not None
    key = base64.b64encode(os.urandom(32)).decode()
    replica = MoorageServer(scaleout.root / "encrypted-replica",
                            env={**scaleout.env(), "MOORAGE_STORAGE_URL":
                                 scaleout.s3.storage_url("encrypted"),
                                 "MOORAGE_ENCRYPTION": "true", "MOORAGE_MASTER_KEY": key})
    replica.start(timeout=60)
    try:
        digest = _check_served(replica, "team/secret-s3")
        client = scaleout.s3.client()
        listed = client.list_objects_v2(Bucket=scaleout.s3.bucket, Prefix="encrypted/blobs/")
        keys = [o["Key"] for o in listed.get("Contents", [])]
        assert any(k.endswith(digest[7:]) for k in keys)
        for object_key in keys:
            body = client.get_object(Bucket=scaleout.s3.bucket, Key=object_key)["Body"].read()
            assert b"PLAINTEXT-CANARY" not in body
    finally:
        replica.kill()
