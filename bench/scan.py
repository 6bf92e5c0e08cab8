"""The vulnerability scanner's library pipeline (issue 16), and the same image scanned as a
job of a running server: `make bench` runs it after the console's pages (console.py).

    PYTHONPATH=src python bench/scan.py [--runs 5] [--import-runs 3] [--job-runs 5] [--quick]

Everything is built here, offline, in a temp folder: a Moorage filesystem blob store and a
SQLite metadata database migrated to head, as an instance has them. Three rows:

* advisory import: the PyPA fixture (shared/fixtures/osv-pypa, 2,661 OSV YAML records) into
  a new database with the real importer (`run_import`), and again into the same database
  (nothing changed: the incremental case, which must write nothing);
* scan: an image of ~100 MiB of gzip layers and ~2,000 packages (below), `inventory_of` with
  the per-layer `SqlLayerCache`, then `match` against the imported advisories: the whole
  pipeline the library offers today. Cold: the layer cache emptied first (the blobs are in
  the OS page cache all the same: the figure is CPU, not disk). Warm: the same image again,
  every layer cached. Then a second image that shares the first four layers and has its own
  top layer: only that layer is read.
* scan job, end to end (bench/scanjob.py): a real `moorage serve` with the PyPA fixture
  imported (`moorage advisories import --partial`) and image A pushed with skopeo; a scan
  requested through the API (`POST .../scans`) until its report says `done`, and the job's
  own `finished_at - started_at`. Cold: the server's layer cache emptied through its
  database first; warm: a second request of the same image. `--job-runs 0` leaves it out
  (it needs skopeo).

The image: a Debian 12 os-release; a dpkg status of 1,000 entries (the 88 real stanzas of the
bookworm minbase fixture, then copies of them with the package renamed `<name>-copyN`); 600
Python distributions in site-packages named after the first 600 packages of the PyPA fixture,
every other one at the last version its first record lists as affected and the rest at
9999.0; 400 npm packages under node_modules (synthetic names); 4 jars with Maven
pom.properties; and filler files (1 MiB files, 3,000 of 4 KiB, a few executables) so that the
five gzip layers weigh ~100 MiB. The filler compresses as a real image's binaries do (2.6:1,
see `noise`), so the layers hold ~260 MiB of tar to inflate; `--incompressible` fills with
random bytes instead (gzip stores those as they are, and inflating stored blocks is a copy).
Findings come only from the PyPA records (no distribution advisories are imported). Medians
of `--runs` runs, with the spread (min–max). Prints; asserts nothing. `BENCH_QUICK=1` (or
--quick): a small image, one run of each (the server's scan jobs too).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import random
import statistics
import sys
import tarfile
import tempfile
import time
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from sqlalchemy import delete  # noqa: E402

from moorage.db.metadata import open_engine, sqlite_url  # noqa: E402
from moorage.db.migrate import upgrade  # noqa: E402
from moorage.db.schema import scan_layer_cache  # noqa: E402
from moorage.scan.advisories.importer import run_import  # noqa: E402
from moorage.scan.advisories.matching import match  # noqa: E402
from moorage.scan.advisories.store import AdvisoryStore  # noqa: E402
from moorage.scan.inventory import SqlLayerCache, inventory_of  # noqa: E402
from moorage.store.filesystem import FilesystemBlobStore  # noqa: E402

from bench import scanjob  # noqa: E402

RESULTS = ROOT / "bench" / "results"
MiB = 1 << 20
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DEBIAN_OS_RELEASE = ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
                     'VERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\n'
                     'ID=debian\n')
SITE = "usr/local/lib/python3.11/site-packages"
NODE = "usr/lib/node_modules/app/node_modules"


@dataclass(frozen=True)
class Shape:
    dpkg: int
    python: int
    npm: int
    jars: int
    filler_mib: int  # MiB of gzip layers the filler makes, over all five layers
    small_files: int  # of those, in 4 KiB files


FULL = Shape(dpkg=1000, python=600, npm=400, jars=4, filler_mib=98, small_files=3000)
QUICK = Shape(dpkg=100, python=60, npm=40, jars=1, filler_mib=4, small_files=100)
SHARES = (0.35, 0.25, 0.2, 0.15, 0.05)  # of the filler, per layer (base first)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def shared_fixtures() -> Path:
    """The rules of tests/support/fixtures.py (bench/ does not import tests)."""
    given = os.environ.get("MOORAGE_SHARED_FIXTURES")
    if given:
        return Path(given)
    for folder in ROOT.parents:
        if (folder / "shared" / "fixtures").is_dir():
            return folder / "shared" / "fixtures"
    return Path("/work/shared/fixtures")


# -- the image ------------------------------------------------------------------------------
def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(files: list[tuple[str, bytes, int]]) -> tuple[bytes, str, int]:
    """A gzip tar layer of (path, bytes, mode): the blob, its diff id, the tar's size."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data, mode in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 1_700_000_000
            archive.addfile(info, io.BytesIO(data))
    raw = out.getvalue()
    return gzip.compress(raw, 6, mtime=0), digest_of(raw), len(raw)


