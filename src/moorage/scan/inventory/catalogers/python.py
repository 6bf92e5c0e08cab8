"""Python: installed distributions in site-packages and dist-packages, from
`*.dist-info/METADATA` (wheels) and `*.egg-info/PKG-INFO` or a bare `*.egg-info` file
(setuptools). Name and Version are core metadata headers, read with the email parser as
the packaging specifications define them."""

from __future__ import annotations

import re
from collections.abc import Callable
from email.parser import BytesHeaderParser

from moorage.scan.inventory.limits import Limits
from moorage.scan.inventory.purl import purl
from moorage.scan.model import Package

_PATH = re.compile(r"(?:^|/)(?:site|dist)-packages/[^/]+"
                   r"(?:\.dist-info/METADATA|\.egg-info/PKG-INFO|\.egg-info)$")
MAX_HEADERS = 256 * 1024  # the body (long description) is never needed


def wants(path: str) -> bool:
    return bool(_PATH.search(path))


def parse(path: str, data: bytes, limits: Limits, note: Callable[[str], None]) -> list[Package]:
    end = data.find(b"\n\n", 0, MAX_HEADERS)
    headers = BytesHeaderParser().parsebytes(data[: end if end >= 0 else MAX_HEADERS])
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        note(f"{path}: Python metadata without {'a Name' if not name else 'a Version'}")
        return []
    name, version = str(name).strip()[:200], str(version).strip()[:200]
    license_ = str(headers.get("License") or "").strip()
    licenses = (license_[:200],) if license_ and "\n" not in license_ else ()
    return [Package(kind="python", ecosystem="PyPI", name=name, version=version, path=path,
                    purl=purl("pypi", _normalise(name), version), licenses=licenses)]


def _normalise(name: str) -> str:
    """PEP 503's normal form, which the pypi purl type asks for (Syft writes it so)."""
    return re.sub(r"[-_.]+", "-", name).lower()
