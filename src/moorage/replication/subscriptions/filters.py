"""A subscription's tag filter: a glob, a regular expression, or a SemVer range. Pure.

Why the regex is safe without a timeout: Python's `re` backtracks, so a pattern such as
`(a+)+$` takes exponential time on a near-miss. Instead of a matcher with a timeout, a
pattern is refused up front when it could backtrack badly: it is at most MAX_PATTERN
characters, has no backreference, no unbounded repetition inside another repetition or
around an alternation (`(a+)+`, `(a|ab)*`), and at most MAX_UNBOUNDED unbounded repeats
(`.*` counts). Tags are at most 128 characters, so what is left is polynomial with a small
exponent on a tiny input. The pattern must match the whole tag (`fullmatch`).

SemVer ranges follow npm's grammar, the one people write: `>=1.2 <2`, `^1.4`, `~2.0`,
`1.2.x`, `1.2 - 1.4`, alternatives joined by `||`. A tag is a version when it is SemVer 2.0
(`1.4.2`, `1.4.2-rc.1`), with or without a leading `v`; other tags (`latest`, `1.4`) never
match a range. As in npm, a pre-release (`2.0.0-rc.1`) matches only a range that names a
pre-release of the same major.minor.patch.
"""

from __future__ import annotations

import re
import re._parser as sre  # type: ignore[import-not-found]
from dataclasses import dataclass
from functools import lru_cache

import semver

from moorage.access.errors import Invalid
from moorage.replication.model import glob_match, _glob_re

KINDS = ("glob", "regex", "semver")
MAX_PATTERN = 255
MAX_UNBOUNDED = 3
MAX_COMPARATORS = 32
_UNBOUNDED = sre.MAXREPEAT
_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", None))


# -- regex ----------------------------------------------------------------------------------
def _walk(items: object, inside_repeat: bool, counts: list[int]) -> None:
    """Refuse what could backtrack badly (see the module's docstring)."""
    for op, av in items:  # type: ignore[attr-defined]
        if op in (sre.GROUPREF, sre.GROUPREF_EXISTS):
            raise Invalid("a backreference is not allowed in a tag regex")
        if op in _REPEATS:
            low, high, body = av
            unbounded = high is _UNBOUNDED or high > 64
            if unbounded:
                counts[0] += 1
                if inside_repeat:
                    raise Invalid("a repetition inside a repetition (such as (a+)+) is not "
                                  "allowed in a tag regex: it can take exponential time")
                if _has_branch(body):
                    raise Invalid("a repeated alternation (such as (a|ab)*) is not allowed "
                                  "in a tag regex: it can take exponential time")
            _walk(body, inside_repeat or unbounded, counts)
        elif op == sre.SUBPATTERN:
            _walk(av[-1], inside_repeat, counts)
        elif op == sre.BRANCH:
            for branch in av[1]:
                _walk(branch, inside_repeat, counts)
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            _walk(av[1], inside_repeat, counts)
        elif op == getattr(sre, "ATOMIC_GROUP", None):
            _walk(av, inside_repeat, counts)


def _has_branch(items: object) -> bool:
    for op, av in items:  # type: ignore[attr-defined]
        if op == sre.BRANCH:
            return True
        if op == sre.SUBPATTERN and _has_branch(av[-1]):
            return True
    return False


@lru_cache(maxsize=256)
def compile_regex(pattern: str) -> re.Pattern[str]:
    if not pattern or len(pattern) > MAX_PATTERN:
        raise Invalid(f"a tag regex is 1-{MAX_PATTERN} characters")
    try:
        parsed = sre.parse(pattern)
        compiled = re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise Invalid(f"the tag regex does not compile: {str(exc)[:200]}") from None
    counts = [0]
    _walk(parsed, False, counts)
    if counts[0] > MAX_UNBOUNDED:
        raise Invalid(f"a tag regex has at most {MAX_UNBOUNDED} unbounded repetitions "
                      "(*, +, {n,})")
    return compiled


# -- SemVer ---------------------------------------------------------------------------------
_PARTIAL = re.compile(r"v?(\d{1,9}|[xX*])(?:\.(\d{1,9}|[xX*]))?(?:\.(\d{1,9}|[xX*]))?"
                      r"(?:-([0-9A-Za-z.-]{1,64}))?(?:\+[0-9A-Za-z.-]{1,64})?")
_COMPARATOR = re.compile(r"(\^|~>?|>=|<=|>|<|=)?\s*(\S+)")
_HYPHEN = re.compile(r"^\s*(\S+)\s+-\s+(\S+)\s*$")


def tag_version(tag: str) -> semver.Version | None:
    """The SemVer version a tag is (a leading `v` allowed), or None."""
    text = tag[1:] if tag[:1] in ("v", "V") else tag
    if not text[:1].isdigit():
        return None
    try:
        return semver.Version.parse(text)
    except (ValueError, TypeError):
        return None


@dataclass(frozen=True)
class _Bound:
    op: str  # one of >=, >, <=, <, =
    version: semver.Version
    explicit_pre: bool  # the user wrote a pre-release here

    def holds(self, v: semver.Version) -> bool:
        c = v.compare(self.version)
        return {">=": c >= 0, ">": c > 0, "<=": c <= 0, "<": c < 0, "=": c == 0}[self.op]


def _lowest(major: int, minor: int = 0, patch: int = 0) -> semver.Version:
    """The smallest version of major.minor.patch, below all its pre-releases."""
    return semver.Version(major, minor, patch, prerelease="0")


