"""Hostile and broken images: every one is inventoried to the end, with what could not be
read listed as problems, and nothing is written anywhere (not even in the working folder a
traversal name aims at)."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moorage.scan.inventory import Limits, inventory_of
from moorage.scan.inventory.catalogers.golang import BUILD_ID, BUILDINFO
from tests.scan.inventory.helpers import (DEBIAN_OS_RELEASE, compress, file, hardlink, image,
                                          metadata, symlink, tar)

STATUS = "Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\n" \
         "Source: zlib\nVersion: 1:1.2.13.dfsg-1\n"
SITE = "usr/lib/python3/dist-packages"


def _good() -> bytes:
    return compress(tar([file("etc/os-release", DEBIAN_OS_RELEASE),
                         file("var/lib/dpkg/status", STATUS)]))


def _names(found) -> set[str]:
    return {p.name for p in found.packages}


def test_a_truncated_gzip_layer_is_a_problem_and_the_rest_is_read(store) -> None:
    whole = compress(tar([file(f"{SITE}/big-1.0.dist-info/METADATA", metadata("big", "1.0")),
                          file("opt/blob", os.urandom(200_000))]))
    found = inventory_of(store, image(store, [_good(), whole[: len(whole) // 2]]))
    assert _names(found) == {"zlib1g", "big"}  # what came before the cut is kept
    assert any("truncated" in p or "decompressed" in p for p in found.problems), found.problems


def test_garbage_and_bzip2_layers_are_problems(store) -> None:
    garbage = os.urandom(5000)
    bzip = b"BZh91AY&SY" + os.urandom(100)
    found = inventory_of(store, image(store, [garbage, _good(), bzip]))
    assert _names(found) == {"zlib1g"}
    assert any("not a tar archive" in p or "corrupt" in p for p in found.problems)
    assert any("bzip2-compressed" in p for p in found.problems)


def test_a_tar_bomb_stops_at_the_limit(store) -> None:
    bomb = compress(tar([file("var/lib/dpkg/status", STATUS),
                         file("zeros", b"\x00" * (8 << 20)),
                         file(f"{SITE}/after-1.0.dist-info/METADATA", metadata("after", "1.0"))]))
    assert len(bomb) < 100_000
    found = inventory_of(store, image(store, [bomb]), limits=Limits(max_layer_bytes=1 << 20))
    assert _names(found) == {"zlib1g"}  # read before the limit; nothing after it
    assert any(f"expands beyond {1 << 20} bytes" in p for p in found.problems)


def test_too_many_members_stop_at_the_limit(store) -> None:
    many = compress(tar([file(f"f/{i}", b"") for i in range(500)]))
    found = inventory_of(store, image(store, [_good(), many]), limits=Limits(max_members=100))
    assert _names(found) == {"zlib1g"}
    assert any("more than 100 members" in p for p in found.problems)


def test_traversal_names_are_refused_and_nothing_is_written(store, tmp_path: Path,
                                                            monkeypatch) -> None:
    work = tmp_path / "work" / "deep"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    layer = compress(tar([file("../../escaped", "owned"),
                          file("var/../../escaped-too", "owned"),
                          file("/var/lib/dpkg/status", STATUS),  # absolute: inside the image
                          hardlink("var/lib/x", "../../../etc/shadow"),
                          symlink("etc/os-release", "/../../../../etc/os-release")]))
    found = inventory_of(store, image(store, [layer]))
    assert _names(found) == {"zlib1g"}
    assert sum("climbing out of the image" in p for p in found.problems) == 2
    assert any("an absolute member name" in p for p in found.problems)
    assert any("a hard link out of the image" in p for p in found.problems)
    assert found.distro is None  # the link resolves inside the image, where there is nothing
    assert list((tmp_path / "work").rglob("*")) == [work]  # nothing written
    assert not (tmp_path / "escaped").exists()


def test_a_symlink_loop_is_a_problem(store) -> None:
    layer = compress(tar([symlink("etc/os-release", "../usr/lib/os-release"),
                          symlink("usr/lib/os-release", "/etc/os-release"),
                          file("var/lib/dpkg/status", STATUS)]))
    found = inventory_of(store, image(store, [layer]))
    assert any("symbolic link loop" in p for p in found.problems)
    assert found.distro is None
    (zlib,) = found.packages
    assert zlib.ecosystem == "Debian" and zlib.advisory_name == "zlib"


def _elf(body: bytes) -> bytes:
    head = b"\x7fELF\x02\x01\x01" + b"\x00" * 57
    return head + b"\x00" * (4096 - len(head)) + body


def test_a_file_that_only_looks_like_go_is_a_problem(store) -> None:
    fake_header = _elf(BUILDINFO + b"\x08\x02" + b"\x00" * 16 + b"\xff\xff\xff\xff\x0f" + b"x")
    old_format = _elf(BUILDINFO + b"\x08\x00" + b"\x00" * 16)
    no_info = _elf(BUILD_ID + b'"abc/def"\n' + b"\x00" * 100)
    not_go = _elf(b"just a C program" * 10)
    layer = compress(tar([file("usr/bin/fake", fake_header, 0o755),
                          file("usr/bin/old", old_format, 0o755),
                          file("usr/bin/stripped", no_info, 0o755),
                          file("usr/bin/c-program", not_go, 0o755),
                          file("usr/bin/script", b"#!/bin/sh\necho " + BUILDINFO, 0o755),
                          file("var/lib/dpkg/status", STATUS)]))
    found = inventory_of(store, image(store, [layer]))
    assert _names(found) == {"zlib1g"}
    problems = "\n".join(found.problems)
    assert "usr/bin/fake: looks like a Go binary but its build information is unreadable" \
        in problems
    assert "usr/bin/old: looks like a Go binary" in problems and "before Go 1.18" in problems
    assert "usr/bin/stripped: looks like a Go binary (it has a Go build ID)" in problems
    assert "c-program" not in problems and "script" not in problems


def test_malformed_databases_and_oversized_files_are_problems(store) -> None:
    layer = compress(tar([
        file("var/lib/dpkg/status", os.urandom(3000) + b"\n\nPackage: x\n"),
        file("lib/apk/db/installed", b"\x00\xff" * 500),
        file("var/lib/rpm/rpmdb.sqlite", b"SQLite format 3\x00" + os.urandom(2000)),
        file(f"{SITE}/noname-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nVersion: 1\n"),
        file(f"{SITE}/huge-1.0.dist-info/METADATA", metadata("huge", "1.0") + "x" * 5000),
    ]))
    found = inventory_of(store, image(store, [layer]), limits=Limits(max_file_bytes=4096))
    problems = "\n".join(found.problems)
    assert "rpmdb.sqlite: not a readable SQLite rpm database" in problems
    assert "noname-1.0.dist-info/METADATA: Python metadata without a Name" in problems
    assert "huge-1.0.dist-info/METADATA: " in problems and "over the 4096-byte limit" in problems
    assert "huge" not in _names(found)


def test_a_hard_link_to_a_catalogued_file_is_reported_at_both_paths(store) -> None:
    first = f"{SITE}/six-1.16.0.dist-info/METADATA"
    second = "opt/venv/lib/python3.11/site-packages/six-1.16.0.dist-info/METADATA"
    layer = compress(tar([file(first, metadata("six", "1.16.0")), hardlink(second, first),
                          hardlink(f"{SITE}/x-1.dist-info/METADATA", "etc/unread")]))
    found = inventory_of(store, image(store, [layer]))
    assert sorted(p.path for p in found.packages) == sorted([first, second])
    assert any("a hard link to 'etc/unread'" in p for p in found.problems)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_any_damage_to_a_layer_ends_as_problems_never_as_an_error(tmp_path_factory,
                                                                  data) -> None:
    from tests.scan.inventory.helpers import CountingStore

    store = CountingStore(tmp_path_factory.mktemp("fuzz"))
    raw = tar([file("etc/os-release", DEBIAN_OS_RELEASE), file("var/lib/dpkg/status", STATUS),
               file(f"{SITE}/a-1.dist-info/METADATA", metadata("a", "1")),
               symlink("etc/x", "../y"), hardlink("z", "var/lib/dpkg/status")])
    kind = data.draw(st.sampled_from(["gzip", "zstd", "tar"]))
    layer = bytearray(compress(raw, kind))
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(layer) - 1))
        layer[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(layer)))
    found = inventory_of(store, image(store, [bytes(layer[:cut])]))
    assert isinstance(found.problems, tuple)


def test_a_damaged_header_midway_is_a_problem_not_a_quiet_end(store) -> None:
    """tarfile stops quietly at a header it cannot parse; the layer's rest must not vanish
    without a word."""
    raw = tar([file("var/lib/dpkg/status", STATUS), file("opt/data", b"x" * 50_000),
               file(f"{SITE}/lost-1.0.dist-info/METADATA", metadata("lost", "1.0"))])
    at = raw.find(b"opt/data")
    damaged = bytearray(raw)
    damaged[at + 148:at + 156] = b"ZZZZZZZZ"  # the header's checksum field
    found = inventory_of(store, image(store, [compress(bytes(damaged))]))
    assert _names(found) == {"zlib1g"}
    assert any("damaged tar header" in p for p in found.problems)
