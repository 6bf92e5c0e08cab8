"""A directory that cannot be asked: stopped, or refusing the search account. Its users get a
clear sign-in error (not a 500), local accounts keep working, the outage is logged with its
reason and without a password, and sign-ins come back with the directory."""

from __future__ import annotations

import pytest

from tests.audit.helpers import wait_for
from tests.conftest import ADMIN_PASSWORD
from tests.sso.conftest import PASSWORDS, ldap_env, token_answer
from tests.support.ldap_server import PEOPLE, SEARCH_PASSWORD, LdapServer
from tests.support.server import MoorageServer
from tests.web.helpers import USER_PASSWORD, api, make_user, server_log

from moorage.access.identity import SignInUnavailable
from moorage.sso.ldap import LdapConfig, LdapDirectory


def test_a_stopped_directory_gives_a_clear_error_and_local_accounts_still_sign_in(
        ldap_registry: MoorageServer, directory: LdapServer) -> None:
    local, _ = make_user(ldap_registry)
    assert token_answer(ldap_registry, "alice", PASSWORDS["alice"]).status_code == 200
    directory.kill()
    try:
        refused = token_answer(ldap_registry, "alice", PASSWORDS["alice"])
        assert refused.status_code == 401, refused.text
        message = refused.json()["errors"][0]["message"]
        assert "directory" in message and "cannot be reached" in message
        assert PASSWORDS["alice"] not in refused.text
        api_refused = api(ldap_registry, "GET", "/user", auth=("alice", PASSWORDS["alice"]))
        assert api_refused.status_code == 401
        assert "cannot be reached" in api_refused.json()["error"]["message"]
        # the local accounts are not the directory's business
        assert token_answer(ldap_registry, "admin", ADMIN_PASSWORD).status_code == 200
        assert token_answer(ldap_registry, local, USER_PASSWORD).status_code == 200
        assert api(ldap_registry, "GET", "/user",
                   auth=(local, USER_PASSWORD)).json()["username"] == local
    finally:
        directory.start()
    assert token_answer(ldap_registry, "alice", PASSWORDS["alice"]).status_code == 200
    log = server_log(ldap_registry)
    outage = [line for line in log.splitlines() if "LDAP sign-in unavailable" in line]
    assert len(outage) == 2, outage  # once per failed sign-in (the token, the API call)
    assert "cannot be reached" in outage[0] and "Connection refused" in outage[0]
    for secret in (SEARCH_PASSWORD, PASSWORDS["alice"], USER_PASSWORD, ADMIN_PASSWORD):
        assert secret not in log
    # the audit log has the directory's sign-ins as logins, and the refusals with the reason
    logins = wait_for(ldap_registry, lambda found: len(found) >= 4, action="login",
                      actor="alice")
    assert {e["result"] for e in logins} == {"success", "failure"}
    failed = {e["target"]: e for e in logins if e["result"] == "failure"}
    assert set(failed) == {"moorage", "api"}, failed  # the token endpoint's, the API's
    assert "cannot be reached" in failed["moorage"]["detail"]["reason"]
    assert not any(PASSWORDS["alice"] in str(e) for e in logins)


def test_an_outage_is_not_counted_as_a_guess(start_registry, directory: LdapServer) -> None:
    """The lockout counts wrong passwords; a directory that cannot answer is not one, so a
    user is not locked out by an outage."""
    env = {**ldap_env(directory), "MOORAGE_LOGIN_LOCKOUT_FAILURES": "2"}
    server = start_registry(env)
    directory.kill()
    try:
        for _ in range(4):
            assert token_answer(server, "bob", PASSWORDS["bob"]).status_code == 401
    finally:
        directory.start()
    assert token_answer(server, "bob", PASSWORDS["bob"]).status_code == 200


def test_a_search_account_the_directory_refuses_is_a_clear_error(
        start_registry, directory: LdapServer) -> None:
    server = start_registry(ldap_env(directory, bind_password="not-the-search-password"))
    refused = token_answer(server, "alice", PASSWORDS["alice"])
    assert refused.status_code == 401
    message = refused.json()["errors"][0]["message"]
    assert "refused the search account" in message and "invalidCredentials" in message
    assert "not-the-search-password" not in server_log(server)
    assert token_answer(server, "admin", ADMIN_PASSWORD).status_code == 200


def test_an_anonymous_search_works_when_the_directory_allows_it(
        start_registry, directory: LdapServer) -> None:
    server = start_registry(ldap_env(directory, bind_dn="", bind_password=""))
    assert token_answer(server, "bob", PASSWORDS["bob"]).status_code == 200
    assert token_answer(server, "bob", "wrong-password").status_code == 401


def test_a_remembered_check_answers_while_the_directory_is_away(
        directory: LdapServer) -> None:
    """The per-process memory of successful checks (ldap_cache_seconds): docker asks for a
    token often; a check made a moment ago is not made again. A wrong password is never
    remembered as right, and an empty one never reaches the directory."""
    remembering = LdapDirectory(LdapConfig(url=directory.url, user_base=PEOPLE,
                                           cache_seconds=60))
    forgetting = LdapDirectory(LdapConfig(url=directory.url, user_base=PEOPLE,
                                          cache_seconds=0))
    assert remembering.authenticate("bob", PASSWORDS["bob"]) is not None
    assert forgetting.authenticate("bob", PASSWORDS["bob"]) is not None
    directory.kill()
    try:
        assert remembering.authenticate("bob", PASSWORDS["bob"]).username == "bob"
        with pytest.raises(SignInUnavailable):
            remembering.authenticate("bob", "another-password")
        with pytest.raises(SignInUnavailable):
            forgetting.authenticate("bob", PASSWORDS["bob"])
        # no bind is even tried for an empty password (LDAP's unauthenticated bind)
        assert remembering.authenticate("bob", "") is None
    finally:
        directory.start()


def test_a_directory_that_does_not_answer_times_out(directory: LdapServer) -> None:
    """A directory that accepts the connection and then says nothing (stopped with SIGSTOP)
    is given up after the timeout, with a clear reason."""
    import os
    import signal

    slow = LdapDirectory(LdapConfig(url=directory.url, user_base=PEOPLE, timeout_seconds=2,
                                    cache_seconds=0))
    assert directory.proc is not None
    os.kill(directory.proc.pid, signal.SIGSTOP)
    try:
        with pytest.raises(SignInUnavailable) as caught:
            slow.authenticate("bob", PASSWORDS["bob"])
        assert "in time" in str(caught.value) or "cannot be reached" in str(caught.value)
    finally:
        os.kill(directory.proc.pid, signal.SIGCONT)
    assert slow.authenticate("bob", PASSWORDS["bob"]) is not None


def test_a_filter_that_matches_several_entries_refuses(directory: LdapServer) -> None:
    """A user filter that names more than one entry is a misconfiguration: nobody signs in
    through it, rather than whichever entry came first."""
    broad = LdapDirectory(LdapConfig(url=directory.url, user_base=PEOPLE, cache_seconds=0,
                                     user_filter="(|(uid={username})(uid=bob))"))
    assert broad.authenticate("alice", PASSWORDS["alice"]) is None
    assert broad.authenticate("bob", PASSWORDS["bob"]) is not None  # one entry: fine
