"""Replication throughput: `make bench` runs it after threat blocking's.

    PYTHONPATH=src python bench/replication.py [--rounds 3] [--size-mib 256] [--quick]

Two `moorage serve` processes (bench/servers.py's Moorage: SQLite, the local disk, token auth,
the advanced edition), `source` and `destination`. Each round pushes two new images to the
source (one layer of `--size-mib` MiB of random bytes plus a config; new bytes every time, so
nothing is already on the destination), then copies one of them to the destination with a
push replication rule (created with the filter naming that one tag, run by hand through the
API; timed from the run request to the execution reading `succeeded`) and the other with
`skopeo copy` between the same two instances (docker:// to docker://, both with credentials).
Medians of `--rounds` rounds, in MiB/s of the image's bytes, side by side with their ratio.
The rows alternate, so the noise of a shared machine falls on both. Prints; asserts nothing.
`BENCH_QUICK=1` (or --quick): one round of a 32 MiB image.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402
from bench.content import push_layout  # noqa: E402
from bench.servers import ADMIN_PASSWORD, ADMIN_USER, Moorage  # noqa: E402

HANG = 900.0  # bounds a hang only
MiB = 1 << 20
REPO = "bench/app"
CREDS = f"{ADMIN_USER}:{ADMIN_PASSWORD}"
ENV = {"MOORAGE_EDITION": "advanced", "MOORAGE_SCAN_ON_PUSH": "false",
       "MOORAGE_SCAN_SYFT": "off"}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def seed(source: Moorage, work: Path, tag: str, size_mib: int, seed_no: int) -> int:
    """An image of one `size_mib` MiB random layer pushed to the source as `tag` (skopeo from
    an OCI layout); returns the bytes of its blobs and manifest."""
    layout = work / f"layout-{tag}"
    _, total, _ = push_layout(layout, tag, size_mib, 0, 0, seed=seed_no)
    load.skopeo_push(str(layout), tag, f"{source.host}/{REPO}:{tag}", CREDS, HANG)
    shutil.rmtree(layout, ignore_errors=True)
    return total


def by_rule(api: httpx.Client, destination: Moorage, tag: str) -> float:
    """Seconds from the run request of a push rule copying `REPO:tag` to its success."""
    name = f"bench-{tag}"
    resp = api.post("/replication/rules", json={
        "name": name, "mode": "push", "url": destination.url, "username": ADMIN_USER,
        "password": ADMIN_PASSWORD, "repositories": REPO, "tags": tag, "on_event": False})
    if resp.status_code != 201:
        raise RuntimeError(f"rule {name}: {resp.status_code} {resp.text[:300]}")
    started = time.perf_counter()
    resp = api.post(f"/replication/rules/{name}/run")
    if resp.status_code not in (200, 201, 202):
        raise RuntimeError(f"run {name}: {resp.status_code} {resp.text[:300]}")
    execution = resp.json()["id"]
    deadline = time.monotonic() + HANG
    while True:
        found = api.get(f"/replication/executions/{execution}").json()
        if found["status"] == "succeeded":
            seconds = time.perf_counter() - started
            break
        if found["status"] in ("failed", "stopped") or time.monotonic() > deadline:
            text = api.get(f"/replication/executions/{execution}/log").text
            raise RuntimeError(f"execution {execution}: {found} {text[-1500:]}")
        time.sleep(0.05)
    api.delete(f"/replication/rules/{name}")
    return seconds


def by_skopeo(source: Moorage, destination: Moorage, tag: str) -> float:
    cmd = ["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
           "--src-creds", CREDS, "--dest-creds", CREDS,
           f"docker://{source.host}/{REPO}:{tag}", f"docker://{destination.host}/{REPO}:{tag}"]
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=HANG)
    seconds = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"skopeo copy {tag}: {out.stderr[-1500:]}")
    return seconds


def check_copied(destination: Moorage, tags: list[str]) -> None:
    with httpx.Client(base_url=f"{destination.url}/api/v1", timeout=120,
                      auth=(ADMIN_USER, ADMIN_PASSWORD)) as api:
        for tag in tags:
            resp = api.get(f"/repositories/{REPO}/manifests/{tag}")
            if resp.status_code != 200:
                raise RuntimeError(f"{REPO}:{tag} is not on the destination: "
                                   f"{resp.status_code} {resp.text[:200]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--quick", action="store_true",
                        default=os.environ.get("BENCH_QUICK") == "1")
    o = parser.parse_args(argv)
    if o.quick:
        o.rounds, o.size_mib = 1, 32
    work = Path(tempfile.mkdtemp(prefix="moorage-bench-replication-"))
    source = Moorage("moorage-source", work / "source", extra_env=ENV)
    destination = Moorage("moorage-destination", work / "destination", extra_env=ENV)
    rates: dict[str, list[float]] = {"rule": [], "skopeo": []}
    copied: list[str] = []
    try:
        for server in (source, destination):
            server.work.mkdir(parents=True)
            server.start()
        with httpx.Client(base_url=f"{source.url}/api/v1", timeout=120,
                          auth=(ADMIN_USER, ADMIN_PASSWORD)) as api:
            for r in range(o.rounds):
                sizes = {}
                for i, how in enumerate(("rule", "skopeo")):
                    tag = f"r{r}-{how}"
                    sizes[how] = seed(source, work, tag, o.size_mib, seed_no=1000 + 2 * r + i)
                for how in (("rule", "skopeo") if r % 2 == 0 else ("skopeo", "rule")):
                    tag = f"r{r}-{how}"
                    seconds = (by_rule(api, destination, tag) if how == "rule"
                               else by_skopeo(source, destination, tag))
                    rates[how].append(sizes[how] / MiB / seconds)
                    copied.append(tag)
                    log(f"round {r + 1}/{o.rounds} {how}: {sizes[how] / MiB:,.1f} MiB in "
                        f"{seconds:.2f} s = {rates[how][-1]:,.1f} MiB/s")
        check_copied(destination, copied)
        errors = {s.label: s.log_errors() for s in (source, destination)}
    finally:
        for server in (source, destination):
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    med = {how: statistics.median(values) for how, values in rates.items()}
    ratio = med["rule"] / med["skopeo"] if med["skopeo"] else float("nan")
    print()
    print(f"Replication: one image of a {o.size_mib} MiB random layer + config, Moorage to "
          f"Moorage on loopback (medians of {o.rounds} round(s))")
    print("| copy | rate |")
    print("|---|---|")
    print(f"| push replication rule, run by hand (run → execution succeeded) | "
          f"{med['rule']:,.1f} MiB/s |")
    print(f"| skopeo copy docker:// → docker:// | {med['skopeo']:,.1f} MiB/s |")
    print(f"| ratio (rule / skopeo) | {ratio:.2f} |")
    print(json.dumps({"rates_mib_s": rates, "server_errors": errors}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
