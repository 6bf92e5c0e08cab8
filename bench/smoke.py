"""Smoke check of the benchmark harness itself (not a benchmark, not part of `make test`).

    PYTHONPATH=src python bench/smoke.py        # or: make bench-smoke

Runs `bench/run.py --quick` (tiny content, one round, 2-second loads: about two minutes) and
checks what it produced: every scenario has figures for Moorage and, where there is one, for
Distribution; no load run saw errors where none are expected; the table, the JSON and the
profile are there. Then `bench/scan.py --quick` (a small image: ~15 s), checking that each
row has a time and that the scan found the packages the image holds, in the library and in
the scan jobs of the server it starts. Then `bench/blocking.py --quick` (~30 s), checking
that both manifest GET runs (no policy, a three-rule policy) have a rate and no errors, and
that the pull check was timed in process; then `bench/replication.py --quick` (~30 s), checking
that the rule's copy and skopeo's both have a rate; then `bench/scaleout.py --quick` (~2
min), checking that both deployments pulled without errors; then `bench/toggles.py --quick` (audit,
metrics, blocking on against off: each case has a rate and a CPU figure) and
`bench/startup.py --quick` (each start-up timed); then `bench/handler.py --quick` (~20 s),
checking that each in-process CPU figure was measured; then `bench/scaling.py --quick` (~2 min),
checking that every series has its figures and its verdict. Exits non-zero, naming
what is wrong, otherwise. The figures themselves mean nothing on such short runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
NO_DISTRIBUTION = {"sustained"}  # Moorage only


def main() -> int:
    before = set(RESULTS.glob("bench-*-quick.json")) if RESULTS.exists() else set()
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick",
                           *sys.argv[1:]], cwd=ROOT, timeout=900)
    problems: list[str] = []
    if proc.returncode != 0:
        problems.append(f"bench/run.py --quick exited with {proc.returncode}")
    produced = sorted(set(RESULTS.glob("bench-*-quick.json")) - before)
    if not produced:
        problems.append("no bench/results/bench-*-quick.json was written")
    else:
        result = json.loads(produced[-1].read_text())
        keys = [row["key"] for row in result["table"]]
        expected = ["manifest_get_anon", "manifest_get_token", "manifest_head_anon",
                    "manifest_head_token", "blob_get_1", "blob_get_8", "push_skopeo",
                    "chunked_upload", "monolithic_upload", "tags_first_page", "tags_walk",
                    "tags_all", "catalog_first_page",
                    "catalog_walk", "catalog_all", "pulls", "sustained", "memory"]
        for key in expected:
            if key not in keys:
                problems.append(f"scenario {key} is missing from the table")
        for row in result["table"]:
            key = row["key"]
            if row.get("error"):
                problems.append(f"{key} failed: {row['error']}")
                continue
            if not row.get("moorage"):
                problems.append(f"{key}: no Moorage figure")
            if key not in NO_DISTRIBUTION and not row.get("distribution"):
                problems.append(f"{key}: no Distribution figure")
            if result["meta"]["machine"].get("distribution_v3") and key not in NO_DISTRIBUTION \
                    and not row.get("distribution_v3"):
                problems.append(f"{key}: no Distribution v3 figure")
            if row.get("limit_kind") and not row.get("limit"):
                problems.append(f"{key}: no {row['limit_kind']} limit figure")
            for label in ("moorage", "distribution", "distribution_v3", "limit"):
                figures = row.get(label) or {}
                if figures.get("errors"):
                    problems.append(f"{key}: {figures['errors']} errors on {label}")
            if row["metric"] not in (row.get("moorage") or {}):
                problems.append(f"{key}: the figure {row['metric']} is missing")
        if "| scenario |" not in result.get("markdown", ""):
            problems.append("the table is missing from the JSON")
        profile = (result.get("profiles") or {}).get("manifest") or {}
        if not profile.get("samples"):
            problems.append(f"no py-spy profile: {profile.get('error', 'nothing recorded')}")
        for label, lines in (result["meta"].get("server_log_errors") or {}).items():
            if lines:
                problems.append(f"{label} logged errors: {lines[:2]}")
    problems += scan_problems()
    problems += blocking_problems()
    problems += replication_problems()
    problems += scaleout_problems()
    problems += toggles_problems()
    problems += startup_problems()
    problems += handler_problems()
    problems += scaling_problems()
    if problems:
        print("\nbench smoke check FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"\nbench smoke check passed ({produced[-1].relative_to(ROOT)})", file=sys.stderr)
    return 0


def scan_problems() -> list[str]:
    """bench/scan.py --quick: every row timed, the image's packages found, the re-import of
    unchanged advisories writing nothing; the server's scan jobs finding what the library
    found, with the job's own times, and nothing in the server's log."""
    latest = RESULTS / "scan-latest.json"
    before = latest.stat().st_mtime if latest.exists() else 0.0
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "scan.py"), "--quick"],
                          cwd=ROOT, timeout=600)
    if proc.returncode != 0:
        return [f"bench/scan.py --quick exited with {proc.returncode}"]
    if not latest.exists() or latest.stat().st_mtime <= before:
        return ["bench/scan.py wrote no bench/results/scan-latest.json"]
    result = json.loads(latest.read_text())
    rows, shape = result["rows"], result["shape"]
    problems = [f"scan row {key}: no time" for key in
                ("import", "reimport", "scan_cold", "scan_warm", "scan_second_image",
                 "job_cold", "job_warm")
                if not rows.get(key, {}).get("median_s")]
    if rows.get("import", {}).get("added", 0) < 2000:
        problems.append(f"the PyPA import added {rows.get('import', {}).get('added')} "
                        "advisories, not ~2,650")
    if rows.get("reimport", {}).get("writes") != 0:
        problems.append("the re-import of unchanged advisories wrote rows")
    expected = {"deb": shape["dpkg"], "python": shape["python"], "npm": shape["npm"],
                "java-archive": shape["jars"]}
    for key in ("scan_cold", "scan_warm", "scan_second_image"):
        row = rows.get(key, {})
        if row.get("kinds") != expected:
            problems.append(f"{key} found {row.get('kinds')}, the image holds {expected}")
        if not row.get("findings"):
            problems.append(f"{key}: no findings")
        if row.get("problems"):
            problems.append(f"{key}: inventory problems {row['problems']}")
    library = rows.get("scan_cold", {})
    for key in ("job_cold", "job_warm"):
        row = rows.get(key, {})
        if not row.get("job_seconds", 0) > 0:
            problems.append(f"{key}: no finished_at - started_at from the report")
        if (row.get("packages"), row.get("findings")) != (library.get("packages"),
                                                          library.get("findings")):
            problems.append(f"{key}: {row.get('packages')} packages and {row.get('findings')} "
                            f"findings; the library found {library.get('packages')} and "
                            f"{library.get('findings')}")
        if row.get("problems"):
            problems.append(f"{key}: report problems {row['problems']}")
    if (result.get("server") or {}).get("server_log_errors"):
        problems.append(f"the scan server logged errors: "
                        f"{result['server']['server_log_errors'][:2]}")
    return problems


def quick_run(script: str) -> tuple[subprocess.CompletedProcess[str], dict | None, list[str]]:  # type: ignore[type-arg]
    """`bench/<script> --quick`: the process, the raw figures it printed last on stderr (None
    when it failed or printed none), and the problem if so."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--quick"],
                          cwd=ROOT, timeout=900, capture_output=True, text=True)
    if proc.returncode != 0:
        return proc, None, [f"bench/{script} --quick exited with {proc.returncode}: "
                            f"{proc.stderr[-500:]}"]
    try:
        return proc, json.loads(proc.stderr.strip().splitlines()[-1]), []
    except (ValueError, IndexError):
        return proc, None, [f"bench/{script} printed no raw figures"]


