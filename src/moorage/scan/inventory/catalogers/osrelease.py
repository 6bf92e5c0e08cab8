"""`etc/os-release` and `usr/lib/os-release`: which distribution and release an image is."""

from __future__ import annotations

import shlex

from moorage.scan.model import Distro

PATHS = ("etc/os-release", "usr/lib/os-release")
MAX_TEXT = 64 * 1024


def wants(path: str) -> bool:
    return path in PATHS


def parse(text: str) -> Distro | None:
    """The distribution an os-release file names, or None without an ID."""
    fields: dict[str, str] = {}
    for line in text.splitlines()[:500]:
        key, sep, value = line.partition("=")
        if not sep or not key.strip().isidentifier():
            continue
        try:
            words = shlex.split(value, comments=False, posix=True)
        except ValueError:
            words = [value.strip().strip("\"'")]
        fields[key.strip()] = " ".join(words)[:200]
    if not fields.get("ID"):
        return None
    return Distro(fields["ID"].lower(), fields.get("VERSION_ID", ""),
                  fields.get("PRETTY_NAME", ""))
