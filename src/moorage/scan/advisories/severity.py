"""Severity of an advisory: the CVSS base score of its vector (the `cvss` library, v2, v3.x
and v4), banded into a level, or the database's own word when there is no vector.

Bands (FIRST's qualitative scale): v3 and v4: 9.0–10 critical, 7.0–8.9 high, 4.0–6.9 medium,
0.1–3.9 low, 0.0 (no impact) low as well, since LEVELS has no "none"; v2 (which has no
"critical"): 7.0–10 high, 4.0–6.9 medium, below low. Without a vector, the text of
`database_specific.severity` (GitHub's "CRITICAL"/"HIGH"/"MODERATE"/"LOW") is used, then
"unknown". Aliases merged into one finding take the worst (model.LEVELS is worst first).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from moorage.scan.model import LEVELS, Severity

UNKNOWN = Severity("unknown")
_WORDS = {"critical": "critical", "high": "high", "important": "high", "moderate": "medium",
          "medium": "medium", "low": "low", "negligible": "low", "unimportant": "low"}
MAX_VECTOR = 512


def level_of(score: float, version: int) -> str:
    if version == 2:
        return "high" if score >= 7.0 else "medium" if score >= 4.0 else "low"
    if score >= 9.0:
        return "critical"
    return "high" if score >= 7.0 else "medium" if score >= 4.0 else "low"


def from_vector(vector: str) -> Severity | None:
    """The severity a CVSS vector gives, or None when the vector is not valid CVSS."""
    import cvss
    from cvss.exceptions import CVSSError

    vector = vector.strip()
    if not vector or len(vector) > MAX_VECTOR:
        return None
    try:
        if vector.startswith("CVSS:4"):
            score, version = float(cvss.CVSS4(vector).base_score), 4
        elif vector.startswith("CVSS:3"):
            score, version = float(cvss.CVSS3(vector).scores()[0]), 3
        else:
            score, version = float(cvss.CVSS2(vector).scores()[0]), 2
    except (CVSSError, ValueError, KeyError, TypeError, IndexError):
        return None
    return Severity(level_of(score, version), score, vector)


def from_word(word: object) -> Severity | None:
    if isinstance(word, str):
        level = _WORDS.get(word.strip().lower())
        if level:
            return Severity(level)
    return None


def of_record(record: dict[str, Any]) -> Severity:
    """An OSV record's severity: the worst of its CVSS vectors (top level, then per affected
    package), else its database's word for it, else unknown."""
    found: list[Severity] = []
    entries = list(record.get("severity") or [])
    for affected in record.get("affected") or []:
        if isinstance(affected, dict):
            entries.extend(affected.get("severity") or [])
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("score"), str):
            severity = from_vector(entry["score"])
            if severity is not None:
                found.append(severity)
    if found:
        return worst(found)
    specific = record.get("database_specific")
    word = from_word(specific.get("severity")) if isinstance(specific, dict) else None
    return word or UNKNOWN


def worst(severities: Iterable[Severity]) -> Severity:
    """The worst level; among equal levels, the highest score."""
    return min(severities, key=lambda s: (LEVELS.index(s.level), -(s.score or 0.0)),
               default=UNKNOWN)