def scaleout_problems() -> list[str]:
    """bench/scaleout.py --quick: both deployments (embedded; two PostgreSQL + Redis + S3
    replicas) pulled without errors, each server's memory was read, and no server logged
    an error. The rates of a 3-second run at 100 pulls/s are not checked."""
    before = set(RESULTS.glob("scaleout-*-quick.json"))
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "scaleout.py"), "--quick"],
                          cwd=ROOT, timeout=900)
    if proc.returncode != 0:
        return [f"bench/scaleout.py --quick exited with {proc.returncode}"]
    produced = sorted(set(RESULTS.glob("scaleout-*-quick.json")) - before)
    if not produced:
        return ["bench/scaleout.py wrote no bench/results/scaleout-*-quick.json"]
    result = json.loads(produced[-1].read_text())
    problems = []
    for label, runs in result["runs"].items():
        if not runs or not all(r["pulls"] for r in runs):
            problems.append(f"bench/scaleout.py: no pulls on {label}")
        if any(r["errors"] for r in runs):
            problems.append(f"bench/scaleout.py: errors on {label}: "
                            f"{[r['error_samples'] for r in runs][:2]}")
        if not result["memory"].get(label):
            problems.append(f"bench/scaleout.py: no memory figures for {label}")
    problems += [f"bench/scaleout.py: {label} logged errors: {lines[:2]}"
                 for label, lines in result["server_log_errors"].items() if lines]
    return problems


