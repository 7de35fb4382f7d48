"""Which verified receipts the sender believes, and what each one does to its message.

The sender believes a receipt only from the envelope's recipient, addressed to itself, citing
the hash of the frame it sent; a rejection for how one copy arrived never settles the message.
"""

from __future__ import annotations

import hashlib

import pytest

from federation.envelope import uuid7
from federation.errors import ReceiptRejected
from federation.outbox import Event
from federation.receipts import ARRIVAL_REASONS, Receipt, accept_receipt, make_receipt
from federation.receipts import verify_receipt as verify
from tests.unit.federation.helpers import NOW, Federation

FED = Federation()
SENT = b"IRL1-synthetic-frame-sent-to-syn-council"
SENT_SHA = hashlib.sha256(SENT).hexdigest()
#: Reasons about the frame itself (docs/protocol.md section 6): final for the sender.
FRAME_REASONS = [
    "bad_frame", "unknown_sender", "bad_signature", "sender_mismatch", "sender_revoked",
    "sender_key_expired", "wrong_recipient", "expired", "clock_skew", "isa_unknown",
    "isa_mismatch", "isa_parties", "isa_inactive", "key_unknown", "key_retired",
    "decrypt_failed", "payload_invalid", "lawful_basis_mismatch", "isa_violation",
]  # fmt: skip


def receipt(issuer: str = "syn-council", **changes: object) -> Receipt:
    """A receipt signed by ``issuer`` for the envelope syn-police sent, verified."""
    args: dict[str, object] = {
        "envelope_id": uuid7(NOW, bytes(10)), "envelope_sha256": SENT_SHA, "issuer": issuer,
        "to": "syn-police", "status": "delivered", "reason": None, "at": NOW,
        "signing_key": FED.agencies[issuer].signing,
    }  # fmt: skip
    args.update(changes)
    return verify(make_receipt(**args), manifest=FED.manifest())  # type: ignore[arg-type]


def judge(r: Receipt, sent_sha256: str | None = SENT_SHA) -> Event:
    return accept_receipt(r, sender="syn-police", sent_to="syn-council", sent_sha256=sent_sha256)


def refusal(r: Receipt) -> str:
    with pytest.raises(ReceiptRejected) as caught:
        judge(r)
    return caught.value.reason


class TestRefused:
    def test_wrong_agency_rejection_refused_as_unexpected_issuer(self) -> None:
        """A third agency's signed wrong_recipient rejection of a copy it was handed is refused."""
        forged = receipt("syn-refuge", status="rejected", reason="wrong_recipient")
        assert refusal(forged) == "unexpected_issuer"

    def test_wrong_agency_delivery_refused_as_unexpected_issuer(self) -> None:
        """A delivered receipt signed by anyone but the recipient settles nothing either."""
        assert refusal(receipt("syn-refuge")) == "unexpected_issuer"

    def test_receipt_citing_another_frame_refused_as_envelope_mismatch(self) -> None:
        """The recipient's receipt for other bytes under the same id is not about our frame."""
        other = receipt(envelope_sha256=hashlib.sha256(SENT + b"!").hexdigest())
        assert refusal(other) == "envelope_mismatch"

    def test_receipt_addressed_to_another_sender_refused_as_not_for_us(self) -> None:
        """A receipt whose `to` is another agency is not ours to act on."""
        assert refusal(receipt(to="syn-refuge")) == "not_for_us"


class TestAccepted:
    def test_a_delivery_from_the_true_recipient_is_a_delivered_event(self) -> None:
        """The recipient's delivered receipt for our frame delivers the message."""
        assert judge(receipt()) is Event.RECEIPT_DELIVERED

    @pytest.mark.parametrize("reason", FRAME_REASONS)
    def test_a_rejection_of_the_frame_is_final(self, reason: str) -> None:
        """A reason about the frame itself rejects the message."""
        assert judge(receipt(status="rejected", reason=reason)) is Event.RECEIPT_REJECTED

    @pytest.mark.parametrize("reason", sorted(ARRIVAL_REASONS))
    def test_a_rejection_of_how_a_copy_arrived_is_not_final(self, reason: str) -> None:
        """transport_identity and replay are about one copy: the message is not rejected."""
        assert judge(receipt(status="rejected", reason=reason)) is Event.COPY_REJECTED

    def test_arrival_reasons_are_exactly_transport_identity_and_replay(self) -> None:
        """The non-final set is the two reasons that depend on how a copy arrived."""
        assert frozenset({"transport_identity", "replay"}) == ARRIVAL_REASONS

    def test_once_the_frame_is_purged_the_hash_is_not_checked(self) -> None:
        """After retention deleted a delivered frame, a duplicate delivery is still accepted."""
        again = receipt(envelope_sha256="00" * 32)
        assert judge(again, sent_sha256=None) is Event.RECEIPT_DELIVERED
