"""Version order per ecosystem: apk against apk-tools' own documented pairs, the others
through their libraries on cases that show each ecosystem's rules."""

from __future__ import annotations

import pytest

from moorage.scan.advisories.apk import ApkVersion, InvalidApkVersion
from moorage.scan.advisories.versions import NotComparable, version_key

# Pairs from apk-tools' test/version.data (the order `apk version -t` must print), one or more
# for each rule (its "23_foo > 4_beta" aside: an unknown suffix is refused here, and such
# a version is reported as not comparable): leading-zero components compare as strings, later components and letters,
# pre- and post-release suffixes, several suffixes, revisions, long numbers.
APK_TOOLS_PAIRS = """
2.34 > 0.1.0_alpha
0.1.0_alpha = 0.1.0_alpha
0.1.0_alpha < 0.1.3_alpha
0.1.0_alpha2 > 0.1.0_alpha
0.1.0_alpha < 2.2.39-r1
1.0.4-r3 < 1.0.4-r4
1.1 > 1.1_alpha1
1.2.1 > 1.2
1.2 < 1.3_alpha
1.3_alpha2 < 1.3_alpha3
0.7.0 < 0.8_beta1
3.10.18-r1 > 2.3.0b-r1
2.3.0b-r1 < 2.3.0b-r2
0.12.3 > 0.12
0.12 < 0.13_beta1
1.2.11 < 1.2.12.1
0.2.0-r1 < 3.1_p16
3.1_p16 < 3.1_p17
3.1_p17 > 1.06-r6
1.06-r6 < 006
006 > 1.0.0
1.2.2-r1 > 1.2.2
9.3.4-r2 > 9.3.4
2.59 < 20050718-r1
3.9.8-r5 > 2.01.01_alpha10
1.0 > 0.99.3.20040818
2.6.15.20060110 < 2.6.16.20060323
3.0.0-r2 < 021109-r3
3.9_pre20060124 > 0.01
0.10.0-r1 > 0.10.0
0.10.0 < 0.10.1_rc1
1.1a < 1.3a
0.15.1b-r2 > 0.15.1b
22.7 > 2.1_pre20
2.1_pre20 < 2.1_pre26
02.08.01b < 4.77
1.2.07.8 < 1.2.12.04
1.2.12.04 < 1.2.12.05
1.07-r1 < 1.07.5
1.07 < 1.19
0.20070118 < 0.20070207_rc1
4.5_p1-r1 > 4.5_p1
1.8.5 < 1.8.5_p2
2.9.11_pre20051101-r3 > 2.9.11_pre20051101
1.6.8_p12-r1 > 1.6.8_p9-r2
0.9.28.1 < 087-r1
104-r11 > 104-r9
2.12r-r4 < 2.12r-r5
7.0.17 < 7.0.174
1.3-r0 < 1.3.1-r0
1.3_pre1-r1 < 1.3.2
1.0_p10-r0 > 1.0_p9-r0
0.1.0_alpha_pre2 < 0.1.0_alpha
1.0.0_pre20191002222144-r0 < 1.0.0_pre20210530193627-r0
"""


def _pairs() -> list[tuple[str, str, str]]:
    return [tuple(line.split()) for line in APK_TOOLS_PAIRS.strip().splitlines()]  # type: ignore[misc]


@pytest.mark.parametrize(("left", "op", "right"), _pairs())
def test_apk_order_is_apk_tools_order(left: str, op: str, right: str) -> None:
    a, b = ApkVersion(left), ApkVersion(right)
    assert {"<": a < b, ">": a > b, "=": a == b}[op], (left, op, right)
    mirrored = {"<": ">", ">": "<", "=": "="}[op]
    assert {"<": b < a, ">": b > a, "=": b == a}[mirrored]


def test_apk_suffixes_and_revisions_in_order() -> None:
    ordered = ["1.0_alpha", "1.0_alpha2", "1.0_beta", "1.0_pre1", "1.0_rc1", "1.0",
               "1.0-r1", "1.0_cvs", "1.0_svn", "1.0_git20240101", "1.0_hg", "1.0_p1",
               "1.0_p1-r2", "1.0a", "1.0.1"]
    assert sorted(ordered, key=ApkVersion) == ordered


@pytest.mark.parametrize("bad", ["", "1.0bc", "abc", "1.0-r", "1..2", "1.0_foo", "23_foo", "x" * 300])
def test_apk_refuses_what_apk_calls_invalid(bad: str) -> None:
    with pytest.raises(InvalidApkVersion):
        ApkVersion(bad)


@pytest.mark.parametrize(("ecosystem", "low", "high"), [
    ("PyPI", "2.10", "2.10.1"), ("PyPI", "1.0rc1", "1.0"), ("PyPI", "1.0", "1.0.post1"),
    ("Debian:12", "1.2-1", "1:0.9-1"), ("Debian:12", "1.0~rc1-1", "1.0-1"),
    ("Ubuntu:22.04:LTS", "2.0-1ubuntu1", "2.0-1ubuntu2"),
    ("Alpine:v3.20", "3.1.0-r9", "3.1.0a-r0"),
    ("npm", "1.0.0-beta.2", "1.0.0-beta.11"), ("npm", "1.0.0-rc.1", "1.0.0"),
    ("crates.io", "0.9.0", "0.10.0"),
    ("Go", "v0.0.0-20200101000000-abcdefabcdef", "v0.1.0"),
    ("Go", "v2.0.0+incompatible", "v2.1.0"),
    ("Maven", "1.0-SNAPSHOT", "1.0"), ("Maven", "1.0-alpha-1", "1.0-beta-1"),
    ("Maven", "2.9", "2.10"),
    ("Red Hat:enterprise_linux:9", "1.0-1.el9", "1.0-2.el9"),
    ("Rocky Linux:9", "2.0-1", "1:0.1-1"),
])
def test_each_ecosystem_orders_with_its_rules(ecosystem: str, low: str, high: str) -> None:
    assert version_key(ecosystem, low) < version_key(ecosystem, high)


def test_the_go_toolchain_as_binaries_name_it_orders_with_advisories_versions() -> None:
    # build information says "go1.21.5"; Go advisories for stdlib say "1.21.6" (SEMVER)
    assert version_key("Go", "go1.21.5", "SEMVER") < version_key("Go", "1.21.6", "SEMVER")
    assert version_key("Go", "go1.22.0") == version_key("Go", "1.22.0")


def test_semver_ranges_compare_as_semver_whatever_the_ecosystem() -> None:
    assert version_key("PyPI", "1.0.0-alpha", "SEMVER") < version_key("PyPI", "1.0.0", "SEMVER")


@pytest.mark.parametrize(("ecosystem", "bad"), [
    ("PyPI", "not a version"), ("npm", "1.x.y"), ("Debian:12", "a:1.0"),
    ("Alpine:v3.20", "1.0bc"), ("RubyGems", "1.0.0"), ("PyPI", "")])
def test_invalid_versions_and_unknown_ecosystems_are_not_comparable(ecosystem: str,
                                                                  bad: str) -> None:
    with pytest.raises(NotComparable):
        version_key(ecosystem, bad)
