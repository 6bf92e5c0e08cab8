"""Accounts shared by the API tests.

Creating an account and its first login each cost an argon2 computation (~0.2 s here), so
the tests share three plain users and give them roles in namespaces of their own; a test
that changes an account itself (password, admin flag, deletion) makes its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

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
