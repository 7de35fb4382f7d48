"""The review workflow's pure rules (federation.review), over the shipped MARAC ISA."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.isa import DEFAULT_REVIEW, Decision, ReviewRule, evaluate, load_isa
from federation.minimise import minimise
from federation.periods import add_period
from federation.pipeline import leaf_paths, prepare, prepare_approved
from federation.referrals import parse_payload, payload_dict
from federation.review import (
    NARROWED,
    NarrowingInvalid,
    NarrowingWidens,
    NotAReviewer,
    OwnSubmission,
    ReviewAction,
    ReviewSettled,
    ReviewState,
    act,
    approval_decision,
    check_reviewer,
    due_at,
    is_overdue,
    narrow,
    wire_required,
)
from federation.synth import generate_referral

POLICIES = Path(__file__).resolve().parents[3] / "policies"
MARAC = load_isa("marac-referrals.yaml", (POLICIES / "marac-referrals.yaml").read_bytes())
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # inside the shipped ISAs' effective dates
RULE = ReviewRule(role="marac_reviewer", within="P2D")
FLOW = {"sender": "council-sw", "recipient": "marac-coordinator",
        "purpose": "marac_risk_management", "message_type": "marac_referral"}  # fmt: skip


def medium_referral(seed: int = 1) -> dict[str, Any]:
    return generate_referral("marac_referral", random.Random(seed), risk_level="medium")


def decide(payload: dict[str, Any], *, at: datetime = NOW) -> Decision:
    referral = parse_payload("marac_referral", payload)
    return evaluate(MARAC, **FLOW, referral=referral, now=at)


class TestStates:
    @pytest.mark.parametrize(
        ("action", "state"),
        [(ReviewAction.APPROVE, ReviewState.APPROVED), (ReviewAction.NARROW, ReviewState.PENDING),
         (ReviewAction.RETURN, ReviewState.RETURNED), (ReviewAction.EXPIRE, ReviewState.EXPIRED)],
    )  # fmt: skip
    def test_a_pending_review_moves_by_the_table(
        self, action: ReviewAction, state: ReviewState
    ) -> None:
        """Pending: approve -> approved, narrow -> pending, return -> returned, expire ->
        expired."""
        assert act(ReviewState.PENDING, action) is state

    @pytest.mark.parametrize("settled", [s for s in ReviewState if s is not ReviewState.PENDING])
    @pytest.mark.parametrize("action", list(ReviewAction))
    def test_a_settled_review_refuses_every_action_with_409(
        self, settled: ReviewState, action: ReviewAction
    ) -> None:
        """Approved, returned and expired are final: every action is ReviewSettled (409)."""
        with pytest.raises(ReviewSettled) as info:
            act(settled, action)
        assert info.value.http_status == 409
        assert settled.value in info.value.message


class TestCheckReviewer:
    def test_a_second_person_with_the_role_may_review(self) -> None:
        """Another person asserting the ISA's review role passes."""
        check_reviewer(
            "SYN-reviewer-2", "marac_reviewer", submitter="SYN-worker-1", required=RULE.role
        )

    def test_the_submitter_may_not_review_their_own_referral(self) -> None:
        """The submitter, even holding the role, is refused (OwnSubmission, 403)."""
        with pytest.raises(OwnSubmission) as info:
            check_reviewer(
                "SYN-worker-1", "marac_reviewer", submitter="SYN-worker-1", required=RULE.role
            )
        assert info.value.http_status == 403

    @pytest.mark.parametrize("role", [None, "", "reviewer", "practitioner", "MARAC_REVIEWER"])
    def test_a_person_without_the_review_role_is_refused(self, role: str | None) -> None:
        """Any other role (or none) is NotAReviewer (403), naming the role needed."""
        with pytest.raises(NotAReviewer) as info:
            check_reviewer("SYN-reviewer-2", role, submitter="SYN-worker-1", required=RULE.role)
        assert "marac_reviewer" in info.value.message

    @pytest.mark.parametrize("person", [None, ""])
    def test_nobody_named_is_refused(self, person: str | None) -> None:
        """Without a person (no X-Actor-Id) nobody can review."""
        with pytest.raises(NotAReviewer, match="X-Actor-Id"):
            check_reviewer(person, "marac_reviewer", submitter="SYN-worker-1", required=RULE.role)


