"""`moorage serve` and `moorage migrate` against a database or a bucket that does not answer:
one clear line that says what failed and where (never a password), and a non-zero exit.
Driven as real subprocesses, against closed loopback ports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import free_port

SECRET = "s3cr3t-pw"


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "moorage", *args], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "AWS_ACCESS_KEY_ID": "k",
                               "AWS_SECRET_ACCESS_KEY": "secret-key", **env})


def one_clear_line(proc: subprocess.CompletedProcess[str], *wanted: str) -> str:
    assert proc.returncode != 0
    output = (proc.stdout + proc.stderr).strip()
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    failure = [line for line in lines if line.startswith("moorage: ")]
    assert len(failure) == 1 and len(lines) <= 2, output
    for word in wanted:
        assert word in failure[0], output
    assert SECRET not in output and "secret-key" not in output
    return failure[0]


@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_an_unreachable_database_is_one_line(command: str, tmp_path: Path) -> None:
    port = free_port()
    url = f"postgresql://moorage:{SECRET}@127.0.0.1:{port}/registry"
    args = [command, "--database-url", url, "--data-dir", str(tmp_path / "data")]
    if command == "serve":
        args += ["--listen", f"127.0.0.1:{free_port()}"]
    line = one_clear_line(run(args, tmp_path), "database", f"127.0.0.1:{port}", "registry")
    assert "refused" in line.lower()


def test_an_unreachable_bucket_is_one_line(tmp_path: Path) -> None:
    port = free_port()
    storage = f"s3://bucket-x/prefix?endpoint=http://127.0.0.1:{port}&region=us-east-1"
    proc = run(["serve", "--storage-url", storage, "--data-dir", str(tmp_path / "data"),
                "--listen", f"127.0.0.1:{free_port()}"], tmp_path)
    one_clear_line(proc, "bucket-x", f"127.0.0.1:{port}")
