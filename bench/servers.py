"""The two servers under test, each a real process on a free loopback port, stopped by PID.

Moorage runs as `moorage serve` on its embedded defaults (SQLite, the local disk) with token
auth on and an administrator password; CNCF Distribution runs as Debian's `docker-registry
serve` on the filesystem driver. Peak memory is read from /proc (VmHWM) over each server's
process tree: granian's main process plus its worker processes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ADMIN_USER = "admin"
ADMIN_PASSWORD = "bench-admin-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    kids = _children()
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(kids.get(p, []))
    return found


def _proc_kib(path: str, field: str) -> int:
    """A `kB` field of a /proc file, 0 if the process is gone."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def status_kib(pid: int, key: str) -> int:
    """A field of /proc/PID/status (VmHWM, VmRSS)."""
    return _proc_kib(f"/proc/{pid}/status", key)


def cpu_seconds(pids: list[int], waited_children: bool = False) -> float:
    """User + system CPU seconds of these processes so far (all their threads, live and
    ended); with `waited_children`, also that of the children each has waited for (a
    short-lived helper process such as `serve`'s preparation child). Gone processes count 0."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime: fields 14–17 of proc(5)
        ticks += sum(int(f) for f in fields[11:15 if waited_children else 13])
    return ticks / os.sysconf("SC_CLK_TCK")


def pss_kib(pid: int) -> int:
    """Proportional set size now: shared pages (forked workers) counted once overall."""
    return _proc_kib(f"/proc/{pid}/smaps_rollup", "Pss")


def command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
    except OSError:
        return "?"


@dataclass
class Server:
    label: str
    work: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    auth: bool = False
    peak_pss_kib: int = 0  # the most the whole tree has held at once, sampled (see _sample)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def log_path(self) -> Path:
        return self.work / f"{self.label}.log"

    def command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def start(self, timeout: float = 60.0) -> "Server":
        cmd, env = self.command()
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **env}, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited with {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                if self.answers():
                    if self.ready():
                        threading.Thread(target=self._sample, daemon=True,
                                         name=f"{self.label}-pss").start()
                        return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.label} did not answer within {timeout}s:\n{self.log_tail()}")

    def answers(self) -> bool:
        return httpx.get(f"{self.url}/v2/", timeout=1.0).status_code in (200, 401)

    def ready(self) -> bool:
        return True

    def _sample(self, interval: float = 1.0) -> None:
        """Sum the PSS of every process of the tree once a second, keeping the peak.

        PSS splits each shared page among the processes that map it, so the sum is the
        physical memory the server holds. Summing each process's own peak RSS (VmHWM) instead
        counts pages that forked workers share with their parent once per process, and adds
        peaks that never happened at the same moment: it is reported too, as an upper bound.
        """
        pids: list[int] = []
        listed = 0.0
        while self.proc is not None and self.proc.poll() is None:
            if time.monotonic() - listed > 2.0:  # new workers are rare; /proc walks are not free
                pids, listed = self.pids(), time.monotonic()
            self.peak_pss_kib = max(self.peak_pss_kib, sum(pss_kib(p) for p in pids))
            time.sleep(interval)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def log_errors(self, limit: int = 20) -> list[str]:
        """Lines of the server's log that report errors (tracebacks, ERROR, panics)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        marks = ("Traceback", " ERROR ", "[ERROR]", "level=error", "panic:")
        # Distribution logs every 4xx answer (a client checking whether a blob exists) as
        # level=error; those are answers, not faults
        # and a load tool that stops mid-response leaves "broken pipe" lines behind
        benign = ("http.response.status=4", "broken pipe", "connection reset by peer")
        return [line[:300] for line in lines if any(m in line for m in marks)
                and not any(b in line for b in benign)][:limit]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: only its tree
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self._log.close()

    def pids(self) -> list[int]:
        assert self.proc is not None
        return process_tree(self.proc.pid)

    def worker_pids(self) -> list[int]:
        """Processes that answer requests (granian workers; Distribution's only process)."""
        return self.pids()

    def memory(self) -> dict[str, object]:
        """Peak (VmHWM) and current (VmRSS) resident memory of each process of the tree, MiB."""
        procs = []
        for pid in self.pids():
            procs.append({"pid": pid, "cmd": command_name(pid),
                          "peak_mib": round(status_kib(pid, "VmHWM") / 1024, 1),
                          "rss_mib": round(status_kib(pid, "VmRSS") / 1024, 1),
                          "pss_mib": round(pss_kib(pid) / 1024, 1)})
        return {"peak_pss_mib": round(self.peak_pss_kib / 1024, 1),
                "total_peak_mib": round(sum(p["peak_mib"] for p in procs), 1),  # type: ignore[misc]
                "max_process_peak_mib": max((p["peak_mib"] for p in procs), default=0),
                "total_pss_now_mib": round(sum(p["pss_mib"] for p in procs), 1),  # type: ignore[misc]
                "processes": procs}


