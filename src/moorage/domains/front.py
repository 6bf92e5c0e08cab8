"""The TLS front: HAProxy, run by `moorage serve` when hostnames need certificates of their own.

granian serves one certificate per listener; it cannot choose one by SNI. So with custom
domains, `moorage serve` stays the one command and runs HAProxy in front of its own workers:
HAProxy listens on the public address (TLS 1.2 and up, HTTP/2 and HTTP/1.1 by ALPN, one
certificate per hostname from a crt-list, the `tls_cert` pair as the default for every other
name) and forwards over a unix socket to granian (in a private folder of its own under the
temporary directory: a socket path has at most 107 bytes, which a data folder's path may
already pass). The measured
cost, and why HAProxy rather than a front in Python, is in the README ("HTTPS").

What the app may believe of a forwarded request rests on a secret made at each start: the
front sets `X-Moorage-Front: <secret>` (replacing whatever a client sent), the client's
address, and the scheme; the app (web/front.py) takes them from requests that carry it only.

The front is kept in step with the `domains` table and the `tls_cert`/`tls_key` files: every
few seconds the files it would write are rendered again, and when they differ they are
written and HAProxy is reloaded (master-worker mode, SIGUSR2): a new worker takes the
listening sockets over and the old one finishes the connections it has, so no connection is
refused. If HAProxy dies it is started again; when `moorage serve` stops, so does the front.
"""

from __future__ import annotations

import ctypes
import logging
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from moorage.domains.certs import server_pem
from moorage.ops.tls import CertificateError, check_pair

if TYPE_CHECKING:
    from moorage.domains.store import DomainStore
    from moorage.store.keys import Keyring

log = logging.getLogger("moorage.front")

SECRET_HEADER = "X-Moorage-Front"
_PR_SET_PDEATHSIG = 1


class FrontError(RuntimeError):
    """The front cannot start; the message says what to do."""


@dataclass(frozen=True)
class Pair:
    """A hostname's certificate chain and key, PEM (host None: the default certificate)."""
    host: str | None
    cert_pem: bytes
    key_pem: bytes


def haproxy_binary() -> str:
    found = shutil.which("haproxy")  # on PATH, as systemd's default PATH has /usr/sbin
    if found is None:
        raise FrontError("custom domains are served through HAProxy, which is not installed: "
                         "install it (Debian: apt-get install haproxy), or set tls_front = off "
                         "to serve only the tls_cert certificate")
    return found


def bind_address(host: str, port: int) -> str:
    return f"ipv6@{host}:{port}" if ":" in host else f"{host}:{port}"


def render(pairs: list[Pair], folder: Path) -> dict[str, bytes]:
    """The files the front reads, by name: one PEM per certificate and the crt-list (the
    first line is the default certificate, the others answer only their own name)."""
    files: dict[str, bytes] = {}
    lines = []
    for index, pair in enumerate(pairs):
        name = f"{index:03d}-{pair.host or 'default'}.pem"
        files[f"certs/{name}"] = server_pem(pair.cert_pem, pair.key_pem)
        # [alpn ...] per line would override the bind's; the SNI filter is the host itself.
        lines.append(f"{folder / 'certs' / name}" + (f" {pair.host}" if pair.host else ""))
    files["domains.crtlist"] = ("\n".join(lines) + "\n").encode()
    return files


