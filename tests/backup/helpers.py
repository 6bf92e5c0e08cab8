"""Pushing a known set of images, pulling them back, and running the `moorage` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.lifecycle.helpers import Image, make_image, pull, push
from tests.support.server import MoorageServer

# Open instances (auth off): a password check per request would cost more than the pushes.
OPEN = {"MOORAGE_AUTH": "off", "MOORAGE_GC_SCHEDULE": ""}


def client(server: MoorageServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=60)


@dataclass(frozen=True)
class Pushed:
    repo: str
    tag: str
    image: Image


def push_images(server: MoorageServer, count: int, prefix: str = "base",
                shared: bytes | None = None, size: int = 40_000) -> list[Pushed]:
    """`count` images over a few repositories, sharing one layer, each with a layer of its own."""
    shared = shared if shared is not None else os.urandom(size)
    pushed = []
    with client(server) as http:
        for n in range(count):
            image = make_image([shared, os.urandom(size + n)], f"{prefix}-{n}")
            item = Pushed(f"{prefix}/app{n % 3}", f"v{n}", image)
            resp = push(http, item.repo, item.tag, image)
            assert resp.status_code == 201, resp.text
            pushed.append(item)
    return pushed


def assert_pulls(server: MoorageServer, images: list[Pushed]) -> None:
    """Every image pulls whole: manifest bytes as pushed, every blob verified by digest."""
    with client(server) as http:
        for item in images:
            got = pull(http, item.repo, item.tag)
            assert got.digest == item.image.digest, item
            assert got.blobs == item.image.blobs, item


def manifest_status(http: httpx.Client, item: Pushed) -> int:
    return http.head(f"/v2/{item.repo}/manifests/{item.tag}",
                       headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
                       ).status_code


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def moorage(*args: str | Path) -> CliResult:
    """The real command as a subprocess, without any MOORAGE_* settings of the test run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env.update({"NO_COLOR": "1"})
    proc = subprocess.run([sys.executable, "-m", "moorage", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=60)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)