class TestNarrow:
    SHARED = ("referral_ref", "victim.name", "victim.phone")

    def test_withholding_more_keeps_the_rest_sorted(self) -> None:
        """A subset of the shared fields is the new set, sorted and without duplicates."""
        assert narrow(self.SHARED, ["victim.phone", "referral_ref", "referral_ref"]) == (
            "referral_ref",
            "victim.phone",
        )

    def test_keeping_everything_is_allowed(self) -> None:
        """Naming every shared field narrows nothing and is not an error."""
        assert narrow(self.SHARED, list(self.SHARED)) == self.SHARED

    def test_a_field_the_decision_withheld_is_refused_by_name(self) -> None:
        """Naming a withheld field widens: 422 NarrowingWidens naming that field only."""
        with pytest.raises(NarrowingWidens) as info:
            narrow(self.SHARED, ["victim.name", "victim.refuge_address"])
        assert info.value.http_status == 422
        assert list(info.value.errors) == ["victim.refuge_address"]

    def test_narrowing_to_nothing_is_refused(self) -> None:
        """An empty narrowing is 422: return the referral instead."""
        with pytest.raises(NarrowingInvalid, match="return"):
            narrow(self.SHARED, [])

    def test_a_field_the_wire_requires_cannot_be_left_out(self) -> None:
        """``synthetic`` is required by every message type: leaving it out is 422 naming it."""
        assert wire_required("marac_referral") == ("synthetic",)
        with pytest.raises(NarrowingInvalid) as info:
            narrow((*self.SHARED, "synthetic"), ["victim.name"], required=("synthetic",))
        assert list(info.value.errors) == ["synthetic"]

    def test_a_required_field_the_review_does_not_share_is_no_obstacle(self) -> None:
        """Only a required field that would leave must stay."""
        assert narrow(self.SHARED, ["victim.name"], required=("synthetic",)) == ("victim.name",)

    @settings(max_examples=50, deadline=None)
    @given(st.sets(st.sampled_from((*SHARED, "dash.q1.answer", "children[].name"))))
    def test_the_result_is_never_wider(self, keep: set[str]) -> None:
        """Whatever is asked, the answer is a subset of the shared fields, or an error."""
        try:
            kept = narrow(self.SHARED, keep)
        except NarrowingInvalid:
            assert not keep or not keep <= set(self.SHARED)
            return
        assert set(kept) == keep <= set(self.SHARED)


class TestDue:
    def test_due_is_held_at_plus_within(self) -> None:
        """P2D after 1 June 12:00 is 3 June 12:00."""
        assert due_at(NOW, RULE) == NOW + timedelta(days=2)

    def test_months_are_calendar_months(self) -> None:
        """P1M from 31 January is the last day of February (clamped)."""
        start = datetime(2027, 1, 31, 9, 0, tzinfo=UTC)
        assert add_period(start, "P1M") == datetime(2027, 2, 28, 9, 0, tzinfo=UTC)

    def test_overdue_from_the_due_time_on(self) -> None:
        """Judged with the injected clock: not before due, overdue at and after it."""
        due = due_at(NOW, RULE)
        assert not is_overdue(due, due - timedelta(seconds=1))
        assert is_overdue(due, due)
        assert is_overdue(due, due + timedelta(days=30))

    def test_the_default_rule_applies_where_the_isa_names_none(self) -> None:
        """MARAC names marac_reviewer at medium; high risk has no rule of its own."""
        [flow] = MARAC.doc.flows
        assert flow.review_rule("medium") == RULE
        assert flow.review_rule("high") == DEFAULT_REVIEW

    @pytest.mark.parametrize("text", ["P", "2D", "P1H", "PT1H", ""])
    def test_a_period_that_is_not_one_is_a_value_error(self, text: str) -> None:
        """Only PnYnMnWnD periods are read."""
        with pytest.raises(ValueError, match="period"):
            add_period(NOW, text)


