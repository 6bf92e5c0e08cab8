"""apk (Alpine, Wolfi) version order, written here because no maintained Python library
handles apk's suffixes (`_alpha` … `_rc` before the release, `_cvs` … `_git`, `_hg`, `_p`
after it), its leading-zero rule and `-rN` as apk-tools does.

The grammar is apk-tools' (inherited from Gentoo's package manager specification):

    <number>{.<number>}[<letter>]{_<suffix>[<number>]}[~<hex>][-r<number>]

Order, component by component: the first number as an integer; every later number as an
integer, unless either side starts with "0", then as a string with trailing zeros removed
(so 1.07 < 1.1 and 1.2.12.04 < 1.2.12.05); more numbers sort later (1.2.1 > 1.2); a letter
after none; suffixes pairwise (alpha < beta < pre < rc < cvs < svn < git < hg < p, then their
numbers), and when one side has more suffixes the extra one decides: a post-release suffix
sorts after nothing, a pre-release one before it (1.0_alpha < 1.0 < 1.0_p1); then the
revision. The `~<hex>` commit marker does not take part. Tested against apk-tools' own list
of ordered pairs (test/version.data) in tests/scan/advisories.
"""

from __future__ import annotations

import re
from functools import total_ordering

_SUFFIXES = ("alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p")
_PRE = frozenset(("alpha", "beta", "pre", "rc"))
_RANK = {name: i for i, name in enumerate(_SUFFIXES)}
_GRAMMAR = re.compile(
    r"(?P<first>\d+)(?P<rest>(?:\.\d+)*)(?P<letter>[a-z]?)"
    r"(?P<suffixes>(?:_(?:" + "|".join(_SUFFIXES) + r")\d*)*)"
    r"(?:~[0-9a-f]+)?(?:-r(?P<revision>\d+))?")
_SUFFIX = re.compile(r"_(" + "|".join(_SUFFIXES) + r")(\d*)")
MAX_LENGTH = 256


class InvalidApkVersion(ValueError):
    pass


def _cmp(a: object, b: object) -> int:
    return (a > b) - (a < b)  # type: ignore[operator]


@total_ordering
class ApkVersion:
    """One parsed apk version; compares with others by apk-tools' rules."""

    __slots__ = ("text", "first", "rest", "letter", "suffixes", "revision")

    def __init__(self, text: str) -> None:
        if len(text) > MAX_LENGTH:
            raise InvalidApkVersion("version too long")
        match = _GRAMMAR.fullmatch(text)
        if match is None:
            raise InvalidApkVersion(f"not an apk version: {text[:80]!r}")
        self.text = text
        self.first = int(match["first"])
        self.rest = tuple(match["rest"].split(".")[1:])
        self.letter = match["letter"]
        self.suffixes = tuple((_RANK[name], int(num or 0))
                              for name, num in _SUFFIX.findall(match["suffixes"]))
        self.revision = int(match["revision"] or 0)

    def compare(self, other: ApkVersion) -> int:
        order = _cmp(self.first, other.first)
        if order:
            return order
        for mine, theirs in zip(self.rest, other.rest):
            if mine.startswith("0") or theirs.startswith("0"):
                order = _cmp(mine.rstrip("0"), theirs.rstrip("0"))
            else:
                order = _cmp(int(mine), int(theirs))
            if order:
                return order
        order = _cmp(len(self.rest), len(other.rest))
        if order:
            return order
        order = _cmp(self.letter, other.letter)
        if order:
            return order
        for mine, theirs in zip(self.suffixes, other.suffixes):
            order = _cmp(mine, theirs)
            if order:
                return order
        if len(self.suffixes) != len(other.suffixes):
            longer, sign = ((self, 1) if len(self.suffixes) > len(other.suffixes)
                            else (other, -1))
            extra = _SUFFIXES[longer.suffixes[min(len(self.suffixes), len(other.suffixes))][0]]
            return -sign if extra in _PRE else sign
        return _cmp(self.revision, other.revision)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApkVersion) and self.compare(other) == 0

    def __lt__(self, other: ApkVersion) -> bool:
        return self.compare(other) < 0

    def __hash__(self) -> int:  # equal versions may differ in text ("1.0" vs "1.0-r0")
        return hash((self.first, self.revision))

    def __repr__(self) -> str:
        return f"ApkVersion({self.text!r})"
