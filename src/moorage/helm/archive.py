"""Reading an uploaded chart archive (`.tgz`), bounded.

An upload is untrusted: a gzip bomb, a tar of a million entries, a member named
`../../etc/passwd` or a `Chart.yaml` of a gigabyte must each be refused with a clear message,
cheaply. This reads the archive once, as a stream, without extracting anything to disk, and
keeps only the few files the index and the console show. Blocking work: callers run it in a
worker thread, never on the event loop.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib
from dataclasses import dataclass

import yaml

from moorage.helm.chart import ChartInvalid, ChartMeta, validate

MAX_MEMBERS = 10_000
MAX_MEMBER_BYTES = 16 << 20  # uncompressed, per file
MAX_TOTAL_BYTES = 256 << 20  # uncompressed, the whole archive
MAX_KEPT_BYTES = 1 << 20  # Chart.yaml, values.yaml, README: what is read into memory


@dataclass(frozen=True)
class ChartArchive:
    meta: ChartMeta
    values: str  # values.yaml as written ("" when absent)
    readme: str  # README.md (or README.txt, README) as written


def _unsafe(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]


def read_archive(data: bytes) -> ChartArchive:
    """The chart in a `.tgz`: its `<name>/Chart.yaml` validated, values and README kept."""
    if data[:2] != b"\x1f\x8b":
        raise ChartInvalid("not a chart: the upload is not a gzip-compressed tar archive")
    chart_yaml: bytes | None = None
    top: str | None = None
    kept: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for count, member in enumerate(tar, 1):
                if count > MAX_MEMBERS:
                    raise ChartInvalid(f"the chart archive has more than {MAX_MEMBERS} files")
                if _unsafe(member.name):
                    raise ChartInvalid(f"the chart archive has an unsafe path "
                                       f"{member.name[:100]!r}")
                if member.islnk() or member.issym():
                    raise ChartInvalid(f"the chart archive has a link {member.name[:100]!r}: "
                                       "charts hold regular files only")
                if not member.isfile():
                    continue
                if member.size > MAX_MEMBER_BYTES:
                    raise ChartInvalid(f"{member.name[:100]} is larger than "
                                       f"{MAX_MEMBER_BYTES >> 20} MiB")
                total += member.size
                if total > MAX_TOTAL_BYTES:
                    raise ChartInvalid(f"the chart archive unpacks to more than "
                                       f"{MAX_TOTAL_BYTES >> 20} MiB")
                first, _, rest = member.name.partition("/")
                if top is None:
                    top = first
                if first != top:
                    raise ChartInvalid("not a chart: the archive's files are not all in one "
                                       "folder named after the chart")
                if rest in ("Chart.yaml", "values.yaml", "README.md", "README.txt", "README"):
                    if member.size > MAX_KEPT_BYTES:
                        raise ChartInvalid(f"{member.name[:100]} is larger than "
                                           f"{MAX_KEPT_BYTES >> 10} KiB")
                    handle = tar.extractfile(member)
                    content = handle.read(MAX_KEPT_BYTES + 1) if handle else b""
                    if rest == "Chart.yaml":
                        chart_yaml = content
                    else:
                        kept[rest] = content
                else:
                    # read through (and so decompress) what is skipped: a bomb is counted
                    handle = tar.extractfile(member)
                    while handle is not None and handle.read(1 << 20):
                        pass
    except (tarfile.TarError, EOFError, OSError, zlib.error, gzip.BadGzipFile) as exc:
        raise ChartInvalid(f"not a chart: the archive cannot be read ({exc})"[:300]) from None
    if chart_yaml is None:
        raise ChartInvalid("not a chart: the archive has no <name>/Chart.yaml")
    try:
        raw = yaml.safe_load(chart_yaml.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ChartInvalid(f"Chart.yaml is not valid YAML: {str(exc)[:200]}") from None
    meta = validate(raw)
    if top != meta.name:
        raise ChartInvalid(f"the chart archive's folder {str(top)[:60]!r} is not the chart's "
                           f"name {meta.name!r}")
    readme = kept.get("README.md") or kept.get("README.txt") or kept.get("README") or b""
    return ChartArchive(meta, kept.get("values.yaml", b"").decode("utf-8", "replace"),
                        readme.decode("utf-8", "replace"))
