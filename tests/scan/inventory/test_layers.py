"""Layers as the running container sees them: compression told by magic bytes, whiteouts
and opaque directories of later layers, the layer that last wrote a file, the per-layer
cache (a shared base layer is read once, asserted by the bytes the blob store handed out),
and one inventory per platform of an index."""

from __future__ import annotations

from pathlib import Path

import pytest

from moorage.db.metadata import open_engine, sqlite_url
from moorage.db.migrate import upgrade
from moorage.scan.inventory import (InventoryError, MemoryLayerCache, SqlLayerCache,
                                    inventories_of, inventory_of)
from tests.scan.inventory.helpers import (DEBIAN_OS_RELEASE, LAYER_GZIP, LAYER_TAR, LAYER_ZSTD,
                                          compress, digest_of, directory, file, image, index, metadata,
                                          opaque, symlink, tar, whiteout)

SITE = "usr/local/lib/python3.11/site-packages"
STATUS_TWO = """Package: base-files
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u15

Package: openssl
Status: install ok installed
Architecture: amd64
Version: 3.0.15-1~deb12u1

Package: removed-but-configured
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0
"""
STATUS_ONE = STATUS_TWO.split("\n\nPackage: openssl")[0] + "\n"


def _base() -> list:
    return [file("etc/os-release", DEBIAN_OS_RELEASE),
            file("var/lib/dpkg/status", STATUS_TWO),
            file(f"{SITE}/jinja2-2.10.dist-info/METADATA", metadata("Jinja2", "2.10")),
            file(f"{SITE}/urllib3-1.24.1.dist-info/METADATA", metadata("urllib3", "1.24.1")),
            file("srv/node_modules/lodash/package.json",
                 '{"name": "lodash", "version": "4.17.20"}'),
            file("srv/node_modules/minimist/package.json",
                 '{"name": "minimist", "version": "1.2.0"}')]


@pytest.mark.parametrize("kind,media_type", [("gzip", LAYER_GZIP), ("zstd", LAYER_ZSTD),
                                             ("tar", LAYER_TAR),
                                             ("zstd", LAYER_GZIP)])  # a media type that lies
def test_each_compression_is_read_by_its_magic(store, kind: str, media_type: str) -> None:
    manifest = image(store, [compress(tar(_base()), kind)], media_type=media_type)
    found = inventory_of(store, manifest)
    assert {p.name for p in found.packages} == {"base-files", "openssl", "Jinja2", "urllib3",
                                                "lodash", "minimist"}
    assert found.problems == ()


def test_whiteouts_and_opaque_dirs_of_later_layers_hide_packages(store) -> None:
    base = compress(tar(_base()))
    top = compress(tar([
        whiteout(f"{SITE}/urllib3-1.24.1.dist-info"),  # pip uninstall urllib3
        opaque("srv/node_modules"),  # the directory replaced whole (RUN rm -rf; npm ci)
        file("srv/node_modules/minimist/package.json",
             '{"name": "minimist", "version": "1.2.6"}'),
        file("var/lib/dpkg/status", STATUS_ONE),  # apt-get purge openssl
    ]), "zstd")
    found = inventory_of(store, image(store, [base, top]))
    got = {(p.name, p.version, p.layer) for p in found.packages}
    assert got == {("Jinja2", "2.10", digest_of(base)),
                   ("minimist", "1.2.6", digest_of(top)),
                   ("base-files", "12.4+deb12u15", digest_of(top))}
    assert found.layers == (digest_of(base), digest_of(top))


def test_a_whiteout_of_a_parent_and_a_file_turned_link_hide_too(store) -> None:
    base = compress(tar(_base()))
    top = compress(tar([whiteout("srv"),  # the whole tree gone
                        symlink("var/lib/dpkg", "/nonexistent")]))  # dir made a link
    found = inventory_of(store, image(store, [base, top]))
    assert {p.name for p in found.packages} == {"Jinja2", "urllib3"}


def test_a_directory_written_over_a_lower_file_or_link_replaces_it(store) -> None:
    base = compress(tar([file("usr/lib/os-release", DEBIAN_OS_RELEASE),
                         symlink("etc/os-release", "../usr/lib/os-release")]))
    top = compress(tar([directory("etc/os-release")]))  # odd, but what the container sees
    assert inventory_of(store, image(store, [base])).distro is not None
    found = inventory_of(store, image(store, [base, top]))
    # usr/lib/os-release is still there and read in its own right
    assert found.distro is not None and found.distro.id == "debian"
    top2 = compress(tar([directory("usr/lib/os-release")]))
    assert inventory_of(store, image(store, [base, top2])).distro is None


def test_a_package_added_back_above_its_whiteout_is_reported(store) -> None:
    base = compress(tar(_base()))
    middle = compress(tar([whiteout(f"{SITE}/urllib3-1.24.1.dist-info")]))
    top = compress(tar([file(f"{SITE}/urllib3-1.26.5.dist-info/METADATA",
                             metadata("urllib3", "1.26.5"))]))
    found = inventory_of(store, image(store, [base, middle, top]))
    urllib3 = [(p.version, p.layer) for p in found.packages if p.name == "urllib3"]
    assert urllib3 == [("1.26.5", digest_of(top))]


def test_os_release_through_a_chain_of_links(store) -> None:
    base = compress(tar([file("usr/lib/os-release", DEBIAN_OS_RELEASE),
                         symlink("etc/os-release", "../usr/lib/os-release"),
                         file("var/lib/dpkg/status", STATUS_ONE)]))
    found = inventory_of(store, image(store, [base]))
    assert found.distro is not None and found.distro.version_id == "12"
    assert found.packages[0].ecosystem == "Debian:12"
    assert found.packages[0].purl == ("pkg:deb/debian/base-files@12.4%2Bdeb12u15?arch=amd64"
                                      "&distro=debian-12")