# 16 symbols: 4 bits of entropy a byte, as gzip sees it
_NIBBLES = bytes((i % 16) * 17 for i in range(256))
RATIO = 2.57  # what gzip -6 makes of noise(): measured; a Debian base layer is ~2.4


def noise(rng: random.Random, size: int, incompressible: bool) -> bytes:
    """Bytes to fill files with. Random bytes are stored by gzip as they are, and stored
    blocks cost nothing to inflate, so by default a third of the 4 KiB chunks repeat the one
    before and the rest use 16 symbols: gzip -6 shrinks that 2.57 times, about what it does to
    the binaries and libraries of a real image (a Debian base layer: ~2.4)."""
    if incompressible:
        return rng.randbytes(size)
    out, chunk = bytearray(), b""
    for i in range(0, size, 4096):
        chunk = chunk if i and i // 4096 % 3 == 0 else rng.randbytes(4096).translate(_NIBBLES)
        out += chunk
    return bytes(out[:size])


def filler(rng: random.Random, where: str, mib: float, small: int,
           incompressible: bool) -> list[tuple[str, bytes, int]]:
    """`small` files of 4 KiB, a few executables, the rest of `mib` in 1 MiB files."""
    files = [(f"{where}/share/f{i:05d}.dat", noise(rng, 4096, incompressible), 0o644)
             for i in range(small)]
    rest = int(mib * MiB) - small * 4096
    for i in range(3):
        size = min(max(rest, 0), 256 * 1024)
        files.append((f"{where}/bin/tool{i}", b"#!/bin/sh\n" + noise(rng, size, incompressible),
                      0o755))
        rest -= size
    i = 0
    while rest > 0:
        size = min(rest, MiB)
        files.append((f"{where}/lib/blob{i:04d}.bin", noise(rng, size, incompressible), 0o644))
        rest, i = rest - size, i + 1
    return files


def dpkg_status(fixtures: Path, count: int) -> bytes:
    stanzas = (fixtures / "dpkg" / "status-bookworm-minbase").read_text().strip().split("\n\n")
    out = stanzas[:count]
    copy = 1
    while len(out) < count:
        for stanza in stanzas[:count - len(out)]:
            head, _, rest = stanza.partition("\n")
            out.append(f"{head}-copy{copy}\n{rest}")
        copy += 1
    return ("\n\n".join(out) + "\n").encode()


