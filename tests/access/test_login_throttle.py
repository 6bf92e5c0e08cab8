"""Password guessing is throttled per account and per address, on every door, in one count.

The instance (tests.access.conftest.THROTTLED) locks an account after 5 failures and an
address after 8, for an hour at first: long enough that no machine is slow enough for a
lockout to lapse during a test. Consecutive requests go to different processes (two workers,
or two replicas), so a count kept in one process's memory would let the guesses through.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.access.conftest import Secured, from_address, new_address
from tests.access.helpers import api, unique
from tests.audit.helpers import wait_for
from tests.conftest import SECURED
from tests.support.server import MoorageServer
from tests.web.helpers import make_user as _make_user


def make_user(secured: Secured) -> tuple[str, str]:
    return _make_user(secured.servers[0], "guessed")


def attempt(secured: Secured, door: str, username: str, password: str,
            address: str) -> httpx.Response:
    """One login through one of the four doors, on the next process in turn."""
    server, headers = secured.next(), from_address(address)
    if door == "token":
        return httpx.get(f"{server.url}/auth/token", params={"service": "moorage"},
                         auth=(username, password), headers=headers)
    if door == "oauth2":
        return httpx.post(f"{server.url}/auth/token", headers=headers, data={
            "grant_type": "password", "username": username, "password": password,
            "service": "moorage", "client_id": "tests"})
    if door == "v2":
        return httpx.get(f"{server.url}/v2/", auth=(username, password), headers=headers)
    return api(server, "GET", "/user", auth=(username, password), headers=headers)


DOORS = ("token", "oauth2", "v2", "api")


def fail(secured: Secured, username: str, address: str, times: int) -> None:
    for n in range(times):
        resp = attempt(secured, DOORS[n % len(DOORS)], username, f"wrong-{n}", address)
        assert resp.status_code == 401, resp.text


def assert_locked(resp: httpx.Response) -> None:
    assert resp.status_code == 429, resp.text
    assert 1 <= int(resp.headers["Retry-After"]) <= 3600
    assert "try again" in resp.text


def test_locked_account_refuses_even_the_right_password_everywhere(secured: Secured) -> None:
    user = make_user(secured)
    since = time.time()
    fail(secured, user[0], new_address(), 5)
    # From another address too: the count is the account's.
    elsewhere = new_address()
    for door in DOORS:
        assert_locked(attempt(secured, door, *user, elsewhere))
    [event] = wait_for(secured.servers[0], action="login.throttled", actor=user[0],
                       since=str(since))
    assert event["result"] == "failure" and event["detail"]["scope"] == "account"
    assert event["detail"]["failures"] == 5 and event["detail"]["seconds"] == 3600


def test_success_resets_the_account_count(secured: Secured) -> None:
    user = make_user(secured)
    for _ in range(2):
        # (From a new address each time: a success does not reset the address's count.)
        address = new_address()
        fail(secured, user[0], address, 4)
        assert attempt(secured, "token", *user, address).status_code == 200


def test_unknown_usernames_are_throttled_like_real_ones(secured: Secured) -> None:
    """Otherwise the 429 itself would tell which accounts exist."""
    address = new_address()
    ghost = unique("nobody")
    fail(secured, ghost, address, 5)
    assert_locked(attempt(secured, "v2", ghost, "anything-at-all", new_address()))


def test_an_address_spraying_many_accounts_is_locked_out(secured: Secured) -> None:
    user = make_user(secured)
    sprayer = new_address()
    for n in range(8):
        resp = attempt(secured, DOORS[n % 4], unique("sprayed"), "Winter2024!", sprayer)
        assert resp.status_code == 401, resp.text
    assert_locked(attempt(secured, "token", *user, sprayer))
    assert attempt(secured, "token", *user, new_address()).status_code == 200
    found = wait_for(secured.servers[0], lambda es: any(
        e["address"] == sprayer for e in es), action="login.throttled")
    [event] = [e for e in found if e["address"] == sprayer]
    assert event["detail"]["scope"] == "address" and event["detail"]["failures"] == 8


def test_failed_login_records_unknown_usernames_pseudonymously(secured: Secured) -> None:
    """A password typed into the username field must not land in the audit log."""
    address = new_address()
    secret = "Correct-Horse-" + unique("")
    since = str(time.time())
    for door in ("token", "v2", "api"):
        assert attempt(secured, door, secret, "", address).status_code == 401
    user = make_user(secured)
    assert attempt(secured, "token", user[0], "wrong", address).status_code == 401

    def mine(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in found if e["address"] == address]

    found = mine(wait_for(secured.servers[0], lambda es: len(mine(es)) >= 4,
                          action="login", result="failure", since=since))
    assert len(found) == 4, found
    assert secret not in str(found)
    pseudonyms = {e["actor"] for e in found if e["actor"] != user[0]}
    assert len(pseudonyms) == 1, found  # the same unknown name reads the same every time
    assert pseudonyms.pop().startswith("unknown:")
    assert [e["actor"] for e in found].count(user[0]) == 1


@pytest.fixture
def rate_limited(tmp_path: Path) -> Iterator[MoorageServer]:
    server = MoorageServer(tmp_path / "data",
                           env={**SECURED, "MOORAGE_RATE_LIMIT_PER_MINUTE": "4"}).start(timeout=120)
    yield server
    server.kill()


@pytest.mark.parametrize("path", ["/auth/token", "/api/v1/info"])
def test_rate_limit_covers_the_token_endpoint_and_the_api(rate_limited: MoorageServer,
                                                         path: str) -> None:
    """4 requests a minute per address (MOORAGE_RATE_LIMIT_PER_MINUTE), whatever the door:
    five in a row meet a 429 (the server's own start-up checks may have used some already).

    The limit counts in fixed one-minute windows; should a window end between the first and
    the last request, that run proves nothing, and the test makes it again from the start of
    the next window."""
    for _ in range(2):
        window = int(time.time() // 60)
        answers = [httpx.get(rate_limited.url + path) for _ in range(5)]
        if int(time.time() // 60) == window:
            break
        time.sleep(60 - time.time() % 60)
    refused = [r for r in answers if r.status_code == 429]
    assert refused, [r.status_code for r in answers]
    assert "requests a minute" in refused[0].text
    assert 1 <= int(refused[0].headers["Retry-After"]) <= 60