def _cache_engine(tmp_path: Path):
    engine = open_engine(sqlite_url(tmp_path / "db"))
    upgrade(engine)
    return engine


def test_a_shared_base_layer_is_read_once_through_the_cache(store, tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    cache = SqlLayerCache(_cache_engine(tmp_path))
    base = compress(tar(_base()))
    app_a = compress(tar([file("app/node_modules/express/package.json",
                               '{"name": "express", "version": "4.17.1"}')]))
    app_b = compress(tar([whiteout(f"{SITE}/jinja2-2.10.dist-info")]))
    first = inventory_of(store, image(store, [base, app_a]), cache=cache)
    assert store.bytes_read[digest_of(base)] == len(base)
    store.bytes_read.clear()
    second = inventory_of(store, image(store, [base, app_b]), cache=cache)
    assert store.bytes_read[digest_of(base)] == 0  # the base came from the cache
    assert store.bytes_read[digest_of(app_b)] == len(app_b)
    # the cached base still meets the second image's own whiteout
    assert "Jinja2" in {p.name for p in first.packages}
    assert {p.name for p in second.packages} == {"base-files", "openssl", "urllib3", "lodash",
                                                 "minimist"}
    assert {p.layer for p in second.packages} == {digest_of(base)}
    # and a third scan of the first image reads nothing at all
    store.bytes_read.clear()
    again = inventory_of(store, image(store, [base, app_a]), cache=cache)
    assert store.bytes_read[digest_of(base)] == store.bytes_read[digest_of(app_a)] == 0
    assert again == first


def test_a_layer_missing_from_the_store_is_a_problem_and_not_cached(store) -> None:
    cache = MemoryLayerCache()
    present = compress(tar(_base()))
    manifest = image(store, [present])
    ghost = compress(tar([file("x", "y")]))
    doctored = manifest.replace(b'"layers": [', b'"layers": [{"mediaType": "%s", "digest": '
                                b'"%s", "size": %d}, ' % (LAYER_GZIP.encode(),
                                                          digest_of(ghost).encode(), len(ghost)))
    found = inventory_of(store, doctored, cache=cache)
    assert any("not stored here" in p for p in found.problems)
    assert len(found.packages) == 6
    assert cache.get(digest_of(ghost), "any") is None and len(cache._items) == 1


def test_an_index_gives_one_inventory_per_platform(store) -> None:
    amd = image(store, [compress(tar(_base()))])
    arm = image(store, [compress(tar([file("etc/os-release", DEBIAN_OS_RELEASE),
                                      file("var/lib/dpkg/status", STATUS_ONE)]))],
                arch="arm64", variant="v8")
    attestation = image(store, [compress(tar([file("sbom.json", "{}")]))], arch="unknown")
    doc = index(store, [({"os": "linux", "architecture": "amd64"}, amd),
                        ({"os": "linux", "architecture": "arm64", "variant": "v8"}, arm),
                        ({"os": "unknown", "architecture": "unknown"}, attestation)])
    found = inventories_of(store, doc)
    assert set(found) == {"linux/amd64", "linux/arm64/v8"}
    assert len(found["linux/amd64"].packages) == 6
    assert [p.name for p in found["linux/arm64/v8"].packages] == ["base-files"]
    # by digest, through the store; one platform named; none named is refused clearly
    one = inventory_of(store, digest_of(doc), platform="linux/arm64/v8")
    assert one == found["linux/arm64/v8"]
    with pytest.raises(InventoryError, match="index of 2 platforms"):
        inventory_of(store, doc)
    with pytest.raises(InventoryError, match="no image for linux/s390x"):
        inventory_of(store, doc, platform="linux/s390x")
    # an image manifest is named by its config's platform
    assert set(inventories_of(store, arm)) == {"linux/arm64/v8"}


def test_a_manifest_that_is_no_image_is_refused_clearly(store) -> None:
    for bad, why in ((b"not json", "not JSON"), (b"[]", "not a JSON object"),
                     (b'{"schemaVersion": 2, "config": {}}', "no layers")):
        with pytest.raises(InventoryError, match=why):
            inventory_of(store, bad)
    with pytest.raises(InventoryError, match="not stored here"):
        inventory_of(store, "sha256:" + "0" * 64)


def test_a_layer_read_under_other_limits_is_read_again(store) -> None:
    """A cached result depends on the limits it was read under (a bomb cut at 1 MiB is not
    the layer read whole)."""
    from moorage.scan.inventory import Limits

    cache = MemoryLayerCache()
    layer = compress(tar(_base() + [file("zeros", b"\x00" * (2 << 20)),
                                    file("srv/node_modules/late/package.json",
                                         '{"name": "late", "version": "1.0.0"}')]))
    manifest = image(store, [layer])
    small = inventory_of(store, manifest, cache=cache, limits=Limits(max_layer_bytes=1 << 20))
    assert "late" not in {p.name for p in small.packages} and small.problems
    store.bytes_read.clear()
    whole = inventory_of(store, manifest, cache=cache)
    assert store.bytes_read[digest_of(layer)] == len(layer)
    assert "late" in {p.name for p in whole.packages} and whole.problems == ()
    store.bytes_read.clear()
    assert inventory_of(store, manifest, cache=cache, limits=Limits(max_layer_bytes=1 << 20)
                        ) == small
    assert store.bytes_read[digest_of(layer)] == 0  # the cut result is cached too, as such
