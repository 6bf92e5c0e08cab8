"""Logs: text or JSON lines, a request id on every line of a request, and an access log.

Each request gets an id: the client's `X-Request-ID` when it sends a usable one (a proxy's,
so that its log and ours line up), or a new one. The id is returned in the response's
`X-Request-ID`, put on every log line written while the request is served (`request_id`),
and carried into the audit entries the request causes (registry/events.py).

The access log (`access_log = true`; off by default) writes one line per request when its
answer is complete: method, path (never the query string, which may carry a token),
status, bytes sent, duration, the actor and the client's address. Nothing else of a request
is logged: not its headers (credentials), not its body.
"""

from __future__ import annotations

import json
import logging
import re
import time
from random import getrandbits
from typing import Any

from moorage.registry.events import current_actor, request_id
from moorage.web.http import Scope

access_log = logging.getLogger("moorage.access")
_USABLE_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")
# Attributes every LogRecord has; the rest were passed with `extra=` and go into the JSON.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message",
                                                                            "asctime"}


class RequestIdFilter(logging.Filter):
    """Puts the id of the request being served (or "-") on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, and the fields
    given with `extra=` (the access log's)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure(level: str, fmt: str) -> None:
    """The root logger for a server process: text (the default) or JSON lines, UTC times."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        formatter = logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s")
        handler.setFormatter(formatter)
    formatter = handler.formatter
    if formatter is not None:
        formatter.converter = time.gmtime
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def incoming_request_id(scope: Scope) -> str:
    """The client's X-Request-ID when it is usable, else \"\"."""
    for key, value in scope.get("headers", ()):
        if key == b"x-request-id":
            return value.decode("ascii") if _USABLE_ID.fullmatch(value) else ""
    return ""


def new_request_id() -> str:
    """32 random hex digits, like uuid4().hex but from the process's Mersenne Twister
    (reseeded in each forked worker) instead of os.urandom: a request id only has to tell
    requests apart in logs, and uuid4 was a tenth of a manifest GET's time in the app."""
    return "%032x" % getrandbits(128)


class AccessLog:
    """The access log's line for each answered request (when the `access_log` setting is on;
    ops/metrics.py's ObservedRequests calls it once the answer is complete)."""

    def __init__(self, access: Any) -> None:
        self.access = access  # RegistryAccess: the client's address behind trusted proxies

    def write(self, scope: Scope, status: int, sent: int, seconds: float) -> None:
        """`sent` -1: a whole file sent zero-copy (its length is in Content-Length)."""
        address = self.access.address(scope)
        actor = current_actor() or _actor_of(scope) or "-"
        path = scope.get("path", "")[:512]
        access_log.info("%s %s %s %s %.1fms %s %s", scope.get("method"), path, status or "-",
                        sent if sent >= 0 else "file", seconds * 1000, actor,
                        address or "-", extra={
                            "method": scope.get("method"), "path": path, "status": status,
                            "bytes": sent if sent >= 0 else None,
                            "duration_ms": round(seconds * 1000, 2),
                            "actor": actor, "client": str(address or "")})


def _actor_of(scope: Scope) -> str:
    """Who the registry or the API found behind the request, if it got that far."""
    caller = scope.get("moorage.caller")
    if caller is not None:
        return str(getattr(caller, "actor", "") or "")
    principal = scope.get("moorage.api.caller")
    return str(getattr(principal, "username", "") or "") if principal is not None else ""
