"""Start-up: how long `moorage --help`, `moorage repo list` and `moorage serve` take to answer.

    PYTHONPATH=src python bench/startup.py [--runs 7] [--baseline REF] [--quick]

Each figure is the wall time of a whole process, exec to exit (or, for `serve`, exec to the
first answer of `GET /v2/`), over `--runs` runs: median and minimum (the minimum is the figure
least disturbed by the rest of a shared machine), and the CPU time the process used (for
`serve`, all its processes, at the first answer), which that load disturbs much less.

- `moorage --help`: the CLI builds its command tree (every command module is imported) and
  prints; the goal is under 0.3 s.
- `moorage repo list`: against a running `moorage serve` (bench/servers.py's Moorage, 2
  workers, 20 repositories), logged in as a user is (`moorage login --password-stdin`, the
  token kept in the credentials file of a private XDG_CONFIG_HOME).
- `moorage serve` to the first answer: on its embedded defaults (SQLite, the local disk), 2
  workers, a new data folder each run (the first start: migrations, keys, the
  administrator's password hash) and the same folder again (a restart).

`--baseline REF` times the CLI of another commit too (`git archive REF src` into a temporary
folder), alternating run by run with this checkout: the before and after of a change in one
run. Both trees are byte-compiled first (this machine sets PYTHONDONTWRITEBYTECODE, and
compiling the sources anew in every process would be most of what is measured).
Prints; asserts nothing. `BENCH_QUICK=1` (or --quick): 2 runs of each.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.content import push_image, small_image  # noqa: E402
from bench.rawhttp import Connection  # noqa: E402
from bench.servers import (ADMIN_PASSWORD, ADMIN_USER, Moorage, cpu_seconds,  # noqa: E402
                           free_port, process_tree)

HANG = 120.0  # bounds a hang only


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def environment(src: Path, config_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env.update({"PYTHONPATH": str(src), "XDG_CONFIG_HOME": str(config_home), "NO_COLOR": "1"})
    return env


def children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def timed(cmd: list[str], env: dict[str, str], stdin: str | None = None
          ) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of `cmd`."""
    cpu = children_cpu()
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, input=stdin, capture_output=True, text=True,
                          timeout=HANG)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[2:])} exited with {done.returncode}: "
                           f"{done.stderr[-500:]}")
    return wall, children_cpu() - cpu



def answers(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        conn.request("GET", "/v2/")
        return conn.getresponse().status in (200, 401)
    except OSError:
        return False
    finally:
        conn.close()


def serve_once(src: Path, data: Path, log_path: Path, workers: int) -> tuple[float, float]:
    """exec of `moorage serve` to its first answer on /v2/: (wall seconds, CPU seconds of
    its processes by then); then stopped by PID."""
    port = free_port()
    env = {**environment(src, data.parent / "cli"), "MOORAGE_ADMIN_PASSWORD": ADMIN_PASSWORD}
    with open(log_path, "ab") as out:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "moorage", "serve", "--listen",
                                 f"127.0.0.1:{port}", "--data-dir", str(data), "--workers",
                                 str(workers)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            while not answers(port):
                if proc.poll() is not None:
                    raise RuntimeError(f"moorage serve exited with {proc.returncode}: "
                                       f"{log_path.read_text(errors='replace')[-1000:]}")
                if time.perf_counter() - started > HANG:
                    raise RuntimeError("moorage serve did not answer")
                time.sleep(0.01)
            wall = time.perf_counter() - started
            return wall, cpu_seconds(process_tree(proc.pid), waited_children=True)
        finally:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(5)


async def seed(server: Moorage, repositories: int = 20) -> None:
    """Small images pushed to `library/app-NN`, so that `repo list` has a page to print."""
    conn = Connection("127.0.0.1", server.port)
    try:
        for i in range(repositories):
            await push_image(conn, f"library/app-{i:02d}", "latest", small_image(f"start-{i}"),
                             {"authorization": server.basic})
    finally:
        await conn.close()


def baseline_tree(ref: str, work: Path) -> Path:
    """`src` of commit `ref`, unpacked under `work`."""
    dest = work / f"baseline-{ref.replace('/', '_')}"
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"], check=True,
                             capture_output=True, timeout=HANG).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True, timeout=HANG)
    return dest / "src"


