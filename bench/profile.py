"""Where a Moorage worker spends its time under load: py-spy on every worker, summarized.

`record_workers` runs a load for a few seconds more than the profile, samples each worker with
`py-spy record --format raw` (collapsed stacks, one line per distinct stack with its count),
and summarizes: functions by self time, by inclusive time, and self time by package. The raw
files go to bench/results/ for flame graphs (speedscope.app opens them as they are).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


_PLUMBING = ("<frozen", "typer/", "granian/", "multiprocessing/", "asyncio/", "moorage/cli/",
             "moorage/__main__", "moorage/app.py")


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def _frame_key(frame: str) -> tuple[str, str]:
    """(function with a short file name, package) of one collapsed-stack frame."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip(), "?"
    func, rel = match["func"], match["file"]
    for marker in ("site-packages/", "/lib/python3"):  # py-spy usually shortens paths itself
        if marker in rel:
            rel = rel.split(marker, 1)[1]
            rel = rel.split("/", 1)[1] if marker.startswith("/lib") else rel
    parts = rel.split("/")
    package = parts[0].removesuffix(".py")
    if package == "moorage" and len(parts) > 1:
        package = "moorage." + parts[1].removesuffix(".py")
    return f"{func} ({rel})", package


def summarize(raw_files: list[Path], top: int = 15) -> dict[str, Any]:
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for raw in raw_files:
        for line in raw.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
            if not frames:
                continue
            total += n
            keys = [_frame_key(f) for f in frames]
            self_time[keys[-1][0]] += n
            packages[keys[-1][1]] += n
            for func in {k[0] for k in keys}:
                inclusive[func] += n

    # the frames every request passes through (process start, server, event loop) say nothing
    for func in list(inclusive):
        if func.split(" (", 1)[-1].startswith(_PLUMBING):
            del inclusive[func]

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in counter.most_common(top)] if total else []

    return {"samples": total, "self": share(self_time), "inclusive": share(inclusive),
            "packages": share(packages)}


def render(summary: dict[str, Any], what: str) -> str:
    lines = [f"py-spy profile of the Moorage workers during {what} "
             f"({summary['samples']} samples at 100 Hz; % of the samples)"]
    for title, key in (("self time by package", "packages"), ("self time", "self"),
                       ("inclusive time", "inclusive")):
        lines.append(f"  {title}:")
        lines.extend(f"    {pct:5.1f}%  {name}" for name, pct in summary[key])
    return "\n".join(lines)


async def record_workers(pids: list[int], seconds: float, outdir: Path,
                         run_load: Callable[[float], Any],
                         what: str = "manifest GET by tag with a bearer token") -> dict[str, Any]:
    tool = py_spy()
    if tool is None:
        return {"error": "py-spy is not installed (pip install py-spy)"}
    outdir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^a-z0-9]+", "-", what.lower()).strip("-")[:40]
    load_task = asyncio.create_task(asyncio.to_thread(run_load, seconds + 3))
    await asyncio.sleep(1.0)  # let the load reach its pace
    procs, files = [], []
    for pid in pids:
        out = outdir / f"profile-{stamp}-{slug}-worker-{pid}.txt"
        files.append(out)
        procs.append(subprocess.Popen(
            [tool, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
             "--rate", "100", "--format", "raw", "--nonblocking", "--output", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = [await asyncio.to_thread(p.communicate, None, seconds + 60) for p in procs]
    load_result = await load_task
    present = [f for f in files if f.exists()]
    if not present:
        return {"error": "py-spy wrote nothing: " + " | ".join(o[0][-500:] for o in logs)}
    summary = summarize(present)
    return {"what": what, "files": [str(f) for f in present],
            "load_during_profile": load_result, **summary, "summary": render(summary, what)}