def python_dists(fixtures: Path, count: int) -> list[tuple[str, bytes, int]]:
    """Distributions named after the PyPA fixture's packages: every other one at the last
    version its first record lists as affected, the rest at 9999.0."""
    vulns = fixtures / "osv-pypa" / "vulns"
    names = sorted(p.name for p in vulns.iterdir() if p.is_dir())[:count]
    names += [f"bench-dist-{i:04d}" for i in range(count - len(names))]
    files = []
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for i, name in enumerate(names):
        version = "9999.0"
        records = sorted((vulns / name).glob("*.yaml")) if (vulns / name).is_dir() else []
        if i % 2 == 0 and records:
            doc = yaml.load(records[0].read_bytes(), Loader=loader)  # noqa: S506 - safe loader
            listed = [str(v) for a in doc.get("affected") or [] for v in a.get("versions") or []]
            version = listed[-1] if listed else version
        text = (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                f"Summary: installed by the benchmark\nLicense: MIT\n\nThe description.\n")
        folder = f"{SITE}/{name.replace('-', '_')}-{version}.dist-info"
        files.append((f"{folder}/METADATA", text.encode(), 0o644))
        files.append((f"{folder}/INSTALLER", b"pip\n", 0o644))
    return files


def npm_packages(count: int) -> list[tuple[str, bytes, int]]:
    return [(f"{NODE}/bench-npm-{i:04d}/package.json",
             json.dumps({"name": f"bench-npm-{i:04d}", "version": f"1.{i % 7}.{i % 13}",
                         "license": "MIT", "main": "index.js"}).encode(), 0o644)
            for i in range(count)]


def jars(rng: random.Random, count: int) -> list[tuple[str, bytes, int]]:
    files = []
    for i in range(count):
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as jar:
            jar.writestr(f"META-INF/maven/org.example.bench/lib{i}/pom.properties",
                         f"groupId=org.example.bench\nartifactId=lib{i}\nversion=2.{i}.0\n")
            jar.writestr(f"org/example/bench/lib{i}/Main.class", rng.randbytes(64 * 1024))
        files.append((f"opt/app/lib/lib{i}-2.{i}.0.jar", out.getvalue(), 0o644))
    return files


def put(store: FilesystemBlobStore, data: bytes) -> str:
    digest = digest_of(data)
    store.put(digest, data)
    return digest


def manifest(store: FilesystemBlobStore, layers: list[tuple[bytes, str, int]]) -> bytes:
    config = json.dumps({"os": "linux", "architecture": "amd64", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [d for _, d, _ in layers]}}
                        ).encode()
    doc = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": put(store, config), "size": len(config)},
        "layers": [{"mediaType": LAYER_GZIP, "digest": put(store, blob), "size": len(blob)}
                   for blob, _, _ in layers]}).encode()
    put(store, doc)
    return doc


def build(store: FilesystemBlobStore, fixtures: Path, shape: Shape,
          incompressible: bool) -> tuple[bytes, bytes, int, int]:
    """Image A (five layers) and image B (A's first four, its own top); the bytes of A's
    layers, and of the files they hold."""
    rng = random.Random(16)
    total = shape.filler_mib * (1 if incompressible else RATIO)
    mib = [total * s for s in SHARES]
    small = [int(shape.small_files * s) for s in SHARES]
    contents = [
        [("etc/os-release", DEBIAN_OS_RELEASE.encode(), 0o644),
         ("var/lib/dpkg/status", dpkg_status(fixtures, shape.dpkg), 0o644)],
        python_dists(fixtures, shape.python),
        npm_packages(shape.npm),
        jars(rng, shape.jars),
        [],
    ]
    where = ["usr", "usr/local", "usr/lib/node", "opt/java", "srv/app"]
    built = [layer(files + filler(rng, where[i], mib[i], small[i], incompressible))
             for i, files in enumerate(contents)]
    top_b = layer(filler(random.Random(61), "srv/app", mib[4], small[4], incompressible))
    return (manifest(store, built), manifest(store, built[:4] + [top_b]),
            sum(len(blob) for blob, _, _ in built), sum(size for _, _, size in built))


# -- the measures ---------------------------------------------------------------------------
def new_database(folder: Path) -> Any:
    folder.mkdir(parents=True)
    engine = open_engine(sqlite_url(folder))
    upgrade(engine)
    return engine


