"""packaging/moorage.service parses, is hardened, and its example environment file loads.

`systemd-analyze verify` runs against a scratch root holding the system's unit files, the
unit, and a stand-in /opt/moorage/bin/moorage (verify refuses a unit whose ExecStart is not
executable, and the test must not install anything in /opt). It exits 0 on unknown keys or
bad values, only printing them, so the test also wants its output empty.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from moorage.settings import load_settings
from tests.packaging.helpers import env_file

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "packaging" / "moorage.service"
ENV_FILE = REPO / "packaging" / "moorage.env"


def unit_entries(text: str) -> dict[str, list[str]]:
    """KEY -> values in order (systemd allows a key several times)."""
    entries: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        entries.setdefault(key.strip(), []).append(value.strip())
    return entries


@pytest.fixture
def scratch_root(tmp_path: Path) -> Path:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    root = tmp_path / "root"
    units = next((p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
                  if p.is_dir()), None)
    if units is None:
        pytest.skip("no system unit folder to verify against")
    shutil.copytree(units, root / "usr/lib/systemd/system", symlinks=True)
    exe = root / "opt/moorage/bin/moorage"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    (root / "etc/systemd/system").mkdir(parents=True)
    return root


def verify(root: Path, unit_text: str) -> subprocess.CompletedProcess[str]:
    unit = root / "etc/systemd/system/moorage.service"
    unit.write_text(unit_text)
    return subprocess.run(["systemd-analyze", "verify", f"--root={root}", str(unit)],
                          capture_output=True, text=True, timeout=120)


def test_unit_verifies_cleanly(scratch_root: Path) -> None:
    result = verify(scratch_root, UNIT.read_text())
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr)
    # the check can fail: a misspelt key and a bad value are reported (exit code 0 or not)
    broken = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystem=stric") + "Foo=1\n"
    reported = verify(scratch_root, broken)
    assert "stric" in reported.stderr and "Foo" in reported.stderr


def test_unit_security_exposure(scratch_root: Path) -> None:
    unit = scratch_root / "etc/systemd/system/moorage.service"
    unit.write_text(UNIT.read_text())
    result = subprocess.run(["systemd-analyze", "security", "--offline=true",
                             f"--root={scratch_root}", str(unit)],
                            capture_output=True, text=True, timeout=120)
    if "--offline" in result.stderr:
        pytest.skip(f"this systemd-analyze has no offline security review: {result.stderr}")
    found = re.search(r"Overall exposure level for moorage\.service: ([\d.]+)", result.stdout)
    assert found, result.stdout + result.stderr
    # 1.5 ("OK") with systemd 252; an unhardened service rates 9.6 ("UNSAFE")
    assert float(found.group(1)) <= 2.0, result.stdout


def test_unit_settings() -> None:
    unit = unit_entries(UNIT.read_text())
    one = {key: values[-1] for key, values in unit.items()}
    assert one["User"] == one["Group"] == "moorage"
    assert one["EnvironmentFile"] == "/etc/moorage/moorage.env"
    assert one["Restart"] == "on-failure"
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict",
                       "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
                       "RestrictSUIDSGID": "yes", "CapabilityBoundingSet": ""}.items():
        assert one[key] == value, key
    # the data folder of ExecStart is the one writable path, and the state directory
    exec_start = one["ExecStart"].split()
    assert exec_start[:2] == ["/opt/moorage/bin/moorage", "serve"]
    data_dir = exec_start[exec_start.index("--data-dir") + 1]
    assert unit["ReadWritePaths"] == [data_dir] == ["/var/lib/moorage"]
    assert one["StateDirectory"] == "moorage"


def test_example_environment_file_loads() -> None:
    env = env_file(ENV_FILE)
    settings = load_settings(None, environ=env)
    assert settings.listen == "0.0.0.0:5000"
    assert settings.log_format == "json" and settings.access_log is True
    assert "MOORAGE_DATA_DIR" not in env  # fixed by the unit's --data-dir
