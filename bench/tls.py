"""What HTTPS costs, and what the TLS front for custom domains costs on top (README, "HTTPS").

    PYTHONPATH=src python bench/tls.py [--seconds 10] [--workers 2]   # or: make bench-tls

Starts three `moorage serve` instances on loopback, each with the same content (auth off):
plain HTTP, granian's own TLS (one certificate), and the HAProxy front that serves custom
domains by SNI (tls_front = haproxy). Then `wrk` (HTTP/1.1, keep-alive) measures on each:
manifest GET by digest (requests/s and p99 latency, 32 connections) and a 64 MiB blob GET
(MiB/s, 4 connections). The load generator shares the machine's cores with the server, so
compare the columns with each other, not with other machines. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

BLOB_MIB = 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "bench.crt", folder / "bench.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def start(folder: Path, workers: int, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    scheme = "https" if "MOORAGE_TLS_CERT" in env else "http"
    log = open(folder.with_suffix(".log"), "wb")
    proc = subprocess.Popen([sys.executable, "-m", "moorage", "serve", "--listen",
                             f"127.0.0.1:{port}", "--data-dir", str(folder), "--workers",
                             str(workers)], env={**os.environ, "MOORAGE_AUTH": "off", **env},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"{scheme}://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/", verify=False, timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise SystemExit(f"the server in {folder} did not start; see {log.name}")


def fill(url: str) -> tuple[str, str]:
    """A 64 MiB blob and a manifest; their GET paths."""
    blob = os.urandom(BLOB_MIB << 20)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    with httpx.Client(base_url=url, verify=False, timeout=300) as http:
        where = http.post("/v2/bench/app/blobs/uploads/").headers["location"]
        assert http.put(where, params={"digest": digest}, content=blob).status_code == 201
        manifest = json.dumps({"schemaVersion": 2,
                               "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                          "digest": digest, "size": len(blob)},
                               "layers": []}).encode()
        mdigest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        assert http.put("/v2/bench/app/manifests/v1", content=manifest, headers={
            "Content-Type": "application/vnd.oci.image.manifest.v1+json"}).status_code == 201
    return f"/v2/bench/app/manifests/{mdigest}", f"/v2/bench/app/blobs/{digest}"


def wrk(url: str, connections: int, seconds: int) -> dict[str, float]:
    done = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                          capture_output=True, text=True, timeout=seconds + 120)
    out = done.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else 0.0,
            "errors": float(errors.group(1)) if errors else 0.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each load; the median")
    args = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("haproxy") is None:
        raise SystemExit("bench/tls.py needs wrk and haproxy (scripts/install-system-deps.sh)")
    work = Path(tempfile.mkdtemp(prefix="moorage-bench-tls-"))
    cert, key = self_signed(work)
    tls = {"MOORAGE_TLS_CERT": str(cert), "MOORAGE_TLS_KEY": str(key)}
    modes = {"plain HTTP": {}, "granian TLS": tls,
             "HAProxy front (TLS)": {**tls, "MOORAGE_TLS_FRONT": "haproxy"}}
    results: dict[str, dict[str, float]] = {}
    try:
        for label, env in modes.items():
            proc, url = start(work / label.split()[0].lower(), args.workers, env)
            try:
                manifest, blob = fill(url)
                runs_m = [wrk(url + manifest, 32, args.seconds) for _ in range(args.rounds)]
                runs_b = [wrk(url + blob, 4, args.seconds) for _ in range(args.rounds)]
            finally:
                os.killpg(proc.pid, 15)
                proc.wait(60)
            median = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
            results[label] = {
                "manifest_rps": median([r["rps"] for r in runs_m]),
                "manifest_p99_ms": median([r["p99_ms"] for r in runs_m]),
                "blob_mib_s": median([r["rps"] for r in runs_b]) * BLOB_MIB,
                "errors": sum(r["errors"] for r in runs_m + runs_b)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = results["granian TLS"]
    print(f"| {args.workers} workers, wrk HTTP/1.1, median of {args.rounds} x {args.seconds} s "
          f"| manifest GET req/s | p99 ms | blob GET MiB/s | vs granian TLS (req/s, MiB/s) |")
    print("|---|---|---|---|---|")
    for label, r in results.items():
        print(f"| {label} | {r['manifest_rps']:,.0f} | {r['manifest_p99_ms']:.1f} | "
              f"{r['blob_mib_s']:,.0f} | {r['manifest_rps'] / base['manifest_rps']:.2f}, "
              f"{r['blob_mib_s'] / base['blob_mib_s']:.2f} |"
              + (f" ({r['errors']:.0f} errors)" if r["errors"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
