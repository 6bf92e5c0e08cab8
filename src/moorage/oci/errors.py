"""The OCI Distribution error codes, each with its HTTP status.

Every refusal the registry makes is one of these, so a client always gets the spec's JSON
error body rather than an HTML page, a 500 or a stack trace.
"""

from __future__ import annotations

import json
from typing import Any

# code -> (HTTP status, default message): the distribution spec's error code table, and
# nothing else, since clients branch on these codes. A refusal the table has no row for takes
# the nearest row and its own status: a 416 of a blob range is SIZE_INVALID, of an upload
# chunk BLOB_UPLOAD_INVALID; a bad page size is UNSUPPORTED ("invalid set of parameters").
# UNKNOWN is only ever a 500: the spec's table governs the bodies of 4XX answers, and has no
# row for a fault of the server.
ERROR_CODES: dict[str, tuple[int, str]] = {
    "BLOB_UNKNOWN": (404, "blob unknown to registry"),
    "BLOB_UPLOAD_INVALID": (400, "blob upload invalid"),
    "BLOB_UPLOAD_UNKNOWN": (404, "blob upload unknown to registry"),
    "DIGEST_INVALID": (400, "provided digest did not match uploaded content"),
    "MANIFEST_BLOB_UNKNOWN": (400, "manifest references a manifest or blob unknown to registry"),
    "MANIFEST_INVALID": (400, "manifest invalid"),
    "MANIFEST_UNKNOWN": (404, "manifest unknown to registry"),
    "NAME_INVALID": (400, "invalid repository name"),
    "NAME_UNKNOWN": (404, "repository name not known to registry"),
    "SIZE_INVALID": (400, "provided length did not match content length"),
    "UNAUTHORIZED": (401, "authentication required"),
    "DENIED": (403, "requested access to the resource is denied"),
    "UNSUPPORTED": (405, "the operation is unsupported"),
    "TOOMANYREQUESTS": (429, "too many requests"),
    "UNKNOWN": (500, "unknown error"),
}


class RegistryError(Exception):
    """A refusal with an OCI error code; the web layer renders it as the spec's JSON body."""

    def __init__(self, code: str, message: str | None = None, detail: Any = None,
                 status: int | None = None, headers: dict[str, str] | None = None) -> None:
        default_status, default_message = ERROR_CODES[code]
        self.code = code
        self.message = message or default_message
        self.detail = detail
        self.status = status or default_status
        self.headers = headers or {}
        super().__init__(f"{code}: {self.message}")

    def body(self) -> bytes:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            error["detail"] = self.detail
        return json.dumps({"errors": [error]}).encode()
