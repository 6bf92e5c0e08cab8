"""Fixtures of the lifecycle tests: secured instances on both backends (`secured`, from
tests/support/secured.py, which tests/conftest.py loads for every folder)."""
