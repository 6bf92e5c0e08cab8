"""Threat blocking's cost on the hottest request: `make bench` runs it after the scanner's.

    PYTHONPATH=src python bench/blocking.py [--rounds 3] [--duration 8] [--connections 64]
                                            [--quick]

One `moorage serve` (bench/servers.py's Moorage: SQLite and the local disk, token auth, 2
workers, the advanced edition). The same small image is pushed to two namespaces and scanned
(done, no finding). `open` has no pull policy; `guarded` has all three rules on (findings at
or above `low`, unscanned, unsigned) and its image passes them: scanned, clean,
and signed. Then `wrk` GETs the manifest by tag with a bearer token, alternating open, guarded,
open, … for `--rounds` rounds, and the medians are printed side by side with their ratio.
On a shared 2-core machine that figure carries the noise of everything else running; so the
server's own `Registry.get_manifest` is also timed in this process, by tag, in both
namespaces, and the pull check alone (µs per call, best of five): its own cost.

The guarded image is signed with `moorage signing key generate` and `moorage sign` (a local
key file whose public key the namespace trusts), as a user signs it. Prints; asserts nothing (the issue's target: within 10%). `BENCH_QUICK=1` (or
--quick): one round of 2 seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402
from bench.content import ACCEPT, push_image, small_image  # noqa: E402
from bench.rawhttp import Connection  # noqa: E402
from bench.servers import ADMIN_PASSWORD, ADMIN_USER, Moorage  # noqa: E402

HANG = 300.0  # bounds a hang only
NAMESPACES = ("open", "guarded")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def seed(server: Moorage, client: httpx.Client) -> None:
    """Both namespaces, the image pushed and scanned in each, the policy on `guarded` and its
    image signed."""
    image = small_image("blocking")
    auth = {"authorization": server.basic}

    async def push() -> None:
        conn = Connection("127.0.0.1", server.port)
        try:
            for ns in NAMESPACES:
                await push_image(conn, f"{ns}/app", "latest", image, auth)
        finally:
            await conn.close()

    for ns in NAMESPACES:
        resp = client.post("/namespaces", json={"name": ns})
        if resp.status_code != 201:
            raise RuntimeError(f"namespace {ns}: {resp.status_code} {resp.text[:300]}")
    asyncio.run(push())
    for ns in NAMESPACES:
        resp = client.post(f"/repositories/{ns}/app/scans", json={"reference": "latest"})
        if resp.status_code != 202:
            raise RuntimeError(f"scan request: {resp.status_code} {resp.text[:300]}")
    deadline = time.monotonic() + HANG
    for ns in NAMESPACES:
        while True:
            found = client.get(f"/repositories/{ns}/app/manifests/latest/vulnerabilities")
            if found.status_code == 200 and found.json()["status"] in ("done", "failed"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no finished scan of {ns}/app: {found.text[:300]}")
            time.sleep(0.2)
    rules = {"severity": "low", "block_unscanned": True, "block_unsigned": True,
             "exempt_robots": []}
    resp = client.put("/namespaces/guarded/pull-policy", json=rules)
    if resp.status_code != 200:
        raise RuntimeError(f"pull policy: {resp.status_code} {resp.text[:300]}")
    sign(server, client)


def sign(server: Moorage, client: httpx.Client) -> None:
    """`guarded/app:latest` signed as a user signs it: a key pair made by `moorage signing key
    generate` (its public key trusted by the namespace), then `moorage sign` with the local key
    file; waits until the stored verification says verified."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")},
           "MOORAGE_URL": server.url, "MOORAGE_USERNAME": ADMIN_USER,
           "MOORAGE_PASSWORD": ADMIN_PASSWORD, "COSIGN_PASSWORD": "bench-key-password",
           "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1",
           "XDG_CONFIG_HOME": str(server.data_dir.parent / "cli")}
    keys = server.data_dir.parent / "keys"
    for args in (["signing", "key", "generate", "bench", "--namespace", "guarded",
                  "--out", str(keys)],
                 ["sign", "guarded/app:latest", "--key", str(keys / "bench.key")]):
        done = subprocess.run([sys.executable, "-m", "moorage", *args], env=env, timeout=HANG,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"moorage {args[0]} {args[1]}: {done.stderr[-500:]}")
    deadline = time.monotonic() + HANG
    while True:
        found = client.get("/repositories/guarded/app/manifests/latest/signatures")
        if found.status_code == 200 and found.json().get("verified"):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"guarded/app:latest not verified: {found.text[:300]}")
        time.sleep(0.2)


def bearer(server: Moorage) -> str:
    scopes = "&".join(f"scope=repository:{ns}/app:pull" for ns in NAMESPACES)
    resp = httpx.get(f"{server.url}/auth/token?service=moorage&{scopes}", timeout=60,
                     auth=(ADMIN_USER, ADMIN_PASSWORD))
    resp.raise_for_status()
    return str(resp.json()["token"])


