"""`moorage login`, `logout` and `whoami`.

Login trades the password for a personal access token named after this machine, and keeps
only the token: it can be revoked on its own (`moorage token revoke`), expires, and never
reveals the password if the file leaks.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Annotated, Optional

import typer

from moorage.cli import credentials
from moorage.cli.client import ApiClient, ApiError, connect, normalize_url, segment
from moorage.cli.output import (CliError, JsonFlag, details, print_error, print_json, say,
                                usage, when)

TOKEN_DAYS = 90


def read_password(password: str | None, password_stdin: bool, prompt: str = "Password",
                  confirm: bool = False) -> str:
    """From the option, from stdin (scripts), or from a hidden prompt (people)."""
    if password is not None and password_stdin:
        raise usage("use either --password or --password-stdin, not both")
    if password_stdin:
        value = sys.stdin.read()
        value = value[:-1] if value.endswith("\n") else value
        value = value[:-1] if value.endswith("\r") else value
        if not value:
            raise usage("no password on standard input")
        return value
    if password is not None:
        return password
    if not sys.stdin.isatty():
        raise usage("no terminal to ask for the password on: use --password-stdin")
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


def login(
    url: Annotated[str, typer.Argument(help="The registry, e.g. https://registry.example.com")],
    username: Annotated[Optional[str], typer.Option("--username", "-u", help="Account name.")] = None,
    password: Annotated[Optional[str], typer.Option(
        "--password", "-p", help="Password (visible to other local users; prefer --password-stdin).")] = None,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from standard input.")] = False,
    expires_in_days: Annotated[float, typer.Option(
        help="Lifetime of the access token this login creates.")] = TOKEN_DAYS,
    json_out: JsonFlag = False,
) -> None:
    """Log in: check the credentials, create an access token, and keep it for later commands."""
    url = normalize_url(url)
    if not username:
        username = os.environ.get("MOORAGE_USERNAME")
    if not username:
        if not sys.stdin.isatty() or password_stdin:
            raise usage("give the account name with --username")
        username = str(typer.prompt("Username"))
    secret = read_password(password, password_stdin)
    previous = credentials.load()
    import httpx

    with ApiClient(url, auth=httpx.BasicAuth(username, secret), login_hint=False) as api:
        me = api.get("/user")
        if me.get("kind") == "anonymous":
            raise CliError(f"{url} runs without authentication; there is nothing to log in "
                           f"to (set MOORAGE_URL={url} instead)")
        if me.get("kind") != "user":
            raise CliError(f"{username} is a {me.get('kind')} account; only users can log in "
                           f"with `moorage login` (use MOORAGE_USERNAME and MOORAGE_PASSWORD)")
        created = api.post("/tokens", {"name": f"cli-{socket.gethostname()}"[:100],
                                       "expires_in_days": expires_in_days})
        if previous and previous.url == url and previous.username == username \
                and previous.token_id:
            try:  # the old token of this machine is no longer needed
                api.delete(f"/tokens/{segment(previous.token_id)}")
            except ApiError:
                pass
    path = credentials.save(credentials.Credentials(url, username, created["secret"],
                                                    created["id"]))
    if json_out:
        print_json({"url": url, "username": username, "token_id": created["id"],
                    "expires_at": created["expires_at"], "credentials": str(path)})
        return
    say(f"Logged in to {url} as {username}.")
    say(f"Access token {created['name']} ({created['id']}) expires "
        f"{when(created['expires_at'])}; saved in {path}.")


def logout(json_out: JsonFlag = False) -> None:
    """Revoke the stored access token and forget it."""
    stored = credentials.load()
    revoked = False
    if stored is not None and stored.token_id:
        try:
            with ApiClient(stored.url, headers={"Authorization": f"Bearer {stored.token}"},
                           login_hint=False) as api:
                api.delete(f"/tokens/{segment(stored.token_id)}")
                revoked = True
        except CliError as exc:
            print_error(f"could not revoke the token on the server ({exc.message}); "
                        f"forgetting it anyway")
    removed = credentials.remove()
    if json_out:
        print_json({"logged_out": removed, "token_revoked": revoked,
                    "url": stored.url if stored else None})
    elif removed and stored is not None:
        say(f"Logged out of {stored.url}" + (" (token revoked)." if revoked else "."))
    else:
        say("Not logged in.")


def whoami(json_out: JsonFlag = False) -> None:
    """Who the configured credentials belong to, and their roles."""
    with connect() as api:
        me = api.get("/user")
        if json_out:
            print_json({"url": api.url, **me})
            return
        details([("server", api.url), ("username", me["username"]), ("kind", me["kind"]),
                 ("administrator", me["is_admin"]),
                 ("roles", ", ".join(f"{ns}: {r}" for ns, r in sorted(me["roles"].items()))
                  or None)])
