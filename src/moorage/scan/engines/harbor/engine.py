"""One registered adapter as a scan engine (`Engine` of engines/base.py), named
"harbor:<adapter name>".

A scan: mint a pull-only credential for exactly the image's repository, lasting as long as
the scan may (`credential`), ask the adapter to scan the image by digest, poll its report as
its Refresh-After says until `timeout` seconds have passed in all, and convert the v1.1
report into findings. Whatever goes wrong raises `AdapterError` with a message naming the
adapter and the image, for the scan to record as a problem while the other engines' findings
still count.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from moorage.scan.engines.base import ScanTarget
from moorage.scan.engines.harbor.client import AdapterClient, Pending
from moorage.scan.engines.harbor.protocol import (OCI_MANIFEST, AdapterError, Converted,
                                                  findings_of_report, scan_request)
from moorage.scan.model import Finding

log = logging.getLogger("moorage.scan.harbor")
DEFAULT_SCAN_TIMEOUT = 600.0
ENGINE_PREFIX = "harbor:"

# (repository, seconds it must last) -> the full Authorization header value the adapter sends
Credential = Callable[[str, float], str]
# (repository, digest) -> the manifest's media type
MediaType = Callable[[str, str], Awaitable[str]]


async def _oci(repository: str, digest: str) -> str:
    return OCI_MANIFEST


@dataclass
class HarborEngine:
    adapter: str  # the registered adapter's name
    client: AdapterClient
    registry_url: str  # where the adapter pulls from (public_url or scan_adapter_registry_url)
    credential: Credential
    media_type: MediaType = _oci
    timeout: float = DEFAULT_SCAN_TIMEOUT  # the whole scan: request, waits and report
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    @property
    def name(self) -> str:
        return ENGINE_PREFIX + self.adapter

    async def findings(self, target: ScanTarget) -> list[Finding]:
        """The adapter's findings; raises AdapterError (a message naming the adapter and the
        image, no secret) when there are none to be had: the scan records it as a problem
        and keeps the other engines' findings. Problems of a report that was read (skipped
        items) are in `scan(target).problems`."""
        return list((await self.scan(target)).findings)

    async def scan(self, target: ScanTarget) -> Converted:
        """Findings and the report's own problems; AdapterError when there is no report."""
        image = f"{target.repository}@{target.digest}"
        try:
            return await self._scan(target)
        except AdapterError as exc:
            raise AdapterError(f"scanner adapter {self.adapter}: {exc} (scanning {image})") \
                from None

    async def _scan(self, target: ScanTarget) -> Converted:
        if not self.registry_url:
            raise AdapterError("Moorage has no address the adapter can pull from: set "
                               "public_url, or scan_adapter_registry_url")
        deadline = time.monotonic() + self.timeout
        authorization = self.credential(target.repository, self.timeout + 60.0)
        try:
            mime = await self.media_type(target.repository, target.digest)
        except Exception as exc:  # the registry's own refusal (a manifest gone since)
            raise AdapterError(f"the image's manifest cannot be read: {str(exc)[:200]}") \
                from None
        scan_id = await self._bounded(self.client.scan(scan_request(
            self.registry_url, authorization, target.repository, target.digest, mime)),
            deadline)
        log.info("scanner adapter %s scans %s@%s (scan %s)", self.adapter, target.repository,
                 target.digest, scan_id[:80])
        while True:
            answer = await self._bounded(self.client.report(scan_id), deadline)
            if not isinstance(answer, Pending):  # up to 100,000 items: off the event loop
                return await asyncio.to_thread(findings_of_report, answer, self.name,
                                               target.inventory)
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._late()
            await self.sleep(min(answer.refresh_after, left))

    async def _bounded(self, call: Awaitable[object], deadline: float):  # type: ignore[no-untyped-def]
        left = deadline - time.monotonic()
        if left <= 0:
            if asyncio.iscoroutine(call):
                call.close()
            raise self._late()
        try:
            return await asyncio.wait_for(call, left)
        except asyncio.TimeoutError:
            raise self._late() from None

    def _late(self) -> AdapterError:
        return AdapterError(f"it did not finish within the scan timeout of {self.timeout:g} s; "
                            f"the scan was given up")
