"""Go: the build information the Go linker embeds in every binary since Go 1.13 (the
`\\xff Go buildinf:` blob: Go version, main module, dependencies with their versions).

Executables are streamed through a bounded search for the blob (never held whole), so a
200 MiB binary costs a pass over its bytes and 1 MiB of memory. The inline format of Go
1.18 and later is parsed (varint-prefixed strings); the older pointer format is reported as
not read. A file that carries Go's markers but no readable build information (truncated,
forged, stripped of it) is a problem of the inventory, never a crash.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

from moorage.scan.inventory.limits import Limits
from moorage.scan.inventory.purl import purl
from moorage.scan.model import Package

ELF_MAGIC = b"\x7fELF"
BUILDINFO = b"\xff Go buildinf:"
BUILD_ID = b"\xff Go build ID: "
CHUNK = 1 << 20
MAX_INFO = 1 << 20  # the version and module strings together
HEADER = 32


def wants(path: str, mode: int, size: int) -> bool:
    """Executable regular files: a Go binary is one, and only its bytes can say more."""
    return bool(mode & 0o111) and size > HEADER


def scan(path: str, stream: BinaryIO, size: int, limits: Limits,
         note: Callable[[str], None]) -> list[Package]:
    head = stream.read(4)
    if head != ELF_MAGIC:
        return []
    if size > limits.max_binary_bytes:
        note(f"{path}: an executable of {size} bytes, over the {limits.max_binary_bytes}-byte "
             "limit; not searched for Go build information")
        return []
    blob, saw_build_id = _find(stream, head)
    if blob is None:
        if saw_build_id:
            note(f"{path}: looks like a Go binary (it has a Go build ID) but carries no "
                 "build information; its modules are not known")
        return []
    try:
        go_version, modinfo = _decode(blob)
    except ValueError as exc:
        note(f"{path}: looks like a Go binary but its build information is unreadable "
             f"({exc})")
        return []
    return _packages(path, go_version, modinfo, limits)


def _find(stream: BinaryIO, head: bytes) -> tuple[bytes | None, bool]:
    """The bytes from the build-info magic on (up to MAX_INFO), and whether a Go build ID
    was seen on the way. The magic is 16-byte aligned in the binary's file image."""
    window = head
    offset = 0  # file offset of window[0]
    saw_build_id = False
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        window += chunk
        saw_build_id = saw_build_id or BUILD_ID in window
        at = window.find(BUILDINFO)
        while at >= 0 and (offset + at) % 16:
            at = window.find(BUILDINFO, at + 1)
        if at >= 0:
            blob = window[at:]
            while len(blob) < HEADER + MAX_INFO:
                more = stream.read(CHUNK)
                if not more:
                    break
                blob += more
            return blob[: HEADER + MAX_INFO], saw_build_id
        drop = max(0, len(window) - max(len(BUILDINFO), len(BUILD_ID)) - 16)
        offset += drop
        window = window[drop:]
    return None, saw_build_id


def _uvarint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    for i in range(at, min(at + 10, len(data))):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i + 1
        shift += 7
    raise ValueError("a length that does not end")


def _decode(blob: bytes) -> tuple[str, str]:
    if len(blob) < HEADER:
        raise ValueError("cut short")
    pointer_size, flags = blob[14], blob[15]
    if pointer_size not in (4, 8):
        raise ValueError(f"a pointer size of {pointer_size}")
    if not flags & 0x2:
        raise ValueError("built before Go 1.18 (pointer format, not read)")
    strings = []
    at = HEADER
    for _ in range(2):
        length, at = _uvarint(blob, at)
        if length > MAX_INFO or at + length > len(blob):
            raise ValueError("a string longer than the data")
        strings.append(blob[at:at + length].decode("utf-8", "replace"))
        at += length
    version, modinfo = strings
    if not version.startswith("go"):
        raise ValueError(f"no Go version ({version[:40]!r})")
    # modinfo is framed by 16 sentinel bytes on each side
    if len(modinfo) >= 33 and modinfo[-17] == "\n":
        modinfo = modinfo[16:-16]
    return version, modinfo


def _packages(path: str, go_version: str, modinfo: str, limits: Limits) -> list[Package]:
    found = [Package(kind="go-module", ecosystem="Go", name="stdlib", version=go_version,
                     path=path, purl=purl("golang", "stdlib", go_version))]
    last: list[str] | None = None
    for line in modinfo.splitlines()[: limits.max_packages_per_file]:
        words = line.split("\t")
        if words[0] in ("mod", "dep") and len(words) >= 3:
            last = [words[1], words[2]]
            found.append(_module(path, words[1], words[2]))
        elif words[0] == "=>" and len(words) >= 3 and last is not None:
            # a replacement: the module actually built in is the replacing one
            found[-1] = _module(path, words[1], words[2] or last[1])
        elif words[0] == "mod" and len(words) == 2:
            found.append(_module(path, words[1], "(devel)"))
    return found


def _module(path: str, module: str, version: str) -> Package:
    module, version = module[:300], version[:200]
    namespace, _, name = module.rpartition("/")
    return Package(kind="go-module", ecosystem="Go", name=module, version=version, path=path,
                   purl=purl("golang", name, version, namespace or None))
