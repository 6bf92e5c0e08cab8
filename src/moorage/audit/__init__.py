"""The tamper-evident audit log: every push, pull, delete, login and management change,
with who did it, from where, and whether it worked, in a hash chain that shows edits.

- chain.py     the entry, its canonical form and hash, and chain verification (pure)
- store.py     the audit_log table: append a batch, page, stream, verify
- recorder.py  the event-bus subscriber that batches writes off the request path

app.py subscribes the recorder to the bus when the edition has `audit_log`; the routes are
in moorage.web.api.audit and the CLI in moorage.cli.audit.
"""

from moorage.audit.chain import GENESIS, Verification
from moorage.audit.recorder import AuditRecorder
from moorage.audit.store import AuditFilter, AuditStore

__all__ = ["AuditFilter", "AuditRecorder", "AuditStore", "GENESIS", "Verification"]
