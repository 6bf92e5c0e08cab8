"""The CVE allowlist's rules and storage: `apply_allowlist` with an injected clock (expiry,
aliases, case), the field rules, and the store on SQLite and PostgreSQL (replacement without
regard to case, the per-namespace bound, removal with the namespace)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import delete, insert

from moorage.access.errors import Invalid
from moorage.db.metadata import open_engine, sqlite_url
from moorage.db.migrate import upgrade
from moorage.db.schema import namespaces
from moorage.scan.allowlist import (AllowlistEntry, apply_allowlist, check_expiry, check_id,
                                    check_reason)
from moorage.scan.allowlist.store import AllowlistStore
from moorage.scan.model import Finding, Package, Severity

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def finding(ident: str, *aliases: str) -> Finding:
    return Finding(id=ident, aliases=aliases, package=Package("python", "PyPI", "Jinja2", "2.10"),
                   fixed_versions=("2.10.1",), severity=Severity("high"))


def entry(ident: str, reason: str = "not reachable", expires: datetime | None = None
          ) -> AllowlistEntry:
    return AllowlistEntry("team", ident, reason, expires, NOW - timedelta(days=1), "alice")


def test_an_entry_accepts_a_finding_by_its_id_or_any_alias_whatever_the_case() -> None:
    findings = [finding("CVE-2019-10906", "GHSA-462w-v97r-4m45", "PYSEC-2019-217"),
                finding("CVE-2020-28493", "GHSA-g3rq-g295-4j3m"),
                finding("CVE-2024-22195")]
    out = apply_allowlist(findings, [entry("pysec-2019-217", "sandbox not used"),
                                     entry("GHSA-G3RQ-G295-4J3M", "inputs are trusted")], NOW)
    assert [f.accepted for f in out] == ["sandbox not used", "inputs are trusted", None]
    assert [f.id for f in out] == [f.id for f in findings]  # nothing dropped or reordered
    assert findings[0].accepted is None  # pure: the input is untouched


def test_an_expired_entry_accepts_nothing_and_the_clock_is_injected() -> None:
    expiring = entry("CVE-2019-10906", expires=NOW + timedelta(hours=1))
    [before] = apply_allowlist([finding("CVE-2019-10906")], [expiring], NOW)
    [after] = apply_allowlist([finding("CVE-2019-10906")], [expiring], NOW + timedelta(hours=1))
    assert before.accepted == "not reachable" and after.accepted is None
    assert not expiring.expired(NOW) and expiring.expired(NOW + timedelta(hours=1))
    # an expired entry and an active one for the same advisory: the active one applies
    both = [entry("CVE-2019-10906", "old", NOW - timedelta(days=1)),
            entry("cve-2019-10906", "renewed")]
    assert apply_allowlist([finding("CVE-2019-10906")], both, NOW)[0].accepted == "renewed"


@pytest.mark.parametrize("ident", ["CVE-2021-44228", "GHSA-jfh8-c2jp-5v3q", "PYSEC-2019-217",
                                   "DLA-3425-1", "ALPINE-CVE-2023-1234", "GO-2022-0001",
                                   "RUSTSEC-2021-0001", " CVE-2021-44228 "])
def test_advisory_ids_that_pass(ident: str) -> None:
    assert check_id(ident) == ident.strip()


@pytest.mark.parametrize("ident", ["", "CVE", "CVE-", "2021-44228", "CVE 2021 44228",
                                   "CVE-2021-44228; DROP TABLE", "../etc/passwd",
                                   "CVE-2021-" + "1" * 70, "CVE-2021-4422\n8", "ÇVE-2021-1"])
def test_advisory_ids_that_are_refused(ident: str) -> None:
    with pytest.raises(Invalid):
        check_id(ident)


def test_reasons_and_expiries_are_bounded() -> None:
    assert check_reason("  fixed upstream, not in our build  ") == \
        "fixed upstream, not in our build"
    for bad in ("", "   ", "x" * 1001, "bell\x07"):
        with pytest.raises(Invalid):
            check_reason(bad)
    assert check_reason("x" * 1000) == "x" * 1000
    with pytest.raises(Invalid, match="time zone"):
        check_expiry(datetime(2027, 1, 1))
    with pytest.raises(Invalid):
        check_expiry(datetime(1970, 1, 2, tzinfo=timezone.utc))
    paris = timezone(timedelta(hours=1))
    assert check_expiry(datetime(2027, 1, 1, 1, 0, tzinfo=paris)) == \
        datetime(2027, 1, 1, 0, 0, tzinfo=timezone.utc)
    assert check_expiry(None) is None


def _engine(kind: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    if kind == "sqlite":
        (tmp_path / "db").mkdir()
        engine = open_engine(sqlite_url(tmp_path / "db"))
    else:
        from tests.support.backends import shared
        engine = open_engine(shared().postgres().create_database(
            f"allowlist_{uuid.uuid4().hex[:8]}"))
    upgrade(engine)
    return engine


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_store(kind: str, tmp_path: Path) -> None:
    engine = _engine(kind, tmp_path)
    with engine.begin() as conn:
        team = conn.execute(insert(namespaces).values(name="team", created_at=time.time())
                            ).inserted_primary_key[0]
        other = conn.execute(insert(namespaces).values(name="other", created_at=time.time())
                             ).inserted_primary_key[0]
    store = AllowlistStore(engine, limit=3)
    expiry = datetime(2027, 1, 31, tzinfo=timezone.utc)
    first, created = store.put(team, "GHSA-jfh8-c2jp-5v3q", "no JNDI", expiry, "alice")
    assert created and (first.namespace, first.id, first.reason, first.expires_at,
                        first.created_by) == ("team", "GHSA-jfh8-c2jp-5v3q", "no JNDI",
                                              expiry, "alice")
    # the same advisory in another case replaces the entry
    again, created = store.put(team, "ghsa-jfh8-c2jp-5v3q", "still no JNDI", None, "bob")
    assert not created and again.reason == "still no JNDI" and again.expires_at is None
    store.put(team, "CVE-2020-1747", "yaml from us only", None, "alice")
    store.put(other, "CVE-2020-1747", "other team", None, "carol")
    assert [e.id for e in store.list(team)] == ["CVE-2020-1747", "ghsa-jfh8-c2jp-5v3q"]
    assert [e.reason for e in asyncio.run(store.entries_for("other"))] == ["other team"]
    store.put(team, "CVE-2020-14343", "three", None, "alice")
    with pytest.raises(Invalid, match="at most 3 entries"):
        store.put(team, "CVE-2021-0001", "four", None, "alice")
    store.put(team, "CVE-2020-14343", "replacing is fine at the bound", None, "alice")
    assert store.count(team) == 3
    assert store.delete(team, "GHSA-JFH8-C2JP-5V3Q") and not store.delete(team, "CVE-2000-1")
    assert store.count(team) == 2
    with engine.begin() as conn:  # a namespace's entries go with it
        conn.execute(delete(namespaces).where(namespaces.c.id == other))
    assert asyncio.run(store.entries_for("other")) == []
    engine.dispose()