def _partial(text: str) -> tuple[list[int | None], str | None]:
    found = _PARTIAL.fullmatch(text)
    if found is None:
        raise Invalid(f"{text[:40]!r} is not a version (such as 1, 1.4 or 1.4.2)")
    parts: list[int | None] = []
    for part in found.groups()[:3]:
        number = None if part is None or part in "xX*" else int(part)
        if parts and parts[-1] is None:
            number = None  # after a wildcard everything is a wildcard
        parts.append(number)
    return parts, found.group(4)


def _comparator(op: str, text: str) -> list[_Bound]:
    (major, minor, patch), pre = _partial(text)
    if major is None:
        return [] if op in ("", "=", ">=", "<=", "^", "~", "~>") else \
            [_Bound("<", _lowest(0), False)]  # >* or <*: nothing
    exact = minor is not None and patch is not None
    full = semver.Version(major, minor or 0, patch or 0, prerelease=pre)
    bounds: list[_Bound]
    if op in ("", "="):
        if exact:
            return [_Bound("=", full, pre is not None)]
        upper = _lowest(major + 1) if minor is None else _lowest(major, minor + 1)
        return [_Bound(">=", _lowest(major, minor or 0), False), _Bound("<", upper, False)]
    if op == "^":
        if major > 0 or minor is None:
            upper = _lowest(major + 1)
        elif minor > 0 or patch is None:
            upper = _lowest(0, minor + 1)
        else:
            upper = _lowest(0, 0, patch + 1)
        return [_Bound(">=", full, pre is not None), _Bound("<", upper, False)]
    if op in ("~", "~>"):
        upper = _lowest(major + 1) if minor is None else _lowest(major, minor + 1)
        return [_Bound(">=", full, pre is not None), _Bound("<", upper, False)]
    if op == ">=":
        bounds = [_Bound(">=", full if exact else _lowest(major, minor or 0), pre is not None)]
    elif op == ">":
        if exact:
            bounds = [_Bound(">", full, pre is not None)]
        else:
            bounds = [_Bound(">=", _lowest(major + 1) if minor is None
                             else _lowest(major, minor + 1), False)]
    elif op == "<":
        bounds = [_Bound("<", full if exact else _lowest(major, minor or 0), pre is not None)]
    else:  # <=
        if exact:
            bounds = [_Bound("<=", full, pre is not None)]
        else:
            bounds = [_Bound("<", _lowest(major + 1) if minor is None
                             else _lowest(major, minor + 1), False)]
    return bounds


@dataclass(frozen=True)
class SemverRange:
    alternatives: tuple[tuple[_Bound, ...], ...]

    def matches(self, version: semver.Version) -> bool:
        return any(_set_holds(bounds, version) for bounds in self.alternatives)


def _set_holds(bounds: tuple[_Bound, ...], v: semver.Version) -> bool:
    if not all(b.holds(v) for b in bounds):
        return False
    if v.prerelease is None:
        return True
    return any(b.explicit_pre and b.version.prerelease is not None
               and b.version.to_tuple()[:3] == v.to_tuple()[:3] for b in bounds)


@lru_cache(maxsize=256)
def parse_range(text: str) -> SemverRange:
    if not text.strip() or len(text) > MAX_PATTERN:
        raise Invalid(f"a SemVer range is 1-{MAX_PATTERN} characters")
    alternatives: list[tuple[_Bound, ...]] = []
    count = 0
    for part in text.split("||"):
        bounds: list[_Bound] = []
        hyphen = _HYPHEN.match(part)
        if hyphen:
            bounds += _comparator(">=", hyphen.group(1)) + _comparator("<=", hyphen.group(2))
        else:
            rest = part.strip()
            if not rest:
                raise Invalid("an empty alternative in the SemVer range")
            position = 0
            while position < len(rest):
                found = _COMPARATOR.match(rest, position)
                if found is None:
                    raise Invalid(f"cannot read the SemVer range at {rest[position:][:40]!r}")
                bounds += _comparator(found.group(1) or "", found.group(2))
                position = found.end()
                while position < len(rest) and rest[position].isspace():
                    position += 1
        count += len(bounds)
        if count > MAX_COMPARATORS:
            raise Invalid(f"a SemVer range has at most {MAX_COMPARATORS} comparisons")
        alternatives.append(tuple(bounds))
    return SemverRange(tuple(alternatives))


# -- the filter -----------------------------------------------------------------------------
@dataclass(frozen=True)
class TagFilter:
    kind: str
    pattern: str

    def check(self) -> None:
        """Refuse a filter that cannot work, with the reason."""
        if self.kind not in KINDS:
            raise Invalid(f"the tag filter kind is glob, regex or semver, not "
                          f"{self.kind[:20]!r}")
        if not self.pattern or len(self.pattern) > MAX_PATTERN:
            raise Invalid(f"the tag filter is 1-{MAX_PATTERN} characters")
        if self.kind == "glob":
            _glob_re(self.pattern)
        elif self.kind == "regex":
            compile_regex(self.pattern)
        else:
            parse_range(self.pattern)

    def matches(self, tag: str) -> bool:
        if self.kind == "glob":
            return glob_match(self.pattern, tag)
        if self.kind == "regex":
            return compile_regex(self.pattern).fullmatch(tag) is not None
        version = tag_version(tag)
        return version is not None and parse_range(self.pattern).matches(version)
