"""Properties of federation.audit_chain: any flipped byte, deletion or swap is found, at the
first entry it breaks."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from federation.audit_chain import (
    GENESIS,
    AuditEntry,
    Checkpoint,
    StoredEntry,
    chain_hash,
    entry_bytes,
    first_break,
    sign_checkpoint,
    verify_checkpoint,
)
from federation.keys import SigningKey

KEY = SigningKey(bytes(range(32)))
AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _chain(count: int) -> tuple[list[StoredEntry], list[Checkpoint]]:
    stored, prev = [], GENESIS
    for seq in range(1, count + 1):
        entry = AuditEntry(seq=seq, at="2026-03-01T09:00:00Z", agency="police", action="send",
                           actor="agent", message_id=f"m-{seq}")  # fmt: skip
        data = entry_bytes(entry)
        prev = chain_hash(prev, data)
        stored.append(StoredEntry(seq, data, prev))
    last = sign_checkpoint(KEY, agency="police", seq=count, entry_hash=prev, at=AT)
    return stored, [last]


class TestIntact:
    def test_an_intact_chain_has_no_break(self) -> None:
        """Twenty entries and a final checkpoint verify."""
        entries, checkpoints = _chain(20)
        assert first_break(entries, checkpoints, KEY.verify_key) is None

    def test_checkpoint_signature_is_domain_separated(self) -> None:
        """A checkpoint verifies with its key and not with another."""
        _, [checkpoint] = _chain(2)
        assert verify_checkpoint(checkpoint, KEY.verify_key)
        assert not verify_checkpoint(checkpoint, SigningKey(bytes(32)).verify_key)


class TestTampering:
    @settings(max_examples=60, deadline=None)
    @given(st.data())
    def test_any_flipped_byte_breaks_at_that_entry(self, data: st.DataObject) -> None:
        """Flipping one byte of entry i's stored bytes is reported at entry i."""
        entries, checkpoints = _chain(8)
        index = data.draw(st.integers(0, 7))
        target = entries[index]
        position = data.draw(st.integers(0, len(target.data) - 1))
        flipped = bytearray(target.data)
        flipped[position] ^= data.draw(st.integers(1, 255))
        entries[index] = StoredEntry(target.seq, bytes(flipped), target.entry_hash)
        found = first_break(entries, checkpoints, KEY.verify_key)
        assert found is not None
        assert found.seq == target.seq

    @settings(max_examples=30, deadline=None)
    @given(st.integers(0, 7))
    def test_any_deleted_entry_is_found(self, index: int) -> None:
        """Deleting any entry (even the last one) is reported at or right after its place."""
        entries, checkpoints = _chain(8)
        del entries[index]
        found = first_break(entries, checkpoints, KEY.verify_key)
        assert found is not None
        assert found.seq == (index + 2 if index < 7 else 8)  # the last: pinned by the checkpoint

    @settings(max_examples=30, deadline=None)
    @given(st.integers(0, 6))
    def test_any_adjacent_swap_is_found_at_the_first(self, index: int) -> None:
        """Swapping entries i and i+1 (rows and all) is reported at the earlier position."""
        entries, checkpoints = _chain(8)
        entries[index], entries[index + 1] = entries[index + 1], entries[index]
        found = first_break(entries, checkpoints, KEY.verify_key)
        assert found is not None
        assert found.seq == index + 2
