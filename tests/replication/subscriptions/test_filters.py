"""The tag filters on their own (pure): SemVer ranges in npm's grammar, regexes refused when
they could backtrack badly, globs; the keep-newest order."""

from __future__ import annotations

import pytest

from moorage.access.errors import Invalid
from moorage.replication.subscriptions.filters import TagFilter
from moorage.replication.subscriptions.model import Subscription, newest_first

TAGS = ["0.2.3", "0.2.9", "0.3.0", "1.0.0", "1.2.0", "1.2.5", "v1.3.0", "1.4.0", "1.9.9",
        "2.0.0-rc.1", "2.0.0", "2.0.3", "2.1.0", "latest", "1.4", "sha256-abc"]


def matching(kind: str, pattern: str) -> list[str]:
    tag_filter = TagFilter(kind, pattern)
    tag_filter.check()
    return [tag for tag in TAGS if tag_filter.matches(tag)]


@pytest.mark.parametrize("pattern,expected", [
    (">=1.2 <2", ["1.2.0", "1.2.5", "v1.3.0", "1.4.0", "1.9.9"]),
    ("^1.4", ["1.4.0", "1.9.9"]),
    ("^0.2.3", ["0.2.3", "0.2.9"]),
    ("~2.0", ["2.0.0", "2.0.3"]),
    ("1.2.x", ["1.2.0", "1.2.5"]),
    ("1.2 - 1.4", ["1.2.0", "1.2.5", "v1.3.0", "1.4.0"]),
    (">1.2", ["v1.3.0", "1.4.0", "1.9.9", "2.0.0", "2.0.3", "2.1.0"]),
    ("<1.0.0 || >=2.1", ["0.2.3", "0.2.9", "0.3.0", "2.1.0"]),
    (">=2.0.0-rc.0 <2.0.1", ["2.0.0-rc.1", "2.0.0"]),  # a pre-release only when named
    ("=1.0.0", ["1.0.0"]),
])
def test_semver_ranges(pattern: str, expected: list[str]) -> None:
    assert matching("semver", pattern) == expected


def test_globs_and_regexes_match_the_whole_tag() -> None:
    assert matching("glob", "1.*") == ["1.0.0", "1.2.0", "1.2.5", "1.4.0", "1.9.9", "1.4"]
    assert matching("regex", r"v?1\.\d+\.\d+") == ["1.0.0", "1.2.0", "1.2.5", "v1.3.0",
                                                    "1.4.0", "1.9.9"]
    assert matching("regex", "1") == []  # not a search: the whole tag


@pytest.mark.parametrize("kind,pattern,reason", [
    ("regex", "(a+)+", "repetition inside a repetition"),
    ("regex", "(x*)*y", "repetition inside a repetition"),
    ("regex", "(a|ab)*c", "repeated alternation"),
    ("regex", r"(a)\1", "backreference"),
    ("regex", ".*a.*b.*c.*", "at most 3 unbounded"),
    ("regex", "(", "does not compile"),
    ("regex", "a" * 256, "1-255"),
    ("semver", "^", "not a version"),
    ("semver", "1.2.3.4", "not a version"),
    ("semver", ">=1 ||", "empty alternative"),
    ("semver", " ".join(["1"] * 40), "at most 32"),
    ("glob", "{a,b", "unclosed"),
    ("xpath", "*", "glob, regex or semver"),
])
def test_bad_filters_are_refused(kind: str, pattern: str, reason: str) -> None:
    with pytest.raises(Invalid, match=reason.replace("(", r"\(")):
        TagFilter(kind, pattern).check()


def subscription(kind: str) -> Subscription:
    return Subscription(1, "s", "https://r", "a/b", None, False, None, False, "c/d", kind,
                        "*", "", 2, True, 0.0, 0.0, "")


def test_newest_first() -> None:
    # a range: by version, whatever came in when
    assert newest_first(subscription("semver"), ["1.10.0", "1.9.0", "v1.11.0"], {}) == \
        ["v1.11.0", "1.10.0", "1.9.0"]
    # a glob: tags not seen yet are newest (later in the listing first), then by when
    # the subscription saw them move
    seqs = {"b": 5, "a": 7}
    assert newest_first(subscription("glob"), ["a", "b", "c", "d"], seqs) == \
        ["d", "c", "a", "b"]
