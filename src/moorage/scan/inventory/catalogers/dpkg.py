"""dpkg: `var/lib/dpkg/status`, and the one-file-per-package `status.d/` of distroless
images. Only installed packages count; `Source: name (version)` gives the source package
that Debian's advisories are keyed by, read as dpkg reads it."""

from __future__ import annotations

import re
from collections.abc import Callable

from debian.deb822 import Deb822

from moorage.scan.inventory.limits import Limits
from moorage.scan.model import Package

STATUS = "var/lib/dpkg/status"
STATUS_D = "var/lib/dpkg/status.d/"
_SOURCE = re.compile(r"^\s*(\S+)(?:\s*\(\s*([^)\s]+)\s*\))?\s*$")


def wants(path: str) -> bool:
    if path == STATUS:
        return True
    if path.startswith(STATUS_D):
        rest = path[len(STATUS_D):]
        return "/" not in rest and not rest.endswith(".md5sums")
    return False


def _installed(paragraph: Deb822, distroless: bool) -> bool:
    status = paragraph.get("Status")
    if status is None:  # distroless status.d files often have none: they are installed
        return distroless
    words = status.split()
    return len(words) == 3 and words[2] == "installed"


def parse(path: str, data: bytes, limits: Limits, note: Callable[[str], None]) -> list[Package]:
    text = data.decode("utf-8", "replace")
    found: list[Package] = []
    distroless = path.startswith(STATUS_D)
    for paragraph in Deb822.iter_paragraphs(text.splitlines(), use_apt_pkg=False):
        name, version = paragraph.get("Package"), paragraph.get("Version")
        if not name and not version:
            continue
        if not name or not version:
            note(f"{path}: a package without {'a name' if not name else 'a version'}; skipped")
            continue
        if not _installed(paragraph, distroless):
            continue
        if len(found) >= limits.max_packages_per_file:
            note(f"{path}: more than {limits.max_packages_per_file} packages; the rest skipped")
            break
        source_name = source_version = None
        if paragraph.get("Source"):
            match = _SOURCE.match(paragraph["Source"])
            if match:
                source_name = match.group(1)
                source_version = match.group(2) or version
            else:
                note(f"{path}: {name} has an unreadable Source field; taken as its own")
        found.append(Package(
            kind="deb", ecosystem="", name=name[:200], version=version[:200],
            source_name=source_name, source_version=source_version, path=path,
            arch=paragraph.get("Architecture", "")[:50]))
    return found
