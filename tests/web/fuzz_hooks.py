"""Schemathesis hooks for the fuzz run of /api/v1 (test_api_fuzz.py), loaded through
SCHEMATHESIS_HOOKS.

The fuzzer acts as an administrator and may do anything one may, except to its own account:
with its password changed, its admin flag dropped or the account deleted, every later case
would be a 401 or a 403 and the run would test nothing. Nor does it make the registry
read-only: every later change would be a 503 (its own test covers read-only mode).
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis

FUZZER = os.environ.get("MOORAGE_FUZZ_USERNAME", "fuzzer")


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    if (case.path_parameters or {}).get("username") == FUZZER:
        return False
    body = case.body if isinstance(case.body, dict) else {}
    path = getattr(getattr(case, "operation", None), "path", "") or ""
    return not (path.endswith("/maintenance") and str(case.method).upper() == "PUT"
                and body.get("read_only") is not False)
