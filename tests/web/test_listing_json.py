"""Tag and catalog answers are spelled by hand for speed; they must equal json.dumps."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from moorage.web.registry_api import _listing_json

names = st.lists(st.text(max_size=12), max_size=20)


@given(items=names, name=st.none() | st.text(max_size=12))
def test_listing_json_is_exactly_json_dumps(items: list[str], name: str | None) -> None:
    extra = {} if name is None else {"name": name}
    key = "repositories" if name is None else "tags"
    assert _listing_json(extra, key, items) == json.dumps({**extra, key: items}).encode()
