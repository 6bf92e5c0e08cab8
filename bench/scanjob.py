"""The scan job end to end, for bench/scan.py: the same image scanned by a running server.

A real `moorage serve` (bench/servers.py's Moorage: SQLite and the local disk, token auth,
2 workers) with `MOORAGE_SCAN_ON_PUSH=false` (scans start only when asked) and
`MOORAGE_SCAN_SYFT=off`. The PyPA fixture is imported into its database with `moorage
advisories import --partial`, the image is pushed with skopeo from an OCI layout written from
the library bench's blob store, then each run:

* cold: the server's layer cache emptied through its database (`DELETE FROM
  scan_layer_cache` in moorage.db: the layers stay where they are, as after a first push),
  then `POST /api/v1/repositories/{name}/scans` and the report polled every 0.1 s until its
  image is `done` under the job id the request returned;
* warm: a second request of the same image once the first has finished (every layer cached).

Two figures per scan: the wall time from the request to the first poll that sees `done`
(queueing, the job, the poll's own latency: what a client waits), and the job's own
`finished_at - started_at` from the report. Waits only bound a hang; nothing is asserted.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.servers import ADMIN_PASSWORD, ADMIN_USER, Moorage

REPOSITORY = "bench/scan"
TAG = "e2e"
POLL = 0.1
HANG = 600.0  # bounds a hang only


def write_layout(folder: Path, read: Any, manifest: bytes, digest: str) -> Path:
    """An OCI image layout of one image: `read(digest)` gives each blob's bytes."""
    doc = json.loads(manifest)
    blobs = folder / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for desc in [doc["config"], *doc["layers"]]:
        (blobs / desc["digest"].split(":", 1)[1]).write_bytes(read(desc["digest"]))
    (blobs / digest.split(":", 1)[1]).write_bytes(manifest)
    (folder / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (folder / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": doc["mediaType"], "digest": digest, "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": TAG}}]}))
    return folder


def _moorage(*args: str, src: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env["PYTHONPATH"] = f"{src}{os.pathsep}{env.get('PYTHONPATH', '')}".rstrip(os.pathsep)
    return subprocess.run([sys.executable, "-m", "moorage", *args], capture_output=True,
                          text=True, env=env, timeout=HANG)


def _seconds(stamp: str | None) -> float:
    return datetime.fromisoformat(stamp).timestamp() if stamp else float("nan")


def scan_once(client: httpx.Client, reference: str) -> dict[str, Any]:
    """Request a scan, poll its report until done; the wall time and the job's own."""
    requested = time.time()
    started = time.perf_counter()
    resp = client.post(f"/repositories/{REPOSITORY}/scans", json={"reference": reference})
    if resp.status_code != 202:
        raise RuntimeError(f"scan request: {resp.status_code} {resp.text[:300]}")
    job_id = resp.json()["job_id"]
    polls = 0
    while True:
        report = client.get(f"/repositories/{REPOSITORY}/manifests/{reference}/vulnerabilities")
        polls += 1
        if report.status_code != 200:
            raise RuntimeError(f"report: {report.status_code} {report.text[:300]}")
        found = report.json()
        [image] = found["images"]
        if image.get("job_id") == job_id and image["status"] in ("done", "failed"):
            wall = time.perf_counter() - started
            break
        if time.perf_counter() - started > HANG:
            raise RuntimeError(f"no finished report after {HANG:.0f} s: {found['status']}")
        time.sleep(POLL)
    if image["status"] != "done":
        raise RuntimeError(f"the scan failed: {image.get('error')}")
    job_start, job_end = _seconds(image["started_at"]), _seconds(image["finished_at"])
    return {"seconds": wall, "job_seconds": job_end - job_start,
            "queued_seconds": job_start - requested, "polls": polls, "job_id": job_id,
            "packages": image["packages"], "findings": len(found["findings"]),
            "summary": found["summary"], "problems": image["problems"][:5]}


def run(work: Path, read: Any, manifest: bytes, digest: str, pypa: Path,
        runs: int, log: Any) -> dict[str, Any]:
    """Serve, import, push, then `runs` cold and warm scans; the raw figures."""
    if shutil.which("skopeo") is None:
        raise RuntimeError("skopeo not found: run scripts/install-system-deps.sh")
    src = Path(__file__).resolve().parent.parent / "src"
    work.mkdir(parents=True, exist_ok=True)
    server = Moorage("moorage-scan", work, extra_env={
        "MOORAGE_SCAN_ON_PUSH": "false", "MOORAGE_SCAN_SYFT": "off"})
    server.start()
    try:
        began = time.perf_counter()
        imported = _moorage("advisories", "import", "--partial", "--json", "--data-dir",
                            str(server.data_dir), str(pypa), src=src)
        if imported.returncode != 0:
            raise RuntimeError(f"moorage advisories import: {imported.stderr[-2000:]}")
        log(f"server: advisories imported in {time.perf_counter() - began:.1f} s "
            "(moorage advisories import, a process of its own)")
        layout = write_layout(work / "layout", read, manifest, digest)
        began = time.perf_counter()
        pushed = subprocess.run(
            ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--preserve-digests",
             "--dest-creds", f"{ADMIN_USER}:{ADMIN_PASSWORD}", f"oci:{layout}:{TAG}",
             f"docker://{server.host}/{REPOSITORY}:{TAG}"],
            capture_output=True, text=True, timeout=HANG)
        if pushed.returncode != 0:
            raise RuntimeError(f"skopeo copy: {pushed.stderr[-2000:]}")
        push_seconds = time.perf_counter() - began
        log(f"server: image pushed with skopeo in {push_seconds:.1f} s")
        cold, warm = [], []
        with httpx.Client(base_url=f"{server.url}/api/v1", timeout=120,
                          auth=(ADMIN_USER, ADMIN_PASSWORD)) as client:
            for r in range(runs):
                with sqlite3.connect(server.data_dir / "moorage.db", timeout=60) as db:
                    emptied = db.execute("DELETE FROM scan_layer_cache").rowcount
                db.close()
                cold.append({**scan_once(client, TAG), "cache_rows_deleted": emptied})
                warm.append(scan_once(client, TAG))
                log(f"scan job {r + 1}/{runs}: cold {cold[-1]['seconds']:.2f} s "
                    f"(job {cold[-1]['job_seconds']:.2f} s), warm {warm[-1]['seconds']:.2f} s "
                    f"(job {warm[-1]['job_seconds']:.2f} s)")
        errors = server.log_errors()
    finally:
        server.stop()
    return {"cold": cold, "warm": warm, "push_seconds": push_seconds,
            "import": json.loads(imported.stdout or "{}"), "server_log_errors": errors}
