"""Where the shared test data lives (`shared/fixtures/`: real advisory dumps, a dpkg database,
a Syft SBOM), found without knowing where the clone is: `MOORAGE_SHARED_FIXTURES` if set, else
the first `shared/fixtures` beside the repository or beside any folder above it (a work tree
at /work/main and a CI clone deeper down both find /work/shared/fixtures), else the
workspace's own /work/shared/fixtures (a clone made elsewhere, in /tmp say)."""

from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]


def _find() -> Path:
    given = os.environ.get("MOORAGE_SHARED_FIXTURES")
    if given:
        return Path(given)
    for folder in _REPO.parents:
        candidate = folder / "shared" / "fixtures"
        if candidate.is_dir():
            return candidate
    return Path("/work/shared/fixtures")


SHARED_FIXTURES = _find()

