"""Fixtures of the lifecycle tests: secured instances on both backends (tests/support/secured.py)."""

# fixtures: both backends, 2 processes
from tests.support.secured import secured, secured_embedded, secured_scaleout  # noqa: F401
