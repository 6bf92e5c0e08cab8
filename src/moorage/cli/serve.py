"""`moorage serve`: start the registry on granian (SQLite and the local disk by default).

Heavy imports (granian, the app) happen inside the command, so that the client commands,
which never need them, start fast.

Before granian starts, the command makes the data folder private and claims it (one server
per folder, see store/datadir.py) and checks that nothing listens on the port (see
moorage/processes.py): a refusal is one line on stderr and exit code 1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional, TextIO

import typer


if TYPE_CHECKING:
    from moorage.domains.front import Front
    from moorage.settings import Settings
    from moorage.store.datadir import ServeLock


def serve(
    listen: Annotated[Optional[str], typer.Option(help="HOST:PORT to listen on [default: 127.0.0.1:5000]")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder for metadata and blobs [default: ./moorage-data]")] = None,
    config: Annotated[Optional[Path], typer.Option(help="TOML settings file")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Worker processes [default: 1]")] = None,
    database_url: Annotated[Optional[str], typer.Option(help="postgresql://… for scale-out [default: SQLite in the data dir]")] = None,
    storage_url: Annotated[Optional[str], typer.Option(help="s3://BUCKET/PREFIX?endpoint=…&region=… [default: the data dir]")] = None,
    redis_url: Annotated[Optional[str], typer.Option(help="redis://HOST:PORT/DB, shared by replicas")] = None,
    edition: Annotated[Optional[str], typer.Option(help="personal, basic or advanced [default: advanced]")] = None,
) -> None:
    """Serve the registry (SQLite and the local disk by default)."""
    from granian import Granian
    from granian.constants import Interfaces

    from moorage.ops.tls import CertificateWatcher
    from moorage.processes import FRONT_SECRET_ENV, export_server_pid
    from moorage.settings import SettingsError, export_settings, load_settings
    from moorage.store.datadir import private_umask

    private_umask()
    try:
        settings = load_settings(config, overrides={
            "listen": listen, "data_dir": data_dir, "workers": workers,
            "database_url": database_url, "storage_url": storage_url, "redis_url": redis_url,
            "edition": edition})
    except SettingsError as exc:
        typer.echo(f"moorage: {exc}", err=True)
        raise typer.Exit(2) from None
    data = Path(settings.data_dir).resolve()
    settings = dataclasses.replace(settings, data_dir=data)
    tls = _tls(settings)
    lock = _claim(settings)  # workers inherit it: held until the last of them has exited
    export_server_pid()
    os.environ.update(export_settings(settings))
    metrics_dir = _metrics_folder(settings)  # named before prometheus-client is imported here
    _import_app_modules(metrics_dir)
    stored_domains = _prepare_in_child(metrics_dir)
    front = _front(settings, tls, stored_domains)
    _check_port(settings)  # last, just before granian binds: the narrowest window
    _empty(metrics_dir)  # once the port is ours: a live server on it may share the folder
    scheme = "https" if tls or front else "http"
    typer.echo(f"Moorage listening on {scheme}://{settings.listen} (data in {data}, "
               f"{settings.workers} worker{'s' if settings.workers > 1 else ''}"
               f"{', behind its TLS front' if front else ''})", err=True)
    if front is not None:  # granian answers the front only, on a private unix socket
        front.start_or_exit()
        bind: dict[str, object] = {"uds": front.front.app_socket}
        os.environ[FRONT_SECRET_ENV] = front.front.secret
    else:
        bind = {"address": settings.host, "port": settings.port, **_granian_tls(tls)}
    server = Granian(
        "moorage.app:create_app", factory=True, interface=Interfaces.ASGI,
        workers=settings.workers, log_enabled=True, log_access=False, backlog=2048,
        websockets=False,  # the event loop is uvloop when installed (a dependency on Linux)
        **bind,  # type: ignore[arg-type]
    )
    watcher = CertificateWatcher(*tls).start() if tls and front is None else None
    try:
        server.serve()  # returns once the workers have stopped
    finally:
        if front is not None:
            front.front.stop()
    if watcher is not None:
        watcher.stop()
    shutil.rmtree(metrics_dir, ignore_errors=True)
    with contextlib.suppress(OSError):  # kept while another replica's folder is in it
        metrics_dir.parent.rmdir()
    if lock is not None:
        lock.release()


def _tls(settings: Settings) -> tuple[Path, Path] | None:
    """The certificate and key to serve HTTPS with, checked now (exit 2 with the reason)."""
    if not settings.tls_cert:
        return None
    from moorage.ops.tls import CertificateError, check_pair  # ssl: only when serving HTTPS

    cert, key = Path(settings.tls_cert).resolve(), Path(settings.tls_key).resolve()
    try:
        found = check_pair(cert, key)
    except CertificateError as exc:
        typer.echo(f"moorage: {exc}", err=True)
        raise typer.Exit(2) from None
    names = ", ".join(found.names) or found.subject
    typer.echo(f"HTTPS with the certificate for {names} (valid until "
               f"{found.not_after:%Y-%m-%d}); renewed files are taken up without a restart",
               err=True)
    return cert, key


@dataclasses.dataclass
class _Fronted:
    front: "Front"

    def start_or_exit(self) -> None:
        from moorage.domains.front import FrontError

        try:
            self.front.start()
        except FrontError as exc:
            _say(str(exc))
            raise typer.Exit(1) from None


def _front(settings: Settings, tls: tuple[Path, Path] | None,
           stored_domains: int) -> _Fronted | None:
    """The TLS front when hostnames need their own certificates (domains/front.py): with
    `tls_front = haproxy`, or `auto` and custom domains stored; None for granian's own TLS.
    Refused with one line when HAProxy is missing or there is no certificate at all."""
    if settings.tls_front == "off":
        return None
    from moorage.access.editions import Edition

    has_domains = Edition(settings.edition).has("custom_domains")
    if settings.tls_front == "auto" and not (has_domains and stored_domains):
        return None  # granian's own TLS, and no database code in this process
    from moorage.db.metadata import open_engine, sqlite_url
    from moorage.domains.front import Front, FrontError, PairSource, bind_address
    from moorage.domains.service import domain_keyring
    from moorage.domains.store import DomainStore

    data = Path(settings.data_dir)
    engine = open_engine(settings.database_url or sqlite_url(data))
    store = DomainStore(engine)
    if not tls and not store.count():
        _say("setting 'tls_front' is haproxy, and there is no certificate to serve: set "
             "tls_cert and tls_key (the default certificate)")
        raise typer.Exit(2)
    folder = data / "front"
    if not has_domains:
        _say(f"custom domain names need the basic edition or higher; this instance runs the "
             f"{settings.edition} edition: only the tls_cert certificate is served")
    try:
        front = Front(bind_address(settings.host, settings.port), folder,
                      PairSource(store, domain_keyring(settings, data) if has_domains else None,
                                 tls) if has_domains else PairSource(_NoDomains(), None, tls))
    except FrontError as exc:
        _say(str(exc))
        raise typer.Exit(1) from None
    return _Fronted(front)


class _NoDomains:
    """The domains of an edition without them: none."""

    def pairs(self) -> list[tuple[str, str, bytes]]:
        return []


def _granian_tls(tls: tuple[Path, Path] | None) -> dict[str, object]:
    """granian's TLS options: TLS 1.2 and up, HTTP/1.1 and HTTP/2 (ALPN)."""
    if tls is None:
        return {}
    from granian.constants import HTTPModes, SSLProtocols

    # On a reload granian starts each new worker, waits this long, then stops the old one:
    # long enough for a worker to start on a busy machine, so that no connection is refused.
    return {"ssl_cert": tls[0], "ssl_key": tls[1], "ssl_protocol_min": SSLProtocols.tls12,
            "http": HTTPModes.auto, "respawn_interval": 30.0}


