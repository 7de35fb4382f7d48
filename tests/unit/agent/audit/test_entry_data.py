"""``agent.audit.entry_data`` builds the chained bytes without pydantic; they must be exactly
``federation.audit_chain.entry_bytes`` of the validated ``AuditEntry``, or verification by any
other implementation of the chain would break."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from agent.audit import entry_data
from federation.audit_chain import AuditEntry, entry_bytes
from federation.canonical import format_time

_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
_MAYBE = st.none() | _TEXT
_JSON_LEAF = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | _TEXT
_NESTED = st.lists(_JSON_LEAF, max_size=3) | st.dictionaries(_TEXT, _JSON_LEAF, max_size=2)
_BASIS = st.dictionaries(_TEXT, _JSON_LEAF | _NESTED, max_size=3)


@st.composite
def _fields(draw: st.DrawFn) -> dict[str, object]:
    return {
        "action": draw(_TEXT), "actor": draw(_TEXT), "message_id": draw(_MAYBE),
        "counterparty": draw(_MAYBE), "isa_id": draw(_MAYBE), "isa_version": draw(_MAYBE),
        "purpose": draw(_MAYBE), "message_type": draw(_MAYBE), "risk": draw(_MAYBE),
        "lawful_basis": draw(_BASIS), "outcome": draw(_MAYBE),
        "fields_shared": tuple(draw(st.lists(_TEXT, max_size=4))),
        "fields_withheld": tuple({"path": p, "reason": r}
                                 for p, r in draw(st.lists(st.tuples(_TEXT, _TEXT), max_size=3))),
        "detail": draw(_TEXT),
        "subject_keys": tuple(sorted(draw(st.sets(st.text("0123456789abcdef", min_size=64,
                                                          max_size=64), max_size=3)))),
        "actor_id": draw(_TEXT), "actor_role": draw(_TEXT), "justification": draw(_MAYBE),
        "fields_altered": tuple({"path": p, "how": h}
                                for p, h in draw(st.lists(st.tuples(_TEXT, _TEXT), max_size=3))),
    }  # fmt: skip


@given(_fields(), st.integers(1, 2**40), st.integers(0, 10**9), _TEXT)
def test_entry_data_is_the_validated_entrys_canonical_bytes(
    fields: dict[str, object], seq: int, seconds: int, agency: str
) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    entry = AuditEntry.model_validate(
        {**fields, "v": 2, "seq": seq, "at": format_time(at), "agency": agency}, strict=False
    )
    assert entry_data(fields, seq=seq, at=at, agency=agency) == entry_bytes(entry)