@dataclass
class Moorage(Server):
    workers: int = 2
    extra_env: dict[str, str] = field(default_factory=dict)
    auth: bool = True
    # layers taken out for the on/off rows (bench/toggled.py): "audit", "metrics"
    off: tuple[str, ...] = ()

    def command(self) -> tuple[list[str], dict[str, str]]:
        src = Path(__file__).resolve().parent.parent / "src"
        env = {
            "MOORAGE_ADMIN_PASSWORD": ADMIN_PASSWORD,
            # the catalog scenario holds 10,000 repositories; the advanced edition's quota is 5,000
            "MOORAGE_QUOTA_REPOSITORIES": "100000",
            # no scan of each pushed tag: a scan job runs `syft`, a child of a worker, whose
            # memory and CPU would count as the server's (its own rows: bench/scan.py)
            "MOORAGE_SCAN_ON_PUSH": "false",
            "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}".rstrip(os.pathsep),
            **self.extra_env,
        }
        launcher = ["-m", "moorage"]
        if self.off:
            launcher = [str(Path(__file__).resolve().parent / "toggled.py")]
            env["MOORAGE_BENCH_OFF"] = ",".join(self.off)
        return ([sys.executable, *launcher, "serve", "--listen", self.host,
                 "--data-dir", str(self.data_dir), "--workers", str(self.workers)],
                env)

    @property
    def data_dir(self) -> Path:
        return self.work / "moorage-data"

    def ready(self) -> bool:
        # every worker must be up, or the first seconds of load go to one worker only
        return len(self.worker_pids()) >= self.workers

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        return [p for p in self.pids() if p != self.proc.pid]

    @property
    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{ADMIN_USER}:{ADMIN_PASSWORD}".encode()).decode()


DISTRIBUTION_CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: {addr}
"""


@dataclass
class Distribution(Server):
    @property
    def data_dir(self) -> Path:
        return self.work / "distribution-data"

    def command(self) -> tuple[list[str], dict[str, str]]:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise RuntimeError("docker-registry not found: run scripts/install-system-deps.sh")
        config = self.work / "distribution.yml"
        config.write_text(DISTRIBUTION_CONFIG.format(root=self.data_dir,
                                                     addr=self.host))
        return [binary, "serve", str(config)], {}

    @staticmethod
    def version() -> str:
        out = subprocess.run(["docker-registry", "--version"], capture_output=True, text=True)
        return out.stdout.strip().rpartition(" ")[2] or "?"


# -- Distribution v3.1.1: the current upstream release, when its binary is at hand -------------
V3_ENV = "DISTRIBUTION_V3"
V3_PEER_DIR = ("..", "shared", "peers", "distribution-v3.1.1")  # relative to the repository


def find_v3(root: Path, work: Path) -> tuple[Path | None, str]:
    """(the v3 `registry` binary to run, where it came from), or (None, why not).

    `$DISTRIBUTION_V3` names a binary (or a folder holding registry.xz); otherwise the
    workspace's peer folder next to the repository is used when it exists. A compressed
    binary is unpacked into `work` and must match the folder's registry.sha256.
    """
    given = os.environ.get(V3_ENV, "")
    source = Path(given) if given else root.joinpath(*V3_PEER_DIR).resolve()
    if not given and not source.exists():
        return None, (f"no Distribution v3 binary (set {V3_ENV}=path to compare with "
                      "Distribution v3.1.1 too)")
    if source.is_dir():
        source = source / "registry.xz"
    if not source.is_file():
        raise RuntimeError(f"{V3_ENV}: {source} is not a file")
    if source.suffix != ".xz":
        return source, str(source)
    dest = work / "distribution-v3" / "registry"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as out:
        subprocess.run(["xz", "-dc", str(source)], stdout=out, check=True, timeout=120)
    expected_file = source.with_name("registry.sha256")
    if expected_file.exists():
        expected = expected_file.read_text().split()[0].strip()
        actual = hashlib.sha256(dest.read_bytes()).hexdigest()
        if actual != expected:
            dest.unlink()
            raise RuntimeError(f"{source} unpacks to sha256 {actual}, not {expected} "
                               f"({expected_file})")
    dest.chmod(0o755)
    return dest, f"{source} (sha256 checked)" if expected_file.exists() else str(source)


@dataclass
class DistributionV3(Distribution):
    binary: Path = Path("registry")

    @property
    def data_dir(self) -> Path:
        return self.work / "distribution-v3-data"

    def command(self) -> tuple[list[str], dict[str, str]]:
        config = self.work / "distribution-v3.yml"
        config.write_text(DISTRIBUTION_CONFIG.format(root=self.data_dir, addr=self.host))
        # without it, v3 tries to export traces to localhost:4318 and encodes every span
        return [str(self.binary), "serve", str(config)], {"OTEL_TRACES_EXPORTER": "none"}

    def binary_version(self) -> str:
        out = subprocess.run([str(self.binary), "--version"], capture_output=True, text=True,
                             timeout=10)
        return out.stdout.strip().split(" ")[-1] if out.stdout.strip() else "?"


# -- the limits (bench/limits.py) ----------------------------------------------------------------
@dataclass
class BareHandler(Server):
    """granian + an ASGI handler that answers with the manifest's bytes, nothing else."""
    workers: int = 2
    manifest: Path = Path()
    file: Path | None = None  # a blob, answered at /blobs/ paths with granian's file response

    def command(self) -> tuple[list[str], dict[str, str]]:
        root = Path(__file__).resolve().parent.parent
        extra = ["--file", str(self.file)] if self.file else []
        return ([sys.executable, str(root / "bench" / "limits.py"), "bare", "--listen",
                 self.host, "--workers", str(self.workers), "--manifest", str(self.manifest),
                 *extra], {"PYTHONPATH": str(root)})

    def ready(self) -> bool:
        return len(self.pids()) > self.workers


@dataclass
class SendfileServer(Server):
    """N asyncio processes answering every GET with one file through loop.sendfile."""
    workers: int = 2
    file: Path = Path()

    def command(self) -> tuple[list[str], dict[str, str]]:
        root = Path(__file__).resolve().parent.parent
        return ([sys.executable, str(root / "bench" / "limits.py"), "sendfile", "--listen",
                 self.host, "--workers", str(self.workers), "--file", str(self.file)],
                {"PYTHONPATH": str(root)})

    def answers(self) -> bool:  # a GET would send the whole blob
        return httpx.head(f"{self.url}/", timeout=1.0).status_code == 200

    def ready(self) -> bool:
        return len(self.pids()) > self.workers