def blocking_problems() -> list[str]:
    """bench/blocking.py --quick: both runs measured without errors (the guarded image
    passes its policy), and the in-process timings printed."""
    proc, raw, problems = quick_run("blocking.py")
    if raw is None or "runs" not in raw:
        return problems or ["bench/blocking.py printed no raw figures"]
    runs = raw["runs"]
    for ns in ("open", "guarded"):
        if not runs.get(ns) or not all(r["rps"] > 0 for r in runs[ns]):
            problems.append(f"bench/blocking.py: no rate for {ns}")
        elif any(r["errors"] for r in runs[ns]):
            problems.append(f"bench/blocking.py: errors in the {ns} runs")
    if "the pull check alone" not in proc.stdout:
        problems.append("bench/blocking.py: the in-process timing is missing")
    return problems


def replication_problems() -> list[str]:
    """bench/replication.py --quick: both copies (the rule, skopeo) have a rate and neither
    server logged an error."""
    _, raw, problems = quick_run("replication.py")
    if raw is None:
        return problems
    problems += [f"bench/replication.py: no rate for {how}" for how in ("rule", "skopeo")
                if not raw["rates_mib_s"].get(how) or min(raw["rates_mib_s"][how]) <= 0]
    problems += [f"bench/replication.py: {label} logged errors: {lines[:2]}"
                 for label, lines in raw["server_errors"].items() if lines]
    return problems


def toggles_problems() -> list[str]:
    """bench/toggles.py --quick: every case (on, and each layer off) has a GET rate, a pull
    rate and a CPU figure per request, without errors; no server logged one."""
    _, raw, problems = quick_run("toggles.py")
    if raw is None:
        return problems
    for case, by in raw["runs"].items():
        for kind in ("get", "pulls"):
            runs = by.get(kind) or []
            if not runs or not all(r.get("cpu_us", 0) > 0 for r in runs):
                problems.append(f"bench/toggles.py: no CPU per request for {case} {kind}")
            elif any(r["errors"] for r in runs):
                problems.append(f"bench/toggles.py: errors in {case} {kind}")
    problems += [f"bench/toggles.py: {label} logged errors: {lines[:2]}"
                 for label, lines in raw["server_errors"].items() if lines]
    return problems


def startup_problems() -> list[str]:
    """bench/startup.py --quick: each command timed."""
    _, raw, problems = quick_run("startup.py")
    if raw is None:
        return problems
    for label, by in raw["times"].items():
        problems += [f"bench/startup.py: no time for {key} ({label})"
                     for key in ("help", "repo_list", "serve_first", "serve_restart")
                     if not by.get(key)]
    return problems
def handler_problems() -> list[str]:
    """bench/handler.py --quick: every in-process figure measured (the manifest GET with a
    token, the HEAD, the anonymous GET and the audit writer's cost per entry)."""
    _, raw, problems = quick_run("handler.py")
    if raw is None:
        return problems
    return [f"bench/handler.py: no figure {name}" for name in
            ("get_us", "head_us", "anon_get_us", "audit_us") if not raw.get(name)]


def scaling_problems() -> list[str]:
    """bench/scaling.py --quick: each series measured at every size, with a growth verdict,
    and GC collected exactly the garbage seeded (the script checks that itself)."""
    out = RESULTS / "scaling-latest.json"
    before = out.stat().st_mtime if out.exists() else 0.0
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "scaling.py"), "--quick"],
                          cwd=ROOT, timeout=900, capture_output=True, text=True)
    if proc.returncode != 0:
        return [f"bench/scaling.py --quick exited with {proc.returncode}: {proc.stderr[-500:]}"
                f"{proc.stdout[-500:]}"]
    if not out.exists() or out.stat().st_mtime <= before:
        return ["bench/scaling.py wrote no bench/results/scaling-latest.json"]
    series = json.loads(out.read_text())["series"]
    problems = []
    for name, keys in (("tags", ["manifest_get", "tags_first_page"]),
                       ("repos", ["catalog_first_page", "namespace_listing"]),
                       ("gc", ["per_blob"])):
        if name not in series or len(series[name]["rows"]) < 2:
            problems.append(f"bench/scaling.py: the {name} series is missing or has one size")
            continue
        problems += [f"bench/scaling.py: {name} {key} has no verdict" for key in keys
                     if series[name].get(key, {}).get("verdict") not in
                     ("flat", "logarithmic", "grows")]
    return problems


if __name__ == "__main__":
    sys.exit(main())
