"""Helpers of the packaging tests."""

from __future__ import annotations

from pathlib import Path


def env_file(path: Path) -> dict[str, str]:
    """The KEY=VALUE lines of an environment file, as systemd's EnvironmentFile and
    `podman run --env-file` read them (comments and blank lines skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value
    return values