def _metrics_folder(settings: Settings) -> Path:
    """The folder where the workers keep their metrics (prometheus-client's multiprocess
    mode, ops/metrics.py), made and exported to them; emptied by `_empty` before they start.

    Files left by an earlier run would be summed into this run's counters. It is per port
    under the data folder: replicas of a scale-out deployment may share one data folder on a
    machine, never a port. Set before this process imports prometheus-client
    (_import_app_modules), which reads the variable once, at import.
    """
    folder = Path(settings.data_dir) / "metrics" / str(settings.port)
    folder.mkdir(parents=True, mode=0o700, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    return folder


def _empty(folder: Path) -> None:
    """Remove what an earlier run left in the metrics folder; private and empty after."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)


def _say(message: str) -> None:
    typer.echo(f"moorage: {message}", err=True)


def _claim(settings: Settings) -> ServeLock | None:
    """Make the data folder private and this server's; exit 1 saying why if another
    generation holds it.

    The folder is locked when the instance lives in it (SQLite metadata): replicas of a
    scale-out deployment keep their state in shared services and may share a local folder.
    """
    from moorage.store.datadir import DataDirBusy, ServeLock, tighten

    data = Path(settings.data_dir)
    changed = tighten(data)
    if changed:
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        _say(f"tightened the modes of {len(changed)} path(s) in the data folder that other "
             f"users could reach (group and other access removed): "
             f"{', '.join(changed[:4])}{more}")
    lock = None
    if not settings.database_url or settings.database_url.startswith("sqlite"):
        lock = ServeLock(data)
        try:
            lock.acquire("serve", settings.listen, notice=_say)
        except DataDirBusy as exc:
            _say(str(exc))
            raise typer.Exit(1) from None
    return lock


def _check_port(settings: Settings) -> None:
    """Exit 1 if another process listens on the address: granian binds with SO_REUSEPORT
    and would silently share the port with it (a stale generation's workers, say)."""
    from moorage.processes import wait_for_port
    from moorage.store.datadir import STALE_GRACE_SECONDS

    busy = wait_for_port(settings.host, settings.port, STALE_GRACE_SECONDS, notice=_say)
    if busy is not None:
        _say(f"{settings.listen} is in use by another process ({busy.strerror}); stop it, "
             f"or choose another --listen")
        raise typer.Exit(1)


def _import_app_modules(metrics_dir: Path) -> None:
    """Import the application's modules here, once, before anything forks.

    granian forks its workers from this process (and the preparation below is forked too),
    so each of them finds the modules imported instead of importing them again: 1–2 s of CPU
    per process at every start. Only modules: no engine, no app, no thread,
    nothing that is not safe to fork. The objects are frozen out of the cyclic collector's
    reach, so that collections in the children do not touch (and copy) their pages.

    prometheus-client picks its multiprocess mode at import (the folder is exported by then);
    the metrics without labels that the import makes write files under this process's PID,
    which count nothing and are removed at once.
    """
    import gc

    gc.disable()
    try:
        import moorage.app  # noqa: F401
        # what every worker's app imports on top: FastAPI, pydantic, the management API and
        # the console's pages (build_console and create_management_api import them late)
        import moorage.web.console.pages  # noqa: F401
        import moorage.web.management_api  # noqa: F401
    finally:
        gc.enable()
    gc.freeze()
    _forget_metrics_of(metrics_dir, os.getpid())


def _forget_metrics_of(metrics_dir: Path, pid: int) -> None:
    """Remove the metric files of a process that serves no request (prometheus-client names
    them `<kind>_<pid>.db`): /metrics sums every file in the folder."""
    for path in metrics_dir.glob(f"*_{pid}.db"):
        with contextlib.suppress(OSError):
            path.unlink()


def _prepare_in_child(metrics_dir: Path) -> int:
    """First-start work (migrations, keys, the admin account) in a short-lived forked
    process; returns how many custom domains are stored (whether the TLS front is needed),
    counted there too, so that this process opens no database unless the front runs.

    The granian main process only forks and watches the workers. Done here, the preparation
    would leave the built instance, and argon2's 19 MiB peak for the admin's hash, in that
    process for the server's lifetime, and an engine that its forked workers must not share.
    """
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's code
        os.close(read_end)
        code = 1
        try:
            with os.fdopen(write_end, "w") as said:
                code = prepare_from_environment(said)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - reported, and the server does not start
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as said:
        lines = said.read().splitlines()
    _, status = os.waitpid(pid, 0)
    _forget_metrics_of(metrics_dir, pid)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise typer.Exit(code if code > 0 else 1)
    return next((int(line.split("=", 1)[1]) for line in lines
                 if line.startswith(_DOMAINS_SAID)), 0)


_DOMAINS_SAID = "moorage-domains="


def prepare_from_environment(said: TextIO) -> int:
    """The child's side of _prepare_in_child: settings come from the exported environment;
    what the parent must know is written to `said`.

    The cyclic garbage collector stays off in this short-lived process: importing and
    building the instance only makes objects that live until it exits, and the collections
    their allocations would trigger find nothing to free."""
    import gc

    gc.disable()
    from moorage.app import prepare_instance
    from moorage.db.migrate import NotMigrated
    from moorage.settings import load_settings

    from moorage.cli.startup import reported_in_one_line

    settings = load_settings()
    try:
        with reported_in_one_line(settings.database_url):
            generated = prepare_instance(settings, os.environ.get("MOORAGE_ADMIN_PASSWORD"))
    except NotMigrated as exc:
        print(f"moorage: {exc}", file=sys.stderr)
        return 2
    if generated:
        print(f"Created the administrator account: user 'admin', password '{generated}' "
              f"(shown once; change it with `moorage user passwd admin`)", file=sys.stderr)
    if settings.tls_front == "auto":
        from moorage.db.metadata import open_engine, sqlite_url
        from moorage.domains.store import DomainStore

        engine = open_engine(settings.database_url or sqlite_url(Path(settings.data_dir)))
        print(f"{_DOMAINS_SAID}{DomainStore(engine).count()}", file=said, flush=True)
        engine.dispose()
    return 0
