"""The bounds a hostile image meets while it is inventoried.

Every number here caps something an image's author controls (sizes of layers once expanded,
counts of tar members, the size of one file read into memory, link chains, archives inside
archives), so that one image cannot take a scanner's memory, disk or time. A limit that is
hit becomes a problem of the inventory, never an exception out of it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

MiB = 1 << 20


@dataclass(frozen=True)
class Limits:
    # bytes a layer may expand to (the tar stream after decompression); past it the layer's
    # reading stops and what was read so far is kept
    max_layer_bytes: int = 16 << 30
    # tar members per layer (a bomb of millions of empty files costs time, not bytes)
    max_members: int = 1_000_000
    # one file read into memory for a cataloger: a package database, a METADATA, a jar
    max_file_bytes: int = 64 * MiB
    # an executable scanned (streamed, never held) for Go build information
    max_binary_bytes: int = 512 * MiB
    # length of a member's name or link target
    max_name_length: int = 4096
    # symbolic links followed to resolve one path
    max_link_hops: int = 40
    # jars inside jars (a war's WEB-INF/lib, a Spring Boot jar's BOOT-INF/lib)
    max_archive_depth: int = 3
    # entries looked at in one archive, nested ones included
    max_archive_entries: int = 100_000
    # packages one file may declare (a status file of 10,000 packages is real; 10^7 is not)
    max_packages_per_file: int = 100_000

    def key(self) -> str:
        """A short text naming these limits, part of the layer cache key: a layer read under
        other limits may have been cut elsewhere."""
        return ",".join(str(v) for v in asdict(self).values())