class TestApproval:
    def test_a_medium_marac_referral_needs_review(self) -> None:
        """The shipped MARAC ISA holds a medium-risk referral for review."""
        assert decide(medium_referral()).outcome == "REVIEW"

    def test_without_narrowing_the_fresh_review_decision_is_sent(self) -> None:
        """Approved as is: the payload is exactly what the fresh decision releases."""
        payload = medium_referral()
        prepared = prepare_approved(MARAC, **FLOW, payload=payload, keep=None, now=NOW,
                                    ttl=timedelta(hours=1))  # fmt: skip
        fresh = decide(payload)
        assert prepared.spec is not None
        assert prepared.payload == minimise(parse_payload_dict(payload), fresh)
        assert prepared.decision.shared_fields == fresh.shared_fields

    def test_a_narrowing_withholds_the_fields_left_out_with_a_reason(self) -> None:
        """Fields the reviewer left out are withheld as withheld_by_reviewer and do not leave."""
        payload = medium_referral()
        fresh = decide(payload)
        keep = fresh.shared_fields[:3]
        prepared = prepare_approved(MARAC, **FLOW, payload=payload, keep=keep, now=NOW,
                                    ttl=timedelta(hours=1))  # fmt: skip
        assert prepared.decision.shared_fields == keep
        assert leaf_paths(prepared.payload) <= set(keep)
        narrowed = {w.path for w in prepared.decision.withheld_fields if w.reason_code == NARROWED}
        assert narrowed == set(fresh.shared_fields) - set(keep)

    def test_a_fresh_deny_sends_nothing(self) -> None:
        """After the ISA ended, approval prepares nothing to send."""
        payload = medium_referral()
        later = datetime(2028, 6, 1, tzinfo=UTC)  # after effective_to 2027-12-31
        prepared = prepare_approved(MARAC, **FLOW, payload=payload, keep=None, now=later,
                                    ttl=timedelta(hours=1))  # fmt: skip
        assert (prepared.decision.outcome, prepared.spec, prepared.payload) == ("DENY", None, {})

    def test_approval_decision_keeps_a_deny(self) -> None:
        """A DENY stays a DENY whatever the narrowing."""
        denied = decide(medium_referral()).model_copy(update={"outcome": "DENY"})
        assert approval_decision(denied, ["victim.name"]) is denied

    def test_the_same_referral_under_permit_is_prepared_as_by_submit(self) -> None:
        """A high-risk referral (PERMIT) approved as is is exactly what submit would send."""
        payload = generate_referral("marac_referral", random.Random(4), risk_level="high")
        submit = prepare(MARAC, **FLOW, payload=payload, now=NOW, ttl=timedelta(hours=1))
        approve = prepare_approved(MARAC, **FLOW, payload=payload, keep=None, now=NOW,
                                   ttl=timedelta(hours=1))  # fmt: skip
        assert (approve.payload, approve.decision) == (submit.payload, submit.decision)


def parse_payload_dict(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as the engine sees it (parsed, then dumped)."""
    return payload_dict(parse_payload("marac_referral", payload))


SHIPPED = [load_isa(p.name, p.read_bytes()) for p in sorted(POLICIES.glob("*.yaml"))]
CASES = [
    (isa, flow, mt, sender)
    for isa in SHIPPED
    for flow in isa.doc.flows
    for mt in flow.message_types
    for sender in flow.sender
]


class TestNeverMoreThanPermit:
    @settings(max_examples=60, deadline=None)
    @given(
        case=st.sampled_from(CASES),
        seed=st.integers(min_value=0, max_value=2**32),
        level=st.sampled_from(["standard", "medium", "high"]),
        days=st.integers(min_value=0, max_value=900),
        cut=st.randoms(use_true_random=False),
    )
    def test_an_approval_never_sends_more_than_the_fresh_decision_shares(
        self, case: tuple[Any, ...], seed: int, level: str, days: int, cut: random.Random
    ) -> None:
        """Every shipped flow, approve or any narrowing, at any later moment: what leaves is
        within what the ISA shares at that moment (a PERMIT's release), each value as minimise
        gives it, and within the narrowing."""
        isa, flow, mt, sender = case
        where = {"sender": sender, "recipient": flow.to[0], "purpose": flow.purpose,
                 "message_type": mt}  # fmt: skip
        payload = generate_referral(mt, random.Random(seed), risk_level=level)
        referral = parse_payload(mt, payload)
        held = evaluate(isa, **where, referral=referral, now=NOW)
        keep = None
        if held.shared_fields and cut.random() < 0.7:
            keep = [p for p in held.shared_fields if cut.random() < 0.5] or [held.shared_fields[0]]
        at = NOW + timedelta(days=days)
        prepared = prepare_approved(isa, **where, payload=payload, keep=keep, now=at,
                                    ttl=timedelta(hours=1))  # fmt: skip
        fresh = evaluate(isa, **where, referral=referral, now=at)
        sent = leaf_paths(prepared.payload)
        if fresh.outcome == "DENY":
            assert (sent, prepared.spec) == (set(), None)
            return
        assert sent <= set(fresh.shared_fields)
        assert set(prepared.decision.shared_fields) <= set(fresh.shared_fields)
        if keep is not None:
            assert sent <= set(keep)
        full = minimise(payload_dict(referral), fresh)
        assert _values(prepared.payload) <= _values(full)


def _values(payload: dict[str, Any], prefix: str = "") -> set[tuple[str, str]]:
    """(path, repr(value)) of every leaf, lists flattened: a sent value must be a full one."""
    out: set[tuple[str, str]] = set()
    for key, value in payload.items():
        if isinstance(value, dict):
            out |= _values(value, f"{prefix}{key}.")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                out |= _values(item, f"{prefix}{key}[].")
        else:
            out.add((prefix + key, repr(value)))
    return out
