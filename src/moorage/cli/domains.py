"""`moorage domain …`: custom domain names, each served with its own certificate (SNI)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from moorage.cli.client import connect, segment
from moorage.cli.output import JsonFlag, print_json, say, table, usage, when

app = typer.Typer(help="Custom domain names: a certificate per hostname, chosen by SNI "
                       "(administrators; basic edition and up).", no_args_is_help=True)
MAX_FILE_BYTES = 64 * 1024


def _read(path: Path, what: str) -> str:
    """The file's PEM text; a missing, huge or binary file is a usage error naming it."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise usage(f"{what} {path} is larger than {MAX_FILE_BYTES // 1024} KiB: not a PEM "
                        f"file")
        return path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise usage(f"{what} {path} is not a PEM file (text)") from None
    except OSError as exc:
        raise usage(f"cannot read {what} {path}: {exc.strerror}") from None


@app.command("add")
def add(
    host: Annotated[str, typer.Argument(help="The host name clients use, e.g. "
                                             "registry.example.com")],
    cert: Annotated[Path, typer.Option("--cert", help="PEM certificate (chain) that names "
                                                       "HOST")],
    key: Annotated[Path, typer.Option("--key", help="Its unencrypted PEM private key")],
    json_out: JsonFlag = False,
) -> None:
    """Serve HOST with this certificate, or renew the pair of a domain that exists. Every
    replica takes it up within seconds, without a restart."""
    body = {"host": host, "certificate": _read(cert, "certificate"),
            "key": _read(key, "key")}
    with connect() as api:
        found = api.post("/domains", body)
    if json_out:
        print_json(found)
        return
    say(f"Serving {found['host']} with the certificate for {', '.join(found['names'])} "
        f"(valid until {when(found['not_after'])}).")


@app.command("list")
def list_(json_out: JsonFlag = False) -> None:
    """List the custom domains and their certificates."""
    with connect() as api:
        found = api.get("/domains")
    if json_out:
        print_json([{k: v for k, v in d.items() if k != "certificate"} for d in found])
        return
    table(["HOST", "SUBJECT", "NAMES", "EXPIRES", "UPDATED", "BY"],
          [(d["host"], d["subject"], ", ".join(d["names"]), when(d["not_after"]),
            when(d["updated_at"]), d["updated_by"]) for d in found],
          empty="no custom domains")


@app.command("remove")
def remove(host: str, json_out: JsonFlag = False) -> None:
    """Stop serving HOST with its own certificate."""
    with connect() as api:
        api.delete(f"/domains/{segment(host)}")
    if json_out:
        print_json({"removed": host})
    else:
        say(f"Removed the custom domain {host}.")
