"""`moorage` and its subcommands. `serve` starts the registry; the rest talk to its
management API (/api/v1) over HTTP, with the credentials `moorage login` stored."""

from __future__ import annotations

import sys

import typer

try:  # typer 0.22+ carries its own copy of click, whose exceptions derive from this
    from typer import TyperException as _CommandLineError
except ImportError:  # pragma: no cover - older typer on the real click
    from click import ClickException as _CommandLineError  # type: ignore[assignment]

from moorage.cli import auth, info, members, namespaces, network, repos, robots, tokens, users
from moorage.cli import webhooks
from moorage.cli import sso
from moorage.cli import audit  # audit
from moorage.cli.output import CliError, json_requested, print_failure
from moorage.store.datadir import private_umask
from moorage.cli.serve import serve
from moorage.cli import jobs, policies
from moorage.cli.worker import worker
from moorage.cli.migrate import migrate
from moorage.cli import keys as keys_cli
from moorage.cli import maintenance as maintenance_cli

HELP = """Moorage: a self-hosted OCI container registry.

Client commands find the server and credentials in the file `moorage login` writes, or in
MOORAGE_URL, MOORAGE_USERNAME and MOORAGE_PASSWORD (which win). Every command takes --json.
"""

# Plain help (click's formatter, which every subcommand inherits from the root), not Rich
# panels: on an 80-column terminal Rich's option table cut long flag names to
# `--credential-free-p…`, and a flag one cannot read is a flag one cannot type.
app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode=None)


@app.callback()
def _root() -> None:
    """Without a callback, Typer would run a lone command without naming it."""


app.command()(serve)
app.command()(auth.login)
app.command()(auth.logout)
app.command()(auth.whoami)
app.command()(info.info)
app.add_typer(namespaces.app, name="namespace")
app.add_typer(repos.app, name="repo")
app.add_typer(users.app, name="user")
app.add_typer(robots.app, name="robot")
app.add_typer(tokens.app, name="token")
app.add_typer(members.app, name="member")
app.add_typer(network.app, name="network")
app.add_typer(sso.app, name="sso")
# lifecycle
app.command()(jobs.gc)
app.command()(worker)
app.command()(migrate)
app.add_typer(keys_cli.app, name="keys")
app.add_typer(jobs.app, name="jobs")
app.add_typer(policies.immutability, name="immutability")
app.add_typer(policies.retention, name="retention")
from moorage.cli import pull_policy as pull_policy_cli  # noqa: E402
app.add_typer(pull_policy_cli.app, name="policy")  # blocking: `moorage policy pull …`
# backup and restore (embedded instances; they work on the data dir directly)
from moorage.cli import backup as backup_cli  # noqa: E402
app.command()(backup_cli.backup)
app.command()(backup_cli.restore)
app.add_typer(webhooks.app, name="webhook")  # feature: event notifications
app.add_typer(audit.app, name="audit")  # audit
from moorage.cli import domains as domains_cli  # noqa: E402
app.add_typer(domains_cli.app, name="domain")  # custom domain names
app.add_typer(maintenance_cli.app, name="maintenance")  # operations: read-only mode
from moorage.cli import advisories as advisories_cli  # noqa: E402
app.add_typer(advisories_cli.app, name="advisories")  # scan: the advisory database
from moorage.cli import cve_allowlist as cve_allowlist_cli  # noqa: E402
app.add_typer(cve_allowlist_cli.app, name="cve-allowlist")  # scan: accepted advisories
from moorage.cli import scanners as scanners_cli  # noqa: E402
app.add_typer(scanners_cli.app, name="scanner")  # scan: Harbor scanner adapters
from moorage.cli import replication as replication_cli  # noqa: E402
app.add_typer(replication_cli.app, name="replication")  # replication rules and executions
from moorage.cli import proxy as proxy_cli  # noqa: E402
app.add_typer(proxy_cli.app, name="proxy")  # replication: proxy cache namespaces
from moorage.cli import subscription as subscription_cli  # noqa: E402
app.add_typer(subscription_cli.app, name="subscription")  # replication: artifact subscriptions
from moorage.cli import imports as imports_cli  # noqa: E402
app.command("import")(imports_cli.start)  # replication: start an import of another registry
app.add_typer(imports_cli.app, name="imports")  # replication: list, show, cancel, log imports
from moorage.cli import charts as charts_cli  # noqa: E402
app.add_typer(charts_cli.app, name="chart")  # helm: charts of a namespace
from moorage.cli import scan as scan_cli  # noqa: E402
scan_cli.install(app)  # scan: scan, vulns, sbom, scan-on-push
from moorage.cli import signing as signing_cli  # noqa: E402
signing_cli.install(app)  # signing: signing key|identity, sign, verify


def main() -> None:
    """Entry point: a refusal or a usage problem is one line on stderr and an exit code
    (1 refused, 2 usage), never a traceback or a decorated panel that scripts must parse.

    umask 077 first: `serve`, `worker`, `migrate`, `keys`, `backup` and `restore` write the
    data folder or a copy of it, which are for this user only (see store/datadir.py).
    """
    private_umask()
    as_json = json_requested(sys.argv[1:])
    try:
        code = app(prog_name="moorage", standalone_mode=False)
    except CliError as exc:
        print_failure(exc.message, exc.exit_code, as_json, code=getattr(exc, "code", None),
                      status=getattr(exc, "status", None))
        sys.exit(exc.exit_code)
    except _CommandLineError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # type: ignore[attr-defined]  # the help text itself
        else:
            ctx = getattr(exc, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            print_failure(exc.format_message() + hint, exc.exit_code, as_json)
        sys.exit(exc.exit_code)
    except typer.Abort:
        print_failure("aborted", 1, as_json)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
