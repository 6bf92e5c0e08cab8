"""`moorage user …`: user accounts (administrators), and changing passwords."""

from __future__ import annotations

from typing import Annotated

import typer

from moorage.cli.auth import read_password
from moorage.cli.client import connect, segment
from moorage.cli.output import JsonFlag, confirm, details, print_json, say, table, when

app = typer.Typer(help="User accounts.", no_args_is_help=True)

PasswordStdin = Annotated[bool, typer.Option("--password-stdin",
                                             help="Read the password from standard input.")]


@app.command("create")
def create(
    username: str,
    admin: Annotated[bool, typer.Option("--admin", help="Make an instance administrator.")] = False,
    password_stdin: PasswordStdin = False,
    json_out: JsonFlag = False,
) -> None:
    """Create a user (administrators only); asks for the password unless --password-stdin."""
    password = read_password(None, password_stdin, f"Password for {username}", confirm=True)
    with connect() as api:
        user = api.post("/users", {"username": username, "password": password,
                                   "is_admin": admin})
    if json_out:
        print_json(user)
    else:
        say(f"Created {'administrator' if user['is_admin'] else 'user'} {user['username']}.")


@app.command("list")
def list_(json_out: JsonFlag = False) -> None:
    """List user accounts (administrators only)."""
    with connect() as api:
        found = api.get("/users")
    if json_out:
        print_json(found)
        return
    table(["USERNAME", "SOURCE", "ADMIN", "DISABLED", "CREATED"],
          [(u["username"], u["source"], u["is_admin"], u["disabled"], when(u["created_at"]))
           for u in found],
          empty="no users")


@app.command("show")
def show(username: str, json_out: JsonFlag = False) -> None:
    """Show one account (yours, or any for administrators)."""
    with connect() as api:
        user = api.get(f"/users/{segment(username)}")
    if json_out:
        print_json(user)
    else:
        details([("username", user["username"]), ("signs in with", user["source"]),
                 ("administrator", user["is_admin"]),
                 ("disabled", user["disabled"]), ("created", when(user["created_at"]))])


@app.command("delete")
def delete(
    username: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Delete a user account (administrators only); asks first, as it cannot be undone."""
    confirm(f"Delete user {username}, their tokens and memberships?", yes)
    with connect() as api:
        api.delete(f"/users/{segment(username)}")
    if json_out:
        print_json({"deleted": username})
    else:
        say(f"Deleted user {username}.")


@app.command("passwd")
def passwd(username: str, password_stdin: PasswordStdin = False,
           json_out: JsonFlag = False) -> None:
    """Set a new password (your own, or anyone's for administrators)."""
    password = read_password(None, password_stdin, f"New password for {username}", confirm=True)
    with connect() as api:
        user = api.patch(f"/users/{segment(username)}", {"password": password})
    if json_out:
        print_json(user)
    else:
        say(f"Changed the password of {user['username']}.")


@app.command("admin")
def set_admin(
    username: str,
    grant: Annotated[bool, typer.Option("--grant/--revoke",
                                        help="Make or stop being an administrator.")] = True,
    json_out: JsonFlag = False,
) -> None:
    """Grant or revoke instance administration (administrators only)."""
    with connect() as api:
        user = api.patch(f"/users/{segment(username)}", {"is_admin": grant})
    if json_out:
        print_json(user)
    else:
        say(f"{user['username']} is {'now' if user['is_admin'] else 'no longer'} "
            f"an administrator.")


@app.command("source")
def set_source(
    username: str,
    source: Annotated[str, typer.Argument(help="local, ldap or oidc")],
    password_stdin: PasswordStdin = False,
    json_out: JsonFlag = False,
) -> None:
    """Switch where an account signs in (administrators only): its local password, the LDAP
    directory or single sign-on. Its refresh tokens and console sessions end; switching to
    local asks for a new password."""
    body: dict[str, object] = {"source": source}
    if source == "local":
        body["password"] = read_password(None, password_stdin, f"New password for {username}",
                                         confirm=True)
    with connect() as api:
        user = api.patch(f"/users/{segment(username)}", body)
    if json_out:
        print_json(user)
    else:
        say(f"{user['username']} now signs in with {user['source']}.")


@app.command("disable")
def disable(username: str, json_out: JsonFlag = False) -> None:
    """Disable an account (administrators only): it can no longer log in, its refresh tokens
    end, and its bearer tokens stop pushing and deleting at once (pulls within their five
    minutes)."""
    _set_disabled(username, True, json_out)


@app.command("enable")
def enable(username: str, json_out: JsonFlag = False) -> None:
    """Enable a disabled account again (administrators only)."""
    _set_disabled(username, False, json_out)


def _set_disabled(username: str, disabled: bool, json_out: bool) -> None:
    with connect() as api:
        user = api.patch(f"/users/{segment(username)}", {"disabled": disabled})
    if json_out:
        print_json(user)
    else:
        say(f"{user['username']} is {'disabled' if user['disabled'] else 'enabled'}.")
