"""Severity levels from CVSS vectors (scores by the `cvss` library, FIRST's bands), and from
a database's own word when there is no vector."""

from __future__ import annotations

import pytest

from moorage.scan.advisories import severity


@pytest.mark.parametrize(("vector", "score", "level"), [
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8, "critical"),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", 7.5, "high"),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1, "medium"),
    ("CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.8, "low"),
    ("CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:C/C:H/I:N/A:N", 6.8, "medium"),
    ("AV:N/AC:L/Au:N/C:P/I:P/A:P", 7.5, "high"),  # v2 has no critical
    ("AV:N/AC:L/Au:N/C:C/I:C/A:C", 10.0, "high"),
    ("AV:N/AC:M/Au:N/C:N/I:P/A:N", 4.3, "medium"),
    ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 9.3, "critical"),
])
def test_cvss_vectors_give_the_standard_levels(vector: str, score: float, level: str) -> None:
    found = severity.from_vector(vector)
    assert found is not None
    assert (found.score, found.level, found.vector) == (score, level, vector)


@pytest.mark.parametrize("bad", ["", "CVSS:3.1/AV:X", "nonsense", "CVSS:3.1/" + "A" * 600])
def test_invalid_vectors_give_nothing(bad: str) -> None:
    assert severity.from_vector(bad) is None


def test_the_database_word_is_used_without_a_vector_and_the_vector_wins() -> None:
    assert severity.of_record({"database_specific": {"severity": "MODERATE"}}).level == "medium"
    assert severity.of_record({"database_specific": {"severity": "HIGH"}}).level == "high"
    assert severity.of_record({}).level == "unknown"
    both = {"severity": [{"type": "CVSS_V3",
                          "score": "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"}],
            "database_specific": {"severity": "CRITICAL"}}
    assert severity.of_record(both).level == "low"
