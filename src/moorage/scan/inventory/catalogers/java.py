"""Java: Maven coordinates from `META-INF/maven/**/pom.properties` inside jars, wars and
ears, and inside the archives those hold (WEB-INF/lib, BOOT-INF/lib), to a bounded depth.
Archives are opened in memory (zipfile over bytes); every entry's declared size is checked
before it is read, and reads are capped, so a zip bomb stops at the limit."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable

from moorage.scan.inventory.limits import Limits
from moorage.scan.inventory.purl import purl
from moorage.scan.model import Package

ARCHIVES = (".jar", ".war", ".ear", ".par", ".sar", ".jpi", ".hpi", ".nar")
POM = "pom.properties"
MAX_PROPERTIES = 64 * 1024


def wants(path: str) -> bool:
    return path.lower().endswith(ARCHIVES)


def parse(path: str, data: bytes, limits: Limits, note: Callable[[str], None]) -> list[Package]:
    found: list[Package] = []
    budget = [limits.max_archive_entries]
    _archive(path, data, 1, limits, note, found, budget)
    return found


def _archive(where: str, data: bytes, depth: int, limits: Limits, note: Callable[[str], None],
             found: list[Package], budget: list[int]) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        note(f"{where}: not a readable archive ({str(exc)[:200]})")
        return
    for info in entries:
        budget[0] -= 1
        if budget[0] < 0:
            note(f"{where}: more than {limits.max_archive_entries} archive entries; "
                 "the rest skipped")
            return
        name = info.filename
        inner = f"{where}:{name}"
        if name.startswith("META-INF/maven/") and name.endswith("/" + POM):
            text = _read(archive, info, MAX_PROPERTIES, inner, note)
            if text is not None:
                package = _pom(inner, text.decode("utf-8", "replace"))
                if package and len(found) < limits.max_packages_per_file:
                    found.append(package)
        elif name.lower().endswith(ARCHIVES):
            if depth >= limits.max_archive_depth:
                note(f"{inner}: archives nested deeper than {limits.max_archive_depth}; "
                     "not read")
                continue
            nested = _read(archive, info, limits.max_file_bytes, inner, note)
            if nested is not None:
                _archive(inner, nested, depth + 1, limits, note, found, budget)


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, where: str,
          note: Callable[[str], None]) -> bytes | None:
    if info.file_size > cap:
        note(f"{where}: {info.file_size} bytes, over the {cap}-byte limit; not read")
        return None
    try:
        with archive.open(info) as entry:
            data = entry.read(cap + 1)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError,
            RuntimeError) as exc:  # RuntimeError: an encrypted entry
        note(f"{where}: cannot be read ({str(exc)[:200]})")
        return None
    if len(data) > cap:
        note(f"{where}: expands past the {cap}-byte limit; not read")
        return None
    return data


def _pom(where: str, text: str) -> Package | None:
    props: dict[str, str] = {}
    for line in text.splitlines()[:1000]:
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        for sep in ("=", ":"):
            key, found, value = line.partition(sep)
            if found:
                props[key.strip()] = value.strip()[:200]
                break
    group, artifact, version = (props.get("groupId"), props.get("artifactId"),
                                props.get("version"))
    if not group or not artifact or not version:
        return None
    return Package(kind="java-archive", ecosystem="Maven", name=f"{group}:{artifact}",
                   version=version, path=where, purl=purl("maven", artifact, version, group))
