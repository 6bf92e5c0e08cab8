"""Fixtures of the lifecycle tests: secured instances on both backends (tests/support/secured.py)."""

from tests.support.secured import secured  # noqa: F401  (a fixture)
