"""rpm: the SQLite rpmdb (`var/lib/rpm/rpmdb.sqlite`, Fedora 33+, RHEL 9, Rocky, Alma).

Each row of its Packages table is one rpm header blob, parsed here with a bounded reader of
the header format (index entries of tag, type, offset, count, then a data store). The
database is opened in memory (`sqlite3.Connection.deserialize`): nothing is written to
disk. BerkeleyDB (`Packages`) and ndb (`Packages.db`) databases are reported as not read.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Callable

from moorage.scan.inventory.limits import Limits
from moorage.scan.model import Package

SQLITE = ("var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/rpmdb.sqlite")
OTHER = {"var/lib/rpm/Packages": "BerkeleyDB", "usr/lib/sysimage/rpm/Packages": "BerkeleyDB",
         "var/lib/rpm/Packages.db": "ndb", "usr/lib/sysimage/rpm/Packages.db": "ndb"}

NAME, VERSION, RELEASE, EPOCH, LICENSE, ARCH, SOURCERPM = 1000, 1001, 1002, 1003, 1014, 1022, 1044
_WANTED = {NAME, VERSION, RELEASE, EPOCH, LICENSE, ARCH, SOURCERPM}
INT32, STRING, STRING_ARRAY, I18NSTRING = 4, 6, 8, 9
MAX_INDEX = 100_000
MAX_STORE = 64 << 20


class HeaderError(ValueError):
    pass


def wants(path: str) -> bool:
    return path in SQLITE or path in OTHER


def header_fields(blob: bytes) -> dict[int, str | int]:
    """The tags of one header blob this cataloger uses, from a blob as rpmdb stores it (no
    leading magic): il, dl, il index entries, then dl bytes of data."""
    if len(blob) < 8:
        raise HeaderError("shorter than a header")
    il, dl = struct.unpack_from(">II", blob, 0)
    if il > MAX_INDEX or dl > MAX_STORE or 8 + 16 * il + dl > len(blob):
        raise HeaderError(f"claims {il} entries and {dl} bytes of data, more than it has")
    store = 8 + 16 * il
    fields: dict[int, str | int] = {}
    for i in range(il):
        tag, kind, offset, count = struct.unpack_from(">IIII", blob, 8 + 16 * i)
        if tag not in _WANTED:
            continue
        if offset >= dl:
            raise HeaderError(f"tag {tag} points past the data")
        at = store + offset
        if kind == INT32:
            if count < 1 or offset + 4 > dl:
                raise HeaderError(f"tag {tag} is cut short")
            fields[tag] = struct.unpack_from(">I", blob, at)[0]
        elif kind in (STRING, STRING_ARRAY, I18NSTRING):
            end = blob.find(b"\x00", at, store + dl)
            if end < 0:
                raise HeaderError(f"tag {tag} has no end")
            fields[tag] = blob[at:end].decode("utf-8", "replace")[:1000]
    return fields


def parse(path: str, data: bytes, limits: Limits, note: Callable[[str], None]) -> list[Package]:
    if path in OTHER:
        note(f"{path}: an rpm database in {OTHER[path]} format; not read (only the SQLite "
             "rpmdb is)")
        return []
    try:
        db = sqlite3.connect(":memory:")
    except sqlite3.Error as exc:  # pragma: no cover - sqlite itself unusable
        note(f"{path}: cannot open an in-memory database ({exc})")
        return []
    found: list[Package] = []
    if data[:16] == b"SQLite format 3\x00" and data[18:20] == b"\x02\x02":
        # rpm keeps its database in WAL mode, which an in-memory copy cannot open; the
        # header's two version bytes say so, and set to 1 they ask for the rollback journal
        # (the WAL file itself is not in the image's committed state we read)
        data = data[:18] + b"\x01\x01" + data[20:]
    try:
        db.deserialize(data)
        rows = db.execute("SELECT blob FROM Packages LIMIT ?", (limits.max_packages_per_file,))
        for number, (blob,) in enumerate(rows):
            if not isinstance(blob, bytes):
                note(f"{path}: row {number} holds no header; skipped")
                continue
            try:
                fields = header_fields(blob)
            except (HeaderError, struct.error) as exc:
                note(f"{path}: row {number}: {exc}; skipped")
                continue
            package = _package(path, fields)
            if package is None:
                note(f"{path}: row {number} has no name or version; skipped")
            elif package.name != "gpg-pubkey":  # imported signing keys, not software
                found.append(package)
    except (sqlite3.Error, OverflowError, MemoryError) as exc:
        note(f"{path}: not a readable SQLite rpm database ({str(exc)[:200]})")
    finally:
        db.close()
    return found


def _package(path: str, fields: dict[int, str | int]) -> Package | None:
    name, version, release = fields.get(NAME), fields.get(VERSION), fields.get(RELEASE)
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        return None
    full = f"{version}-{release}" if isinstance(release, str) and release else version
    epoch = fields.get(EPOCH)
    if isinstance(epoch, int):
        full = f"{epoch}:{full}"
    source = fields.get(SOURCERPM)
    source_name = None
    if isinstance(source, str) and source.endswith(".src.rpm"):
        # name-version-release.src.rpm: the name is what is left of the last two dashes
        parts = source[: -len(".src.rpm")].rsplit("-", 2)
        if len(parts) == 3 and parts[0] != name:
            source_name = parts[0]
    arch = fields.get(ARCH)
    license_ = fields.get(LICENSE)
    return Package(kind="rpm", ecosystem="", name=name, version=full,
                   source_name=source_name, path=path,
                   arch=arch if isinstance(arch, str) else "",
                   licenses=(license_,) if isinstance(license_, str) and license_ else (),
                   purl=f"upstream={source}" if isinstance(source, str) else "")
