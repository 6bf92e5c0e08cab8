"""Accounts shared by the API tests, and secured instances on both backends.

Creating an account and its first login each cost an argon2 computation (~0.2 s here), so
the tests share three plain users and give them roles in namespaces of their own; a test
that changes an account itself (password, admin flag, deletion) makes its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.conftest import BACKENDS, ROOMY, SECURED
from tests.support.server import MoorageServer
from tests.web.helpers import make_user


@dataclass(frozen=True)
class People:
    alice: tuple[str, str]
    bob: tuple[str, str]
    carol: tuple[str, str]


@pytest.fixture(scope="session")
def people(secure_registry: MoorageServer) -> People:
    return People(make_user(secure_registry, "alice"), make_user(secure_registry, "bob"),
                  make_user(secure_registry, "carol"))


@pytest.fixture(scope="session", params=BACKENDS)
def secured(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> MoorageServer:
    """A secured instance on each backend: the shared embedded one, or one replica on
    PostgreSQL, SeaweedFS and Redis (where column types and integer widths are enforced)."""
    if request.param == "embedded":
        return request.getfixturevalue("secure_registry")  # type: ignore[no-any-return]
    from tests.support.scaleout import ScaleOut

    cluster = ScaleOut(tmp_path_factory.mktemp("secured-scaleout"), env={**SECURED, **ROOMY})
    request.addfinalizer(cluster.stop)
    return cluster.start(replicas=1).replicas[0]
