"""The safe form (moorage.audit.chain): whatever an event carries, its entry can be hashed,
stored on either database and verified by the documented recipe, and stays small."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moorage.audit import AuditStore
from moorage.audit.chain import (MAX_DEPTH, MAX_DETAIL, MAX_TEXT, Entry, canonical,
                                 canonical_detail, entry_from_event, json_safe, safe_text)
from moorage.db.metadata import MetadataStore, open_engine, sqlite_url
from moorage.registry.events import Event

# Every code point, lone surrogates and NUL included (hypothesis leaves surrogates out unless
# asked).
ANY_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, categories=None,
                                 exclude_categories=()), max_size=40)
SCALARS = (st.none() | st.booleans() | st.floats() | st.integers() |
           st.integers(min_value=-(10**400), max_value=10**400) | ANY_TEXT)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=6) |
                      st.dictionaries(ANY_TEXT | st.integers(), inner, max_size=6),
                      max_leaves=40)


def assert_safe(entry: Entry) -> None:
    """Encodable as UTF-8, no NUL in a column, a detail that is canonical JSON of an object
    whose safe form is itself (so a verifier re-serialising it gets the same text)."""
    canonical(1, entry).encode("utf-8")
    for column in (entry.actor, entry.address, entry.action, entry.target,
                   entry.repository or "", entry.result):
        assert "\x00" not in column
        column.encode("utf-8")
    assert math.isfinite(entry.at)
    detail = json.loads(entry.detail_json)
    assert isinstance(detail, dict)
    assert canonical_detail(detail) == entry.detail_json
    assert json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False) == entry.detail_json
    assert len(entry.detail_json) <= MAX_DETAIL


@given(detail=VALUES, text=ANY_TEXT, at=st.floats() | st.integers() | st.none())
def test_any_event_makes_a_safe_entry(detail: Any, text: str, at: Any) -> None:
    event = Event(text or "x", repository=text, digest=text, media_type=text, tag=text,
                  result=text, target=text, actor=text, address=text,
                  detail={"value": detail, text: detail}, at=at)  # type: ignore[arg-type]
    assert_safe(entry_from_event(event, clock=lambda: 1.0))
    bare = Event("pull", text, text, text, text, size=detail if isinstance(detail, int)
                 else None, actor=text, at=at)  # type: ignore[arg-type]
    assert_safe(entry_from_event(bare, clock=lambda: 1.0))


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def _wrapped(times: int, inner: Any, make: Any) -> Any:
    for _ in range(times):
        inner = make(inner)
    return inner


loop: dict[str, Any] = {}
loop["self"] = loop
TOO_DEEP = "<nested too deep>"


@pytest.mark.parametrize("value, recorded", [
    (float("nan"), "NaN"), (float("inf"), "Infinity"), (float("-inf"), "-Infinity"),
    (2**53 - 1, 2**53 - 1), (2**53, "9007199254740992"), (-(2**60), str(-(2**60))),
    (10**4000, "<integer of 13288 bits>"), (-(10**4000), "<negative integer of 13288 bits>"),
    ("a\x00b\ud800c\udfff", "a\ufffdb\ufffdc\ufffd"), ("é 😀", "é 😀"),
    ("x" * 5000, "x" * (MAX_TEXT - 1) + "…"),
    ({3, 1, 2}, [1, 2, 3]), (b"\x00raw", "b'\\x00raw'"), (Unprintable(), "<unprintable Unprintable>"),
    ({1: "a", None: "b"}, {"1": "a", "None": "b"}),
    (_nested(20), _wrapped(MAX_DEPTH - 1, TOO_DEEP, lambda v: [v])),
    (loop, _wrapped(MAX_DEPTH - 1, TOO_DEEP, lambda v: {"self": v})),
])
def test_the_documented_safe_form(value: Any, recorded: Any) -> None:
    assert json_safe({"v": value}) == {"v": recorded}


def test_many_values_are_cut_and_a_long_detail_is_replaced() -> None:
    many = json_safe({"list": list(range(2000))})["list"]
    assert many[-1] == f"… {2000 - (len(many) - 1)} more" and len(many) < 600
    wide = json_safe({str(i): i for i in range(2000)})
    assert wide["…"].endswith(" more") and len(wide) < 600
    long = {f"k{i}": "v" * 1000 for i in range(40)}
    full = json.dumps(long, sort_keys=True, separators=(",", ":"))
    assert len(full) > MAX_DETAIL
    assert json.loads(canonical_detail(long)) == {"oversized": len(full),
                                                  "fields": sorted(long)[:32]}


def test_safe_text_keeps_what_can_be_stored() -> None:
    assert safe_text("plain") == "plain"
    assert safe_text("\x00") == "\ufffd" and safe_text("é\x00") == "é\ufffd"
    assert safe_text("😀\ud83d") == "😀\ufffd"


@pytest.mark.parametrize("value", [float("nan"), "\ud800", "a\x00b", 10**4000, _nested(50)])
def test_hostile_entries_store_and_verify(tmp_path: Path, value: Any) -> None:
    engine = open_engine(sqlite_url(tmp_path))
    MetadataStore(engine).create_schema()
    store = AuditStore(engine)
    text = value if isinstance(value, str) else "x"
    store.append([entry_from_event(Event("namespace.create", target=text, actor=text,
                                         detail={"values": {"name": value}}))])
    assert store.verify().ok
