"""The soak's ledger and figures: what counts as lost, duplicated, stray or refused."""

from __future__ import annotations

from devtools.soak.ledger import Figures, Ledger, Refusal


def _figures(ledger: Ledger) -> Figures:
    """The ledger's figures, with every accepted referral's receipt back at its sender."""
    return ledger.counted(Figures(receipts_delivered=len(ledger.accepted)))


class TestLedger:
    def test_every_accepted_referral_delivered_once_is_no_problem(self) -> None:
        """Two accepted, two delivered once each, one provoked refusal: the claim holds."""
        ledger = Ledger()
        ledger.accept("m1", "police-scotland", "assist")
        ledger.accept("m2", "womens-aid", "police-scotland")
        ledger.deliver("m1", "assist")
        ledger.deliver("m2", "police-scotland")
        ledger.refuse(Refusal(3.0, "police-scotland", "assist", 503, "key", provoked=True))
        assert _figures(ledger).problems() == []

    def test_an_accepted_referral_never_delivered_is_lost(self) -> None:
        ledger = Ledger()
        ledger.accept("m1", "police-scotland", "assist")
        assert ledger.undelivered == ["m1"]
        assert _figures(ledger).problems() == ["1 accepted referrals were never delivered"]

    def test_a_referral_seen_twice_in_an_inbox_is_duplicated(self) -> None:
        ledger = Ledger()
        ledger.accept("m1", "police-scotland", "assist")
        ledger.deliver("m1", "assist")
        ledger.deliver("m1", "assist")
        assert ledger.duplicated == ["m1"]
        assert "1 referrals were delivered more than once" in _figures(ledger).problems()

    def test_a_delivery_at_another_agency_or_never_sent_is_a_stray(self) -> None:
        ledger = Ledger()
        ledger.accept("m1", "police-scotland", "assist")
        ledger.deliver("m1", "council-sw")
        ledger.deliver("m9", "assist")
        assert (ledger.strays, ledger.unexpected) == (["m1"], ["m9"])

    def test_an_unprovoked_refusal_is_a_problem_naming_its_cause(self) -> None:
        ledger = Ledger()
        ledger.refuse(Refusal(1.0, "police-scotland", "assist", 503, "urn:x:trust", False))
        assert _figures(ledger).problems() == ["1 submits refused unprovoked (trust: 1)"]

    def test_a_sender_without_every_receipt_back_is_a_problem(self) -> None:
        """Delivered at the recipient but not confirmed at the sender: the claim fails."""
        ledger = Ledger()
        ledger.accept("m1", "police-scotland", "assist")
        ledger.deliver("m1", "assist")
        figures = ledger.counted(Figures(receipts_delivered=0, sender_statuses={"sent": 1}))
        assert figures.problems() == ["senders hold {'sent': 1} for 1 accepted"]

    def test_deliveries_are_counted_by_the_isa_version_they_cite(self) -> None:
        """The figures show how many deliveries went under each version of an ISA."""
        ledger = Ledger()
        for n, version in enumerate(("1.0.0", "1.0.0", "1.1.0")):
            ledger.accept(f"m{n}", "police-scotland", "assist")
            ledger.deliver(f"m{n}", "assist", f"isa-police-assist-advocacy {version}")
        assert _figures(ledger).deliveries_by_isa == {
            "isa-police-assist-advocacy 1.0.0": 2, "isa-police-assist-advocacy 1.1.0": 1,
        }  # fmt: skip