def check_passes(server: Moorage, token: str) -> None:
    for ns in NAMESPACES:
        resp = httpx.get(f"{server.url}/v2/{ns}/app/manifests/latest", timeout=60,
                         headers={"authorization": f"Bearer {token}", "accept": ACCEPT})
        if resp.status_code != 200:
            raise RuntimeError(f"{ns}/app:latest is not served: {resp.status_code} "
                               f"{resp.text[:300]}")


def in_process(server: Moorage, calls: int) -> dict[str, float]:
    """µs per `Registry.get_manifest` by tag in this process, on the server's data folder
    (its pull check registered as the server has it): the check's own cost, without HTTP
    and with less of the noise of a shared machine. Best of five runs each."""
    import timeit

    from moorage.app import build_instance
    from moorage.settings import load_settings

    instance = build_instance(load_settings(environ={}, overrides={
        "data_dir": server.data_dir, "scan_on_push": False}))
    registry = instance.registry
    accept = [ACCEPT]
    out: dict[str, float] = {"calls": float(calls)}
    [check] = registry.pull_checks
    for ns in NAMESPACES:
        repo = f"{ns}/app"
        stored = registry.get_manifest(repo, "latest", accept)  # passes; warms the caches
        best = min(timeit.repeat(lambda: registry.get_manifest(repo, "latest", accept),
                                 number=calls, repeat=5))
        out[ns] = best / calls * 1e6
        best = min(timeit.repeat(lambda: check(repo, stored, "latest"), number=calls,
                                 repeat=5))
        out[f"{ns}_check"] = best / calls * 1e6
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true",
                        default=os.environ.get("BENCH_QUICK") == "1")
    o = parser.parse_args(argv)
    if o.quick:
        o.rounds, o.duration = 1, 2.0
    work = Path(tempfile.mkdtemp(prefix="moorage-bench-blocking-"))
    server = Moorage("moorage-blocking", work, extra_env={
        "MOORAGE_SCAN_ON_PUSH": "false", "MOORAGE_SCAN_SYFT": "off",
        "MOORAGE_EDITION": "advanced"})
    server.workers = o.workers
    runs: dict[str, list[dict[str, Any]]] = {ns: [] for ns in NAMESPACES}
    server.start()
    try:
        with httpx.Client(base_url=f"{server.url}/api/v1", timeout=120,
                          auth=(ADMIN_USER, ADMIN_PASSWORD)) as client:
            seed(server, client)
            policy = client.get("/namespaces/guarded/pull-policy").json()
            if not (policy["severity"] == "low" and policy["block_unscanned"]
                    and policy["block_unsigned"]):
                raise RuntimeError(f"the policy of 'guarded' is not in force: {policy}")
        log("seeded: the image scanned in both namespaces; policy on 'guarded', its image signed")
        token = bearer(server)
        check_passes(server, token)
        headers = {"authorization": f"Bearer {token}", "accept": ACCEPT}
        for r in range(o.rounds):
            for ns in NAMESPACES:
                res = load.wrk(f"{server.url}/v2/{ns}/app/manifests/latest", headers,
                               o.connections, o.duration)
                runs[ns].append(res)
                log(f"round {r + 1}/{o.rounds} {ns}: {res['rps']:,.0f} req/s, "
                    f"p99 {res['p99_ms']:.1f} ms, {res['errors']} errors")
        server.stop()
        inproc = in_process(server, 20_000 if not o.quick else 2_000)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    med = {ns: {k: statistics.median(x[k] for x in runs[ns]) for k in ("rps", "p99_ms")}
           for ns in NAMESPACES}
    errors = {ns: sum(x["errors"] for x in runs[ns]) for ns in NAMESPACES}
    ratio = med["guarded"]["rps"] / med["open"]["rps"] if med["open"]["rps"] else float("nan")
    print()
    print(f"Threat blocking: manifest GET by tag, {o.connections} conns, bearer token, "
          f"{o.workers} workers (wrk; medians of {o.rounds} rounds of {o.duration:.0f} s)")
    print("| case | rate | p99 | errors |")
    print("|---|---|---|---|")
    print(f"| no pull policy | {med['open']['rps']:,.0f} req/s | {med['open']['p99_ms']:.1f} ms "
          f"| {errors['open']} |")
    print(f"| pull policy: severity low + unscanned + unsigned (image passes) | {med['guarded']['rps']:,.0f} req/s | "
          f"{med['guarded']['p99_ms']:.1f} ms | {errors['guarded']} |")
    print(f"| ratio (policy / none) | {ratio:.2f} | | |")
    print(f"In process (after the server stopped, one thread, {inproc['calls']:,.0f} calls "
          f"each, best of 5): Registry.get_manifest by tag {inproc['open']:.1f} µs without a "
          f"policy, {inproc['guarded']:.1f} µs with it; the pull check alone "
          f"{inproc['open_check']:.2f} µs in a namespace without a policy, "
          f"{inproc['guarded_check']:.2f} µs with the three rules")
    print(json.dumps({"runs": runs}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
