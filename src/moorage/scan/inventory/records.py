"""What reading one layer leaves behind: the files catalogued (with their packages), and
what the layer does to the layers below it (whiteouts, opaque directories, paths it writes,
symbolic links). This, not the layer's bytes, is what the per-layer cache keeps, so that
layers can be combined again in any image without being read again.
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from moorage.scan.model import Package

# Raised whenever what a cataloger reads or writes into a record changes: cached layers of
# an older format are read again rather than trusted.
FORMAT = "1"


@dataclass
class FileRecord:
    """One catalogued file of a layer: the packages it declares (OS packages without their
    distribution yet; that is known only once all layers are combined)."""

    path: str
    packages: list[Package] = field(default_factory=list)
    text: str | None = None  # kept for files whose text matters later (os-release)


@dataclass
class LayerResult:
    digest: str
    records: dict[str, FileRecord] = field(default_factory=dict)
    # every non-directory path the layer writes: it hides what lower layers had there
    paths: set[str] = field(default_factory=set)
    symlinks: dict[str, str] = field(default_factory=dict)
    # directories the layer writes: one replaces a lower layer's file or link at its path
    dirs: set[str] = field(default_factory=set)
    whiteouts: set[str] = field(default_factory=set)
    opaques: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    compression: str = ""
    # False when the store failed us mid-read: the result is not the layer's and is not cached
    complete: bool = True

    def dumps(self) -> bytes:
        doc = {
            "digest": self.digest, "compression": self.compression,
            "records": [{"path": r.path, "text": r.text,
                         "packages": [dataclasses.asdict(p) for p in r.packages]}
                        for r in self.records.values()],
            "paths": sorted(self.paths), "symlinks": self.symlinks, "dirs": sorted(self.dirs),
            "whiteouts": sorted(self.whiteouts), "opaques": sorted(self.opaques),
            "problems": self.problems,
        }
        return zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), 6)

    @classmethod
    def loads(cls, data: bytes) -> LayerResult:
        doc: dict[str, Any] = json.loads(zlib.decompress(data))
        records = {}
        for r in doc["records"]:
            # JSON gives lists where Package holds tuples (licenses, engines); a field
            # added to Package since the entry was cached takes its default
            packages = [Package(**{k: tuple(v) if isinstance(v, list) else v
                                   for k, v in p.items()})
                        for p in r["packages"]]
            records[r["path"]] = FileRecord(r["path"], packages, r["text"])
        return cls(doc["digest"], records, set(doc["paths"]), dict(doc["symlinks"]),
                   set(doc["dirs"]), set(doc["whiteouts"]), set(doc["opaques"]),
                   list(doc["problems"]), doc.get("compression", ""))