def scan(store: FilesystemBlobStore, image: bytes, engine: Any) -> dict[str, Any]:
    started = time.perf_counter()
    found = inventory_of(store, image, cache=SqlLayerCache(engine))
    inventoried = time.perf_counter()
    findings = match(found.packages, AdvisoryStore(engine))
    done = time.perf_counter()
    kinds = Counter(p.kind for p in found.packages)
    return {"seconds": done - started, "inventory_seconds": inventoried - started,
            "match_seconds": done - inventoried, "packages": len(found.packages),
            "kinds": dict(sorted(kinds.items())), "findings": len(findings),
            "affected_packages": len({(f.package.name, f.package.version) for f in findings}),
            "problems": list(found.problems)[:5]}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    times = [r["seconds"] for r in runs]
    out = {k: v for k, v in runs[-1].items() if k != "seconds"}
    out.update(median_s=statistics.median(times), min_s=min(times), max_s=max(times),
               runs=len(runs))
    for key in ("inventory_seconds", "match_seconds", "job_seconds", "queued_seconds"):
        if key in runs[0]:
            out[key] = statistics.median(r[key] for r in runs)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--import-runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        default=os.environ.get("BENCH_QUICK", "") not in ("", "0"))
    parser.add_argument("--incompressible", action="store_true",
                        help="fill with random bytes (gzip stores them; nothing to inflate)")
    parser.add_argument("--job-runs", type=int, default=5,
                        help="cold and warm scan jobs of a running server (0: none)")
    args = parser.parse_args(argv)
    shape = QUICK if args.quick else FULL
    runs, import_runs = (1, 1) if args.quick else (args.runs, args.import_runs)
    job_runs = min(args.job_runs, 1) if args.quick else args.job_runs
    fixtures = shared_fixtures()
    pypa = fixtures / "osv-pypa" / "vulns"
    if not pypa.is_dir():
        print(f"the shared fixtures are missing: {fixtures}", file=sys.stderr)
        return 1
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="moorage-scan-bench-") as work_dir:
        work = Path(work_dir)
        store = FilesystemBlobStore(work / "blobs")
        started = time.perf_counter()
        image_a, image_b, layer_bytes, tar_bytes = build(store, fixtures, shape,
                                                         args.incompressible)
        log(f"built two images ({layer_bytes / MiB:.1f} MiB of layers in image A, "
            f"{tar_bytes / MiB:.1f} MiB once inflated) in "
            f"{time.perf_counter() - started:.1f} s")

        imports, reimports = [], []
        for r in range(import_runs):
            engine = new_database(work / f"db{r}")
            first = run_import(pypa, AdvisoryStore(engine))
            again = run_import(pypa, AdvisoryStore(engine))
            imports.append({"seconds": first.seconds, "added": first.added,
                            "withdrawn": first.withdrawn,
                            "skipped": first.skipped_count, "writes": first.writes})
            reimports.append({"seconds": again.seconds, "unchanged": again.unchanged,
                              "writes": again.writes})
            log(f"import {r + 1}/{import_runs}: {first.seconds:.2f} s ({first.added} added), "
                f"re-import {again.seconds:.2f} s ({again.writes} rows written)")
            if r < import_runs - 1:
                engine.dispose()

        cold, warm, second = [], [], []
        for r in range(runs):
            with engine.begin() as conn:
                conn.execute(delete(scan_layer_cache))
            cold.append(scan(store, image_a, engine))
            warm.append(scan(store, image_a, engine))
            second.append(scan(store, image_b, engine))
            log(f"scan {r + 1}/{runs}: cold {cold[-1]['seconds']:.2f} s, warm "
                f"{warm[-1]['seconds']:.2f} s, second image {second[-1]['seconds']:.2f} s")
        engine.dispose()

        served: dict[str, Any] = {}
        if job_runs:
            served = scanjob.run(work / "server", lambda d: b"".join(store.read(d)), image_a,
                                 digest_of(image_a), pypa, job_runs, log)

    rows = {"import": summary(imports), "reimport": summary(reimports),
            "scan_cold": summary(cold), "scan_warm": summary(warm),
            "scan_second_image": summary(second)}
    if served:
        rows.update(job_cold=summary(served["cold"]), job_warm=summary(served["warm"]))
    image_note = (f"{layer_bytes / MiB:.0f} MiB in 5 gzip layers ({tar_bytes / MiB:.0f} MiB of "
                  f"tar{', random filler' if args.incompressible else ''}); {shape.dpkg:,} dpkg "
                  f"entries, {shape.python} Python, {shape.npm} npm, {shape.jars} jars")

    def fmt(row: dict[str, Any]) -> str:
        return (f"{row['median_s']:7.2f} s  ({row['min_s']:.2f}–{row['max_s']:.2f}, "
                f"{row['runs']} run{'s' if row['runs'] > 1 else ''})")

    print()
    print(f"Scanner library pipeline{' (quick: small image, one run)' if args.quick else ''}; "
          f"image: {image_note}")
    i, ri = rows["import"], rows["reimport"]
    print(f"{'advisory import, PyPA fixture, new database':48} {fmt(i)}  "
          f"{i['added']:,} advisories added, {i['withdrawn']} withdrawn ones left out, "
          f"{i['skipped']} skipped")
    print(f"{'advisory re-import, nothing changed':48} {fmt(ri)}  "
          f"{ri['unchanged']:,} unchanged, {ri['writes']} rows written")
    for key, label in (("scan_cold", "scan, cold (layer cache empty)"),
                       ("scan_warm", "scan, warm (every layer cached)"),
                       ("scan_second_image", "scan, second image (4 of 5 layers cached)")):
        s = rows[key]
        kinds = ", ".join(f"{n} {k}" for k, n in s["kinds"].items())
        print(f"{label:48} {fmt(s)}  {s['packages']:,} packages ({kinds}), "
              f"{s['findings']} findings on {s['affected_packages']} of them; "
              f"inventory {s['inventory_seconds']:.2f} s + match {s['match_seconds']:.2f} s")
    if served:
        for key, label in (("job_cold", "scan job, end to end, cold"),
                           ("job_warm", "scan job, end to end, warm")):
            s = rows[key]
            print(f"{label:48} {fmt(s)}  job {s['job_seconds']:.2f} s (finished_at - "
                  f"started_at), queued {s['queued_seconds']:.2f} s; {s['packages']:,} "
                  f"packages, {s['findings']} findings")
        print(f"Scan job = POST /api/v1/repositories/{{name}}/scans to the report's 'done' "
              f"(polled every {scanjob.POLL} s) on a running moorage serve (2 workers, SQLite); "
              f"cold deletes the server's scan_layer_cache rows first. The image was pushed "
              f"with skopeo in {served['push_seconds']:.1f} s.")
    print(f"Scan = inventory_of with the SQL layer cache + match against the imported "
          f"advisories, in one thread; cold empties the layer cache, not the OS page cache. "
          f"Load average before: {load_before[0]:.1f} on {os.cpu_count()} CPUs.")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scan-latest.json").write_text(json.dumps(
        {"quick": args.quick, "at": time.strftime("%Y-%m-%dT%H:%M:%S"), "image": image_note,
         "layer_bytes": layer_bytes, "tar_bytes": tar_bytes,
         "incompressible": args.incompressible, "shape": shape.__dict__,
         "loadavg_before": load_before, "cpus": os.cpu_count(), "rows": rows,
         "raw": {"import": imports, "reimport": reimports, "scan_cold": cold,
                 "scan_warm": warm, "scan_second_image": second,
                 **({"job_cold": served["cold"], "job_warm": served["warm"]}
                    if served else {})},
         "server": {k: v for k, v in served.items() if k not in ("cold", "warm")}},
        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
