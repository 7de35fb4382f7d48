"""``nested_deeper_than`` (a scan of the text's brackets) agrees with a walk of the parsed value.

The scan replaced a walk over every parsed value on the submit path; strings holding brackets,
quotes and backslashes must not fool it."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agent.api_models import nested_deeper_than

_TRICKY = st.text(alphabet='[]{}"\\\\ué a', max_size=8)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TRICKY,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TRICKY, inner, max_size=3),
    max_leaves=40,
)


def _walked_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_walked_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_walked_depth(v) for v in value), default=0)
    return 0


@given(_JSON, st.integers(min_value=0, max_value=12), st.booleans())
def test_scan_agrees_with_a_walk(value: Any, limit: int, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8")
    assert nested_deeper_than(body, limit) == (_walked_depth(value) > limit)


def test_brackets_inside_strings_do_not_count() -> None:
    body = json.dumps({"a": "[[[[{{{{" * 20, "b": ['"]]]\\'] * 3}).encode("utf-8")
    assert not nested_deeper_than(body, 2)
    assert nested_deeper_than(body, 1)


def test_deep_nesting_is_found() -> None:
    deep: Any = "x"
    for _ in range(70):
        deep = [{"k": deep}]
    assert nested_deeper_than(json.dumps(deep).encode("utf-8"), 64)
