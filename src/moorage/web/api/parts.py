"""What the management API uses of an instance.

The routers are handed these parts by `app.py` (which builds them) and name them here, by
type, instead of importing `app.py`: nothing below `app.py` imports it, and a reader sees at
one glance what `/api/v1` may touch. `app.Instance` has all of them, so it is passed as is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from moorage.access.authentication import Authenticator
from moorage.access.editions import Edition
from moorage.access.management import AccessManager
from moorage.audit import AuditRecorder
from moorage.db.access import AccessStore
from moorage.db.policy import PolicyStore
from moorage.domains import DomainService
from moorage.events import WebhookService
from moorage.jobs.worker import Worker
from moorage.ops.maintenance import ReadOnlyMode
from moorage.registry.service import Registry
from moorage.settings import Settings
from moorage.web.auth import RegistryAccess

if TYPE_CHECKING:  # the scanner is imported only by instances whose edition has it
    from moorage.scan.service import ScanService
    from moorage.signing.service import SigningService
    from moorage.blocking import PullBlocking
    from moorage.replication.service import ReplicationService
    from moorage.replication.subscriptions.service import SubscriptionService
    from moorage.replication.imports.service import ImportService
    from moorage.helm import HelmService


class ApiParts(Protocol):
    """The parts of an instance the management API reads (attributes, read-only)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def registry(self) -> Registry: ...
    @property
    def access_store(self) -> AccessStore: ...
    @property
    def edition(self) -> Edition: ...
    @property
    def authenticator(self) -> Authenticator: ...
    @property
    def manager(self) -> AccessManager: ...
    @property
    def access(self) -> RegistryAccess: ...
    @property
    def policies(self) -> PolicyStore: ...
    @property
    def worker(self) -> Worker: ...
    @property
    def webhooks(self) -> WebhookService | None: ...
    @property
    def audit(self) -> AuditRecorder | None: ...
    @property
    def read_only(self) -> ReadOnlyMode: ...
    @property
    def domains(self) -> DomainService | None: ...
    @property
    def scans(self) -> ScanService | None: ...
    @property
    def signing(self) -> SigningService | None: ...
    @property
    def blocking(self) -> PullBlocking | None: ...
    @property
    def replication(self) -> ReplicationService | None: ...
    @property
    def subscriptions(self) -> SubscriptionService | None: ...
    def imports(self) -> ImportService | None: ...
    def helm(self) -> HelmService | None: ...
