"""The processes of `moorage serve`: workers live only as long as their main process, and a
new server does not start on a port some other process is listening on.

granian's main process forks the workers (multiprocessing's `fork` start method on Linux)
and each worker binds the port itself with SO_REUSEPORT. Killed with SIGKILL alone (the OOM
killer picks one process), the main process used to leave its workers running under PID 1,
still answering on the port, and the next server's workers bound beside them: the kernel
then spread connections over both generations.

Two defences, one on each side:

- `die_with_parent`, in each worker before it builds the app: the kernel sends the worker
  SIGTERM when its parent dies (`PR_SET_PDEATHSIG`), which granian's worker answers with its
  graceful shutdown (it closes its listening socket at once, finishes requests in flight,
  runs the lifespan shutdown). A worker whose parent died before it got there exits at once.
- `port_in_use`, in `serve` before granian starts: a plain bind, without SO_REUSEPORT, fails
  if any process listens on the address, whoever it is.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import socket
import sys
import time
from collections.abc import Callable

# Set by `moorage serve` in the main process's environment before granian forks: the PID a
# worker's parent must have. Absent, the process is not a worker of `moorage serve`.
SERVER_PID_ENV = "MOORAGE_SERVER_PID"
# The secret of this start's TLS front (domains/front.py): set for the workers when
# `moorage serve` runs HAProxy in front of them; its requests carry it (web/front.py).
FRONT_SECRET_ENV = "MOORAGE_FRONT_SECRET"
_PR_SET_PDEATHSIG = 1


def export_server_pid() -> None:
    """Called by the main process before it starts its workers (they inherit the variable)."""
    os.environ[SERVER_PID_ENV] = str(os.getpid())


def die_with_parent() -> None:
    """Make this worker exit when the `moorage serve` main process that forked it dies.

    The inherited SIGTERM handler (granian's main-process handler, a no-op in a worker) is
    reset first, so that SIGTERM ends a worker still building its app; granian replaces it
    with its graceful-shutdown handler once the worker serves. PR_SET_PDEATHSIG fires when the
    thread that forked us exits; granian forks from its main thread, which lives as long as
    its process. The parent check after it covers a parent that died before the call.
    """
    expected = os.environ.get(SERVER_PID_ENV, "")
    if not expected.isdigit() or sys.platform != "linux":
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"prctl(PR_SET_PDEATHSIG): {os.strerror(code)}")
    if os.getppid() != int(expected):
        raise SystemExit(f"moorage: the server process {expected} exited before this worker "
                         f"(PID {os.getpid()}) started; exiting")


def port_in_use(host: str, port: int) -> OSError | None:
    """The error a plain bind to host:port gets because something listens there, else None.

    SO_REUSEADDR lets the bind ignore connections in TIME_WAIT (a server restarted a moment
    ago) but not a listening socket. Any other failure (a bad address, a privileged port) is
    left for granian to report.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror:
        return None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return exc if exc.errno == errno.EADDRINUSE else None
    return None


def wait_for_port(host: str, port: int, grace: float,
                  notice: Callable[[str], None] = lambda _message: None,
                  clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep) -> OSError | None:
    """`port_in_use`, given `grace` seconds to become free: the workers of a generation that
    was just killed may take a moment to exit, and a new server must not fail for that."""
    deadline = clock() + grace
    busy = port_in_use(host, port)
    if busy is not None:
        notice(f"{host}:{port} is in use; waiting up to {grace:g} s for it to be released")
    while busy is not None and clock() < deadline:
        sleep(0.05)
        busy = port_in_use(host, port)
    return busy
