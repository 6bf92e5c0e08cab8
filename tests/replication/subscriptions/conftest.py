"""Real servers for the artifact subscription tests: the replication rule tests' Moorage
(`primary`), Debian's Distribution with htpasswd Basic auth behind TLS as the upstream, and
their certificate authority (tests/replication/rules/conftest.py)."""

from tests.replication.rules.conftest import authority, distribution, primary  # noqa: F401
