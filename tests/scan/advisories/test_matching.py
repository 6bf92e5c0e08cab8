"""Matching as the OSV schema's evaluation says, on tiny hand-written records: each event
kind, explicit versions, GIT ranges, distribution releases and source packages, PEP 503
names, alias merging, and versions that cannot be compared."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from moorage.scan.advisories import osv
from moorage.scan.advisories.matching import evaluate, match
from moorage.scan.model import Advisory, Package


class Records:
    """An in-memory advisory source keyed as the database keys them."""

    def __init__(self, *records: dict[str, Any]) -> None:
        self.advisories = [osv.parse(r) for r in records]
        self.asked: list[tuple[str, str]] = []

    def advisories_for(self, keys: Iterable[tuple[str, str]]
                       ) -> dict[tuple[str, str], list[Advisory]]:
        keys = set(keys)
        self.asked.extend(keys)
        out: dict[tuple[str, str], list[Advisory]] = {}
        for advisory in self.advisories:
            for affected in advisory.affected:
                key = (affected.ecosystem, osv.normalize_name(affected.ecosystem, affected.name))
                if key in keys:
                    out.setdefault(key, []).append(advisory)
        return out


def record(ident: str, ecosystem: str, name: str, *events: dict[str, str],
           versions: list[str] | None = None, aliases: list[str] | None = None,
           range_type: str = "ECOSYSTEM", **extra: Any) -> dict[str, Any]:
    affected: dict[str, Any] = {"package": {"ecosystem": ecosystem, "name": name}}
    if events:
        affected["ranges"] = [{"type": range_type, "events": list(events)}]
    if versions is not None:
        affected["versions"] = versions
    return {"id": ident, "modified": "2024-01-01T00:00:00Z", "aliases": aliases or [],
            "affected": [affected], **extra}


def pypi(version: str, name: str = "demo") -> Package:
    return Package("python", "PyPI", name, version)


def ids(findings: list[Any]) -> list[str]:
    return [f.id for f in findings]


def test_introduced_zero_affects_everything_before_the_fix() -> None:
    store = Records(record("X-1", "PyPI", "demo", {"introduced": "0"}, {"fixed": "1.5"}))
    assert ids(match([pypi("0.0.1")], store)) == ["X-1"]
    assert ids(match([pypi("1.4.9")], store)) == ["X-1"]
    assert match([pypi("1.5")], store) == []
    assert match([pypi("2.0")], store) == []
    assert match([pypi("1.4.9")], store)[0].fixed_versions == ("1.5",)


def test_introduced_zero_without_fix_affects_every_version() -> None:
    store = Records(record("X-1", "PyPI", "demo", {"introduced": "0"}))
    assert ids(match([pypi("999")], store)) == ["X-1"]
    assert match([pypi("999")], store)[0].fixed_versions == ()


def test_last_affected_includes_that_version_and_no_later() -> None:
    store = Records(record("X-1", "PyPI", "demo", {"introduced": "1.0"},
                           {"last_affected": "1.2"}))
    assert match([pypi("0.9")], store) == []
    assert ids(match([pypi("1.0")], store)) == ["X-1"]
    assert ids(match([pypi("1.2")], store)) == ["X-1"]
    assert match([pypi("1.2.1")], store) == []


def test_limit_bounds_the_range_from_above() -> None:
    store = Records(record("X-1", "PyPI", "demo", {"introduced": "1.0"}, {"limit": "2.0"}))
    assert ids(match([pypi("1.9")], store)) == ["X-1"]
    assert match([pypi("2.0")], store) == []
    assert match([pypi("3.0")], store) == []
    star = Records(record("X-1", "PyPI", "demo", {"introduced": "1.0"}, {"limit": "*"}))
    assert ids(match([pypi("3.0")], star)) == ["X-1"]


def test_two_intervals_in_one_range_and_events_out_of_order() -> None:
    store = Records(record("X-1", "npm", "left-pad", {"fixed": "3.2.5"},
                           {"introduced": "3.0.0"}, {"fixed": "1.0.2"},
                           {"introduced": "1.0.0"}, range_type="SEMVER"))

    def hit(v: str) -> bool:
        return bool(match([Package("npm", "npm", "left-pad", v)], store))

    assert [hit(v) for v in ("0.9.0", "1.0.0", "1.0.1", "1.0.2", "2.0.0", "3.1.0", "3.2.5")] \
        == [False, True, True, False, False, True, False]
    assert match([Package("npm", "npm", "left-pad", "1.0.1")], store)[0].fixed_versions \
        == ("1.0.2",)


def test_explicit_versions_match_without_ranges() -> None:
    store = Records(record("X-1", "PyPI", "demo", versions=["1.0", "1.1"]))
    assert ids(match([pypi("1.1")], store)) == ["X-1"]
    assert ids(match([pypi("1.0.0")], store)) == ["X-1"]  # equal in PEP 440
    assert match([pypi("1.2")], store) == []


def test_git_ranges_are_ignored_for_package_matching() -> None:
    store = Records(record("X-1", "PyPI", "demo", {"introduced": "0"},
                           {"fixed": "a" * 40}, range_type="GIT"))
    assert match([pypi("1.0")], store) == []


def test_pypi_names_are_normalised_on_both_sides() -> None:
    store = Records(record("X-1", "PyPI", "Zope.Interface", {"introduced": "0"},
                           {"fixed": "5"}))
    assert ids(match([pypi("4", name="zope_interface")], store)) == ["X-1"]


def test_distro_release_must_match_and_source_package_is_the_key() -> None:
    store = Records(record("DSA-1", "Debian:12", "openssl", {"introduced": "0"},
                           {"fixed": "3.0.11-1~deb12u2"}))
    libssl = Package("deb", "Debian:12", "libssl3", "3.0.11-1~deb12u1",
                     source_name="openssl")
    other_release = Package("deb", "Debian:11", "libssl3", "3.0.11-1~deb12u1",
                            source_name="openssl")
    assert ids(match([libssl], store)) == ["DSA-1"]
    assert match([other_release], store) == []
    assert match([Package("deb", "Debian:12", "libssl3", "3.0.11-1~deb12u1")], store) == []
    # a record without a release holds for every release
    anyrelease = Records(record("X-2", "Debian", "openssl", {"introduced": "0"}))
    assert ids(match([other_release], anyrelease)) == ["X-2"]


def test_aliases_make_one_finding_named_by_its_cve_with_the_worst_severity() -> None:
    store = Records(
        record("GHSA-aaaa-bbbb-cccc", "PyPI", "demo", {"introduced": "0"}, {"fixed": "2.0"},
               aliases=["CVE-2024-0001"], database_specific={"severity": "HIGH"}),
        record("PYSEC-2024-1", "PyPI", "demo", {"introduced": "0"}, {"fixed": "1.5"},
               aliases=["CVE-2024-0001", "GHSA-aaaa-bbbb-cccc"],
               severity=[{"type": "CVSS_V3",
                          "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]),
        record("PYSEC-2024-2", "PyPI", "demo", {"introduced": "0"}))
    findings = match([pypi("1.0")], store)
    assert ids(findings) == ["CVE-2024-0001", "PYSEC-2024-2"]
    merged = findings[0]
    assert set(merged.aliases) == {"GHSA-aaaa-bbbb-cccc", "PYSEC-2024-1"}
    assert merged.fixed_versions == ("1.5", "2.0")
    assert (merged.severity.level, merged.severity.score) == ("critical", 9.8)


def test_ecosystem_and_database_specific_fields_do_not_change_the_answer() -> None:
    plain = record("X-1", "PyPI", "demo", {"introduced": "0"}, {"fixed": "1.5"})
    decorated = record("X-1", "PyPI", "demo", {"introduced": "0"}, {"fixed": "1.5"})
    decorated["affected"][0]["ecosystem_specific"] = {"affected_functions": ["x"]}
    decorated["affected"][0]["database_specific"] = {"last_known_affected_version_range": "<9"}
    for version in ("1.0", "1.5", "3"):
        assert ids(match([pypi(version)], Records(plain))) \
            == ids(match([pypi(version)], Records(decorated)))


def test_an_invalid_version_is_reported_not_comparable_never_raised() -> None:
    store = Records(record("X-1", "PyPI", "demo", {"introduced": "0"}, {"fixed": "1.5"}),
                    record("X-2", "PyPI", "other", {"introduced": "0"},
                           {"fixed": "not a version"}))
    result = evaluate([pypi("garbage!"), pypi("1.0", name="other")], store)
    assert result.findings == []
    assert {(name, ident) for name, _, ident, _ in result.not_comparable} \
        == {("demo", "X-1"), ("other", "X-2")}


def test_withdrawn_records_never_match() -> None:
    store = Records(record("X-1", "PyPI", "demo", {"introduced": "0"},
                           withdrawn="2024-02-01T00:00:00Z"))
    assert match([pypi("1.0")], store) == []


def test_lookup_asks_only_for_the_packages_keys() -> None:
    store = Records(record("X-1", "PyPI", "demo", {"introduced": "0"}))
    match([pypi("1.0", name="Demo_Pkg"),
           Package("apk", "Alpine:v3.20", "libcrypto3", "3.3.0-r0", source_name="openssl")],
          store)
    assert set(store.asked) == {("PyPI", "demo-pkg"), ("Alpine:v3.20", "openssl"),
                                ("Alpine", "openssl")}


@pytest.mark.parametrize("bad", [
    {"id": "X", "affected": "nope"},
    {"id": "X", "affected": [{"package": {"ecosystem": "PyPI", "name": "a"},
                              "ranges": [{"type": "ECOSYSTEM",
                                          "events": [{"introduced": "0", "fixed": "1"}]}]}]},
    {"id": "../../etc/passwd"},
    {"affected": []},
    ["not", "an", "object"],
])
def test_malformed_records_are_refused_with_a_reason(bad: Any) -> None:
    with pytest.raises(osv.BadRecord):
        osv.parse(bad)