def config(listen: str, backend: str, folder: Path, secret: str, sockets: Path) -> str:
    """haproxy.cfg: TLS ≥ 1.2 with h2 and http/1.1 on the public address, HTTP/1.1 with
    keep-alive to granian. Timeouts are inactivity bounds: a long blob transfer that keeps
    moving is never cut."""
    import resource

    # each connection holds two descriptors (client and granian): stay within the limit
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    maxconn = 20000 if soft == resource.RLIM_INFINITY else max(256, min(20000, (soft - 200) // 2))
    return f"""# Written by `moorage serve` at each start; edits are lost. See domains/front.py.
global
    master-worker
    maxconn {maxconn}
    hard-stop-after 1h
    stats socket {sockets / 'admin.sock'} mode 600 level admin expose-fd listeners
    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets
    ssl-default-bind-ciphers ECDHE+AESGCM:ECDHE+CHACHA20
    log stderr format short local0 warning

defaults
    mode http
    log global
    option dontlognull
    timeout connect 10s
    timeout client 10m
    timeout server 10m
    timeout http-request 60s
    timeout http-keep-alive 60s
    retries 3
    retry-on conn-failure empty-response
    option redispatch

frontend moorage
    bind {listen} ssl crt-list {folder / 'domains.crtlist'} alpn h2,http/1.1
    http-request set-header {SECRET_HEADER} {secret}
    http-request set-header X-Forwarded-For %[src]
    http-request set-header X-Forwarded-Proto https
    http-request set-header X-Forwarded-Port %[dst_port]
    default_backend granian

backend granian
    server app {backend}
"""


def _die_with_us() -> None:
    """In the child before exec: SIGTERM when the thread that started it ends, so a killed
    `moorage serve` leaves no front behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Front:
    """One HAProxy master process, its files and the thread that keeps them current."""

    def __init__(self, listen: str, folder: Path, pairs: Callable[[], list[Pair]],
                 interval: float = 5.0) -> None:
        self.binary = haproxy_binary()
        self.folder = folder
        # the two sockets (granian's, HAProxy's admin socket): a private folder (0700),
        # made by start() and removed by stop()
        self.sockets = Path("/nonexistent")
        self.pairs = pairs
        self.interval = interval
        self.secret = secrets.token_urlsafe(32)
        self.listen = listen
        self.proc: subprocess.Popen[bytes] | None = None
        self._files: dict[str, bytes] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="moorage-front", daemon=True)

    @property
    def app_socket(self) -> Path:
        """Where granian listens for the front (valid once started)."""
        return self.sockets / "app.sock"

    @property
    def cfg(self) -> Path:
        return self.folder / "haproxy.cfg"

    def start(self) -> "Front":
        """Write the files, check them, start HAProxy; FrontError says why it cannot."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.folder / "certs").mkdir(mode=0o700, exist_ok=True)
        pairs = self.pairs()
        if not pairs:
            raise FrontError("the TLS front has no certificate to serve: set tls_cert and "
                             "tls_key, or add a domain first")
        self._write(render(pairs, self.folder))
        self.sockets = Path(tempfile.mkdtemp(prefix="moorage-front-"))
        self._write_file(self.cfg, config(self.listen, f"unix@{self.app_socket}", self.folder,
                                          self.secret, self.sockets).encode())
        checked = subprocess.run([self.binary, "-c", "-f", str(self.cfg)],
                                 capture_output=True, text=True, timeout=60)
        if checked.returncode != 0:
            said = [line for line in (checked.stderr + checked.stdout).splitlines()
                    if "ALERT" in line] or [f"exit code {checked.returncode}"]
            shutil.rmtree(self.sockets, ignore_errors=True)
            raise FrontError(f"HAProxy refuses its configuration: {' '.join(said[-3:])}")
        self._spawn()
        self._thread.start()
        return self

    def _spawn(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-W", "-db", "-f", str(self.cfg)],
                                     preexec_fn=_die_with_us, stdin=subprocess.DEVNULL)
        log.info("TLS front (HAProxy, PID %d) on %s", self.proc.pid, self.listen)

    def stop(self) -> None:
        """Stop the watch, then HAProxy (by its PID): connections in flight are closed."""
        self._stop.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        shutil.rmtree(self.sockets, ignore_errors=True)

    def check_once(self) -> bool:
        """Render the files again; on a change, write them and reload. True if reloaded."""
        proc = self.proc
        if proc is not None and proc.poll() is not None and not self._stop.is_set():
            log.error("the TLS front (HAProxy) exited with %s; starting it again",
                      proc.returncode)
            self._spawn()
        pairs = self.pairs()
        if not pairs:
            log.error("no certificate left to serve (no tls_cert and no domain): the front "
                      "keeps the last ones")
            return False
        files = render(pairs, self.folder)
        if files == self._files:
            return False
        self._write(files)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR2)  # master-worker reload: no refused connection
        log.info("TLS front reloaded: %d certificate(s), hosts: %s", len(pairs),
                 ", ".join(p.host for p in pairs if p.host) or "(default only)")
        return True

    def _write(self, files: dict[str, bytes]) -> None:
        for name, data in files.items():
            if self._files.get(name) != data:
                self._write_file(self.folder / name, data)
        for gone in set(self._files) - set(files):
            (self.folder / gone).unlink(missing_ok=True)
        self._files = dict(files)

    @staticmethod
    def _write_file(path: Path, data: bytes) -> None:
        """Private and whole: written aside (mode 0600), then renamed over."""
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check_once()
            except Exception:  # noqa: BLE001 - the front must outlive any surprise
                log.exception("TLS front watch failed")


def default_pair(cert: Path, key: Path) -> Pair | None:
    """The tls_cert/tls_key files as the default certificate, if they can be served (a
    half-written renewal is skipped until it is whole)."""
    try:
        check_pair(cert, key)
        return Pair(None, cert.read_bytes(), key.read_bytes())
    except (CertificateError, OSError) as exc:
        log.error("the tls_cert/tls_key pair cannot be served, the last one is kept: %s", exc)
        return None


class PairSource:
    """What the front serves now: the tls_cert pair (the default), then each domain's pair
    from the table, keys unsealed. A pair that cannot be used is logged and left out; a
    default that has become unusable (a renewal half-written) keeps its last good version."""

    def __init__(self, store: DomainStore, keyring: Keyring | None,
                 tls: tuple[Path, Path] | None) -> None:
        self.store, self.keyring, self.tls = store, keyring, tls
        self._default: Pair | None = None
        self._said: set[str] = set()

    def __call__(self) -> list[Pair]:
        from moorage.domains.store import SealError, unseal

        pairs: list[Pair] = []
        if self.tls is not None:
            self._default = default_pair(*self.tls) or self._default
            if self._default is not None:
                pairs.append(self._default)
        for host, cert, stored in self.store.pairs():
            try:
                pairs.append(Pair(host, cert.encode(), unseal(stored, host, self.keyring)))
            except SealError as exc:
                if host not in self._said:  # once, not every few seconds
                    log.error("custom domain left out: %s", exc)
                    self._said.add(host)
        return pairs
