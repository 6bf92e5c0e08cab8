"""`moorage scanner …`: Harbor scanner adapters (Trivy's, …) that scans use as engines
(instance administrators).

The secret Moorage calls an adapter with is never an argument (arguments show in `ps` and
shell history): it is read from an environment variable (`--secret-env`, by default
MOORAGE_SCANNER_SECRET) or asked for without echo.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from moorage.cli.client import connect, segment
from moorage.cli.output import JsonFlag, details, print_json, say, table, usage, when

app = typer.Typer(help="Harbor scanner adapters used as scan engines (administrators).",
                  no_args_is_help=True)
SECRET_ENV = "MOORAGE_SCANNER_SECRET"
AUTH_KINDS = ("none", "bearer", "basic", "apikey")


def _secret(auth: str, env: str) -> str | None:
    if auth == "none":
        return None
    value = os.environ.get(env)
    if value is None:
        value = typer.prompt(f"Secret for {auth} auth to the adapter", hide_input=True)
    return value


def _scanner(d: dict[str, Any]) -> str:
    s = d.get("scanner") or {}
    return " ".join(x for x in (s.get("name", ""), s.get("version", "")) if x) or "-"


def _show(d: dict[str, Any]) -> None:
    details([("Name", d["name"]), ("URL", d["url"]),
             ("Scanner", f"{_scanner(d)} ({(d.get('scanner') or {}).get('vendor') or '-'})"),
             ("Auth", d["auth"] + (" (secret stored)" if d["has_secret"] else "")),
             ("Enabled", "yes" if d["enabled"] else "no"),
             ("Health", d["health"] + (f": {d['health_detail']}" if d["health_detail"] else "")),
             ("Checked", when(d["checked_at"])),
             ("Reports", ", ".join(d["produces_mime_types"])),
             ("Updated", f"{when(d['updated_at'])} by {d['updated_by']}")])


@app.command("list")
def list_(json_out: JsonFlag = False) -> None:
    """List the registered scanner adapters."""
    with connect() as api:
        found = api.get("/scanners")
    if json_out:
        print_json(found)
        return
    table(["NAME", "URL", "SCANNER", "VENDOR", "AUTH", "ENABLED", "HEALTH", "CHECKED"],
          [(d["name"], d["url"], _scanner(d), (d.get("scanner") or {}).get("vendor", ""),
            d["auth"], "yes" if d["enabled"] else "no", d["health"], when(d["checked_at"]))
           for d in found], empty="no scanner adapters")


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The adapter's name (engine harbor:NAME)")],
    url: Annotated[str, typer.Argument(help="The adapter's base URL, e.g. "
                                            "http://trivy-adapter:8080")],
    auth: Annotated[str, typer.Option(help="How Moorage authenticates to the adapter: none, "
                                           "bearer, basic (user:password) or apikey "
                                           "(X-ScannerAdapter-API-Key)")] = "none",
    secret_env: Annotated[str, typer.Option(help="The environment variable holding the "
                                                 "secret (else it is asked for)")] = SECRET_ENV,
    disabled: Annotated[bool, typer.Option("--disabled", help="Register it without using it "
                                                              "in scans yet")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Register an adapter; its metadata is fetched and checked first."""
    if auth not in AUTH_KINDS:
        raise usage(f"--auth is one of {', '.join(AUTH_KINDS)}")
    body: dict[str, Any] = {"name": name, "url": url, "auth": auth, "enabled": not disabled}
    secret = _secret(auth, secret_env)
    if secret is not None:
        body["secret"] = secret
    with connect() as api:
        found = api.post("/scanners", body)
    if json_out:
        print_json(found)
        return
    say(f"Registered scanner adapter {found['name']}: {_scanner(found)} "
        f"({(found.get('scanner') or {}).get('vendor') or 'no vendor given'}).")


@app.command("show")
def show(name: str, json_out: JsonFlag = False) -> None:
    """Show one adapter."""
    with connect() as api:
        found = api.get(f"/scanners/{segment(name)}")
    print_json(found) if json_out else _show(found)


@app.command("enable")
def enable(name: str, json_out: JsonFlag = False) -> None:
    """Use the adapter in scans."""
    _set_enabled(name, True, json_out)


@app.command("disable")
def disable(name: str, json_out: JsonFlag = False) -> None:
    """Keep the adapter registered but out of scans."""
    _set_enabled(name, False, json_out)


def _set_enabled(name: str, enabled: bool, json_out: bool) -> None:
    with connect() as api:
        found = api.patch(f"/scanners/{segment(name)}", {"enabled": enabled})
    if json_out:
        print_json(found)
    else:
        say(f"Scanner adapter {name} {'enabled' if enabled else 'disabled'}.")


@app.command("remove")
def remove(name: str, json_out: JsonFlag = False) -> None:
    """Unregister an adapter."""
    with connect() as api:
        api.delete(f"/scanners/{segment(name)}")
    if json_out:
        print_json({"removed": name})
    else:
        say(f"Removed scanner adapter {name}.")


@app.command("ping")
def ping(name: str, json_out: JsonFlag = False) -> None:
    """Fetch the adapter's metadata now and record whether it answered as it must."""
    with connect() as api:
        found = api.post(f"/scanners/{segment(name)}/ping", {})
    if json_out:
        print_json(found)
        return
    if found["health"] == "healthy":
        say(f"Scanner adapter {name} is healthy: {_scanner(found)}.")
    else:
        say(f"Scanner adapter {name} is unhealthy: {found['health_detail']}")
        raise typer.Exit(1)