def compiled(src: Path) -> Path:
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(src)],
                   check=True, timeout=600, env={k: v for k, v in os.environ.items()
                                                 if k != "PYTHONDONTWRITEBYTECODE"})
    return src


def summary(values: list[list[float]]) -> dict[str, float]:
    walls, cpus = [v[0] for v in values], [v[1] for v in values]
    return {"median_s": statistics.median(walls), "min_s": min(walls),
            "cpu_median_s": statistics.median(cpus), "runs": len(values)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--serve-runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline", help="a git ref whose CLI is timed too, alternating")
    parser.add_argument("--quick", action="store_true",
                        default=os.environ.get("BENCH_QUICK") == "1")
    o = parser.parse_args(argv)
    if o.quick:
        o.runs, o.serve_runs = 2, 1
    work = Path(tempfile.mkdtemp(prefix="moorage-bench-startup-"))
    trees = {"this checkout": ROOT / "src"}
    times: dict[str, dict[str, list[tuple[float, float]]]] = {}
    server = Moorage("moorage-startup", work / "server", extra_env={"MOORAGE_SCAN_SYFT": "off"})
    try:
        if o.baseline:
            trees[f"baseline {o.baseline}"] = baseline_tree(o.baseline, work)
        for src in trees.values():
            compiled(src)
        server.work.mkdir()
        server.workers = o.workers
        server.start(timeout=300)  # bounds a hang only
        asyncio.run(seed(server))
        for label, src in trees.items():
            home = work / f"cli-{len(times)}"
            env = environment(src, home)
            timed([sys.executable, "-m", "moorage", "login", server.url, "--username",
                   ADMIN_USER, "--password-stdin"], env, stdin=ADMIN_PASSWORD + "\n")
            times[label] = {"help": [], "repo_list": [], "serve_first": [],
                            "serve_restart": []}
        for r in range(o.runs):
            for label, src in trees.items():
                env = environment(src, work / f"cli-{list(trees).index(label)}")
                times[label]["help"].append(timed([sys.executable, "-m", "moorage", "--help"],
                                                  env))
                times[label]["repo_list"].append(timed(
                    [sys.executable, "-m", "moorage", "repo", "list"], env))
        log(f"CLI timed ({o.runs} runs each)")
        for r in range(o.serve_runs):
            for i, (label, src) in enumerate(trees.items()):
                data = work / f"serve-{i}-{r}" / "moorage-data"
                data.parent.mkdir()
                log_path = data.parent / "serve.log"
                times[label]["serve_first"].append(serve_once(src, data, log_path, o.workers))
                times[label]["serve_restart"].append(serve_once(src, data, log_path,
                                                                o.workers))
        log(f"serve timed ({o.serve_runs} runs each, first start and restart)")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(times, o)
    return 0


NAMES = {"help": "`moorage --help`", "repo_list": "`moorage repo list` (20 repositories, "
         "logged in)", "serve_first": "`moorage serve` to the first /v2/ answer, new data "
         "folder", "serve_restart": "`moorage serve` to the first /v2/ answer, restart"}


def report(times: dict[str, dict[str, list[tuple[float, float]]]], o: argparse.Namespace) -> None:
    labels = list(times)
    print()
    print(f"Start-up (wall time of the whole process, median and min, and its CPU time, "
          f"median; {o.runs} runs of the CLI, {o.serve_runs} of serve with {o.workers} "
          f"workers: CPU of all its processes at the first answer)")
    print("| command | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for key, name in NAMES.items():
        cells = []
        for label in labels:
            s = summary(times[label][key])
            cells.append(f"{s['median_s']:.3f} s (min {s['min_s']:.3f} s); CPU "
                         f"{s['cpu_median_s']:.3f} s")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(json.dumps({"times": times, "summary": {
        label: {key: summary(v) for key, v in by.items()} for label, by in times.items()}}),
        file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
