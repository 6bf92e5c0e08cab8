"""Inventories of images: which packages a container of the image would hold, and which
layer brought each (issue 16, part 1).

    inventory_of(store, manifest_bytes_or_digest, cache=SqlLayerCache(engine)) -> Inventory
    inventories_of(store, index, ...) -> {"linux/amd64": Inventory, ...}

Layers are streamed from the blob store (gzip, zstd, plain tar), whiteouts and opaque
directories applied in order, and the files catalogers ask for read selectively: dpkg, apk,
rpm (SQLite), os-release, Python, npm, Go build information, Maven pom.properties in jars.
Per-layer results are cached by digest. Pure library code, blocking: run it off the event
loop. Hostile input (corrupt or truncated layers, bombs, traversal, link loops, fake Go
binaries) ends as problems of the Inventory, never as an exception.
"""

from moorage.scan.inventory.cache import LayerCache, MemoryLayerCache, SqlLayerCache
from moorage.scan.inventory.image import InventoryError, inventories_of, inventory_of
from moorage.scan.inventory.limits import Limits

__all__ = ["InventoryError", "LayerCache", "Limits", "MemoryLayerCache", "SqlLayerCache",
           "inventories_of", "inventory_of"]
