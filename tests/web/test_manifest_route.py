"""The manifest route found by string search (web/registry_api.py `_manifest_route`) is the
route its regular expression finds, on every path: the same name and reference, or no match."""

from __future__ import annotations

import itertools
import random

from moorage.web.registry_api import _ROUTES, _manifest_route

PATTERN = next(p for p, kind in _ROUTES if kind == "manifest")
PIECES = ["/v2/", "/v2", "v2/", "/manifests/", "manifests", "/manifests", "manifests/", "/",
          "a", "team/app", "x\ny", "\r", "sha256:" + "0" * 64, "latest", ".", "é", ""]


def _same(path: str) -> None:
    expected = PATTERN.fullmatch(path)
    found = _manifest_route(path)
    if expected is None:
        assert found is None, path
    else:
        assert found is not None, path
        assert found.groupdict() == expected.groupdict(), path


def test_the_search_agrees_with_the_pattern_on_every_combination() -> None:
    for count in range(1, 5):
        for parts in itertools.product(PIECES, repeat=count):
            _same("".join(parts))
            _same("/v2/" + "".join(parts))


def test_the_search_agrees_with_the_pattern_on_random_paths() -> None:
    rng = random.Random(20)
    for _ in range(20_000):
        _same("/v2/" + "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 8))))


def test_usual_pulls() -> None:
    found = _manifest_route("/v2/team/app/manifests/v1")
    assert found is not None and found.groupdict() == {"name": "team/app", "reference": "v1"}
    nested = _manifest_route("/v2/a/manifests/b/manifests/sha256:" + "1" * 64)
    assert nested is not None and nested.groupdict()["name"] == "a/manifests/b"
    assert _manifest_route("/v2/team/app/manifests/") is None
    assert _manifest_route("/v2//manifests/v1") is None  # the name would be empty
    assert _manifest_route("/v2///manifests/v1") is not None  # "/": check_name refuses it
    assert _manifest_route("/v2/manifests/v1") is None
