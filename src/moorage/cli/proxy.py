"""`moorage proxy …`: proxy cache namespaces, served through from an upstream registry
(instance administrators).

The upstream password is never an argument (arguments show in `ps` and shell history): it is
read from standard input with `--password-stdin`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from moorage.cli.client import connect, segment
from moorage.cli.output import JsonFlag, details, print_json, say, table, usage, when

app = typer.Typer(help="Proxy cache namespaces: pull through from an upstream registry "
                       "(administrators).", no_args_is_help=True)


def _check(d: dict[str, Any]) -> str:
    if d["check_ok"] is None:
        return "never checked"
    return "reachable" if d["check_ok"] else f"failed: {d['check_detail']}"


def _show(d: dict[str, Any]) -> None:
    details([("Namespace", d["namespace"]), ("Upstream", d["upstream_url"]),
             ("Username", d["username"] or "-"),
             ("Password", "stored" if d["has_password"] else "none"),
             ("TLS", "not verified (insecure)" if d["insecure"] else
              ("own CA" if d["has_ca"] else "system CAs")),
             ("Library rewrite", "yes" if d["rewrite_library"] else "no"),
             ("Tag TTL", f"{d['ttl_seconds']} s"),
             ("Enabled", "yes" if d["enabled"] else "no (cached content only)"),
             ("Last check", f"{_check(d)} ({when(d['checked_at'])})"),
             ("Updated", f"{when(d['updated_at'])} by {d['updated_by']}")])


def _password(stdin: bool) -> str | None:
    if not stdin:
        return None
    value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise usage("--password-stdin read an empty line")
    return value


def _ca(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        if path.stat().st_size > 65536:
            raise usage(f"{path} is larger than 64 KiB")
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise usage(f"cannot read {path}: {exc}") from None


@app.command("list")
def list_(json_out: JsonFlag = False) -> None:
    """List the proxy cache namespaces."""
    with connect() as api:
        found = api.get("/proxy-caches")
    if json_out:
        print_json(found)
        return
    table(["NAMESPACE", "UPSTREAM", "USER", "TTL", "ENABLED", "CHECK"],
          [(d["namespace"], d["upstream_url"], d["username"] or "-", str(d["ttl_seconds"]),
            "yes" if d["enabled"] else "no", _check(d)) for d in found],
          empty="no proxy caches")


@app.command("create")
def create(
    namespace: Annotated[str, typer.Argument(help="The namespace (made if it does not exist)")],
    upstream: Annotated[str, typer.Option("--upstream", help="The upstream registry's URL, "
                                          "e.g. https://registry-1.docker.io")],
    username: Annotated[str | None, typer.Option(help="The upstream account")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin",
                                                 help="Read the upstream password from "
                                                      "standard input")] = False,
    ttl: Annotated[int, typer.Option(help="Seconds between checks of a tag upstream")] = 300,
    rewrite_library: Annotated[bool, typer.Option("--rewrite-library",
                                                  help="One-segment names get library/ "
                                                       "(Docker Hub)")] = False,
    ca_file: Annotated[Path | None, typer.Option(help="PEM certificates to trust for the "
                                                      "upstream")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="No TLS verification")] = False,
    disabled: Annotated[bool, typer.Option("--disabled", help="Serve cached content only")
                        ] = False,
    json_out: JsonFlag = False,
) -> None:
    """Bind a namespace to an upstream registry."""
    body: dict[str, Any] = {"namespace": namespace, "upstream_url": upstream,
                            "ttl_seconds": ttl, "rewrite_library": rewrite_library,
                            "insecure": insecure, "enabled": not disabled}
    if username:
        body["username"] = username
    password = _password(password_stdin)
    if password is not None:
        body["password"] = password
    ca = _ca(ca_file)
    if ca is not None:
        body["ca_pem"] = ca
    with connect() as api:
        found = api.post("/proxy-caches", body)
    if json_out:
        print_json(found)
        return
    say(f"{found['namespace']} now pulls through from {found['upstream_url']} "
        f"(tags checked every {found['ttl_seconds']} s).")


@app.command("show")
def show(namespace: str, json_out: JsonFlag = False) -> None:
    """Show one proxy cache."""
    with connect() as api:
        found = api.get(f"/proxy-caches/{segment(namespace)}")
    print_json(found) if json_out else _show(found)


@app.command("update")
def update(
    namespace: str,
    upstream: Annotated[str | None, typer.Option("--upstream")] = None,
    username: Annotated[str | None, typer.Option(help="The upstream account ('' for none)")
                        ] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
    ttl: Annotated[int | None, typer.Option()] = None,
    rewrite_library: Annotated[bool | None, typer.Option("--rewrite-library/--no-rewrite-library")
                               ] = None,
    ca_file: Annotated[Path | None, typer.Option()] = None,
    insecure: Annotated[bool | None, typer.Option("--insecure/--verify-tls")] = None,
    enabled: Annotated[bool | None, typer.Option("--enable/--disable")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Change what is given; the rest stays."""
    body: dict[str, Any] = {}
    for key, value in (("upstream_url", upstream), ("ttl_seconds", ttl),
                       ("rewrite_library", rewrite_library), ("insecure", insecure),
                       ("enabled", enabled)):
        if value is not None:
            body[key] = value
    if username is not None:
        body["username"] = username or None
    password = _password(password_stdin)
    if password is not None:
        body["password"] = password
    ca = _ca(ca_file)
    if ca is not None:
        body["ca_pem"] = ca
    if not body:
        raise usage("nothing to change: give at least one option")
    with connect() as api:
        found = api.patch(f"/proxy-caches/{segment(namespace)}", body)
    print_json(found) if json_out else say(f"Proxy cache {namespace} updated.")


@app.command("delete")
def delete(namespace: str, json_out: JsonFlag = False) -> None:
    """Unbind the namespace; it and what was cached stay, as ordinary content."""
    with connect() as api:
        api.delete(f"/proxy-caches/{segment(namespace)}")
    print_json({"deleted": namespace}) if json_out else \
        say(f"{namespace} is no longer a proxy cache (its content stays).")


@app.command("check")
def check(namespace: str, json_out: JsonFlag = False) -> None:
    """Reach the upstream now with the stored credentials."""
    with connect() as api:
        found = api.post(f"/proxy-caches/{segment(namespace)}/check", {})
    if json_out:
        print_json(found)
    elif found["check_ok"]:
        say(f"The upstream of {namespace} answers: {found['upstream_url']}.")
    else:
        say(f"The upstream of {namespace} cannot be reached: {found['check_detail']}")
    if not found["check_ok"]:
        raise typer.Exit(1)
