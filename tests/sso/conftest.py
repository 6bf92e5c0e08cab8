"""Single sign-on tests: a real OpenLDAP (slapd) per module, and real `moorage serve`
processes configured to sign in against it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOMY, SECURED
from tests.support.certs import Authority
from tests.support.ldap_server import (GROUPS, PEOPLE, SEARCH_DN, SEARCH_PASSWORD, LdapServer,
                                       Person, group_dn)
from tests.support.server import MoorageServer

# The directory's people and groups (each module starts a directory of its own).
PEOPLE_OF_THE_DIRECTORY = [
    Person("alice", "alice-directory-pw", "Alice Liddell", "alice@moorage.test"),
    Person("bob", "bob-directory-pw"),
    Person("carol", "carol-directory-pw"),
    Person("dave", "dave-directory-pw"),
    Person("frank", "frank-directory-pw"),
    Person("grace", "grace-directory-pw"),
]
PASSWORDS = {p.uid: p.password for p in PEOPLE_OF_THE_DIRECTORY}
GROUPS_OF_THE_DIRECTORY = {"developers": ["alice", "dave", "grace"], "admins": ["carol"],
                           "readers": ["dave"]}


def ldap_env(directory: LdapServer, url: str | None = None, **settings: str) -> dict[str, str]:
    """The MOORAGE_LDAP_* variables of an instance that signs in against `directory`."""
    env = {"MOORAGE_LDAP_URL": url or directory.url, "MOORAGE_LDAP_USER_BASE": PEOPLE,
           "MOORAGE_LDAP_BIND_DN": SEARCH_DN, "MOORAGE_LDAP_BIND_PASSWORD": SEARCH_PASSWORD,
           "MOORAGE_LDAP_GROUP_BASE": GROUPS,
           "MOORAGE_LDAP_ADMIN_GROUPS": group_dn("admins"),
           # every sign-in asks the directory, so that a change there shows at the next one
           "MOORAGE_LDAP_CACHE_SECONDS": "0"}
    env.update({f"MOORAGE_LDAP_{k.upper()}": v for k, v in settings.items()})
    return env


def start_directory(authority: Authority | None = None,
                    cert_names: tuple[str, ...] = ("localhost",)) -> LdapServer:
    return LdapServer(list(PEOPLE_OF_THE_DIRECTORY),
                      {k: list(v) for k, v in GROUPS_OF_THE_DIRECTORY.items()},
                      authority, cert_names).start()


@pytest.fixture(scope="module")
def directory() -> Iterator[LdapServer]:
    server = start_directory()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ldap_registry(directory: LdapServer,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    server = MoorageServer(tmp_path_factory.mktemp("ldap") / "data",
                           env={**SECURED, **ROOMY, **ldap_env(directory)}).start()
    yield server
    server.stop()


@pytest.fixture
def start_registry(tmp_path: Path) -> Iterator[Callable[..., MoorageServer]]:
    """Instances of the test's own (other LDAP settings), stopped after it."""
    started: list[MoorageServer] = []

    def start(env: dict[str, str], name: str = "data") -> MoorageServer:
        server = MoorageServer(tmp_path / name, env={**SECURED, **ROOMY, **env})
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()


def token_answer(server: MoorageServer, username: str, password: str,
                 scope: str = "") -> httpx.Response:
    """GET /auth/token with Basic credentials, as docker and podman ask for a token."""
    params = [("service", "moorage")] + ([("scope", scope)] if scope else [])
    return httpx.get(f"{server.url}/auth/token", params=params, auth=(username, password),
                     timeout=120)
