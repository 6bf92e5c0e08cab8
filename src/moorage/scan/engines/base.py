"""What every scan engine is handed and what it answers (the interface agreed between the
scan parts of issue 16; owned by the service part, copied here unchanged)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from moorage.scan.model import Finding, Inventory


@dataclass(frozen=True)
class ScanTarget:
    repository: str        # "team/app"
    digest: str            # the manifest digest of one image (one platform of an index)
    platform: str          # "linux/amd64" or "" for a single image
    inventory: Inventory


class Engine(Protocol):
    name: str              # "osv", "harbor:<adapter name>", ...

    async def findings(self, target: ScanTarget) -> list[Finding]: ...
