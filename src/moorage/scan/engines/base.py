"""What a vulnerability engine is: something that turns an image's inventory into findings.

The scan job (scan/service.py) hands every engine of the instance the same `ScanTarget`
and merges what they return (scan/report.py), so the built-in OSV matcher, Harbor scanner
adapters and whatever comes next are interchangeable and can be run side by side.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from moorage.scan.advisories.matching import AdvisorySource, match
from moorage.scan.model import Finding, Inventory


@dataclass(frozen=True)
class ScanTarget:
    repository: str  # "team/app"
    digest: str  # the manifest digest of one image (one platform of an index)
    platform: str  # "linux/amd64" or "" for a single image
    inventory: Inventory


class Engine(Protocol):
    name: str  # "osv", "harbor:<adapter name>", ...

    async def findings(self, target: ScanTarget) -> list[Finding]: ...


class OsvEngine:
    """The built-in engine: the stored OSV advisories matched against the inventory
    (advisories.match). Reads only the database: a rescan costs no layer."""

    name = "osv"

    def __init__(self, advisories: AdvisorySource) -> None:
        self._advisories = advisories

    async def findings(self, target: ScanTarget) -> list[Finding]:
        # CPU work and blocking queries: off the event loop
        return await asyncio.to_thread(match, target.inventory.packages, self._advisories)


__all__ = ["Engine", "OsvEngine", "ScanTarget"]
