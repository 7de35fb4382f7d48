"""Completeness: one warning per ICO-code element (domain brief 1.6) an ISA leaves out.

Each test removes one element from tests/fixtures/isa_v2/complete.yaml (which lints with
nothing) and asserts the exact warning and its line; an ISA missing them all still loads.
"""

from __future__ import annotations

import pytest

from federation.isa import completeness, load_isa
from tests.unit.federation.isa.support import CLEAN_ISA, fake_catalogue
from tests.unit.federation.isa.support_v2 import COMPLETE, lint_text, parse_text

HEADER = 4  # the line of ``isa:`` in complete.yaml, where a missing block is reported


def _without_block(key: str) -> str:
    """complete.yaml without the top-level ``key`` block."""
    lines, out, skipping = COMPLETE.splitlines(keepends=True), [], False
    for line in lines:
        if line[:1].isalpha():
            skipping = line.startswith(f"{key}:")
        if not skipping:
            out.append(line)
    return "".join(out)


def _warning(line: int, message: str) -> str:
    return f"complete.yaml:{line}: warning: {message}"


BLOCKS = [
    ("data_subject_groups", "the groups of people whose data is shared"),
    ("international_transfers", "whether data may leave the UK"),
    ("security", "the security measures"),
    ("data_quality", "data quality and standards"),
    ("individuals_rights", "how individuals' rights are handled, and the privacy notices"),
    ("breach", "what happens after a data breach"),
    ("non_compliance", "what happens when a party does not comply"),
    ("training", "the training practitioners need"),
    ("termination", "how the agreement ends and what happens to the data"),
]


class TestMissingBlocks:
    @pytest.mark.parametrize(("key", "words"), BLOCKS)
    def test_each_missing_block_is_one_warning_at_the_header(self, key: str, words: str) -> None:
        """Leaving out an ISA-wide element gives exactly one warning naming its key."""
        assert lint_text(_without_block(key)) == [
            _warning(HEADER, f"the agreement does not say {words} ({key})")
        ]

    def test_missing_sign_off_names_every_unsigned_party(self) -> None:
        """No declared signatory: one warning listing the parties."""
        assert lint_text(_without_block("sign_off")) == [
            _warning(HEADER, "no signatory declared (sign_off) for agency-a, agency-b")
        ]

    def test_missing_linked_documents_asks_for_the_dpia_and_each_policy_document(self) -> None:
        """Without linked documents: the DPIA, and an APD for each party relying on a condition
        that needs one (Sch 1 Part 2 for agency-b, Sch 8 for agency-a)."""
        apd = (
            "relies on a condition that needs an appropriate policy document (DPA 2018 Sch 1 "
            "para 5 / s42); add it under linked_documents.appropriate_policy_documents"
        )
        assert lint_text(_without_block("linked_documents")) == [
            _warning(39, f"'agency-a' {apd}"),
            _warning(43, f"'agency-b' {apd}"),
            _warning(HEADER, "no DPIA reference (linked_documents.dpia)"),
        ]


class TestMissingDetails:
    @pytest.mark.parametrize(
        ("old", "new", "expected"),
        [
            pytest.param(
                "    ico_registration: ZZ000002\n",
                "",
                _warning(24, "party 'agency-b' does not give its ico_registration"),
                id="ico",
            ),
            pytest.param(
                "    dpo: {role: Data Protection Officer, email: dpo@a.example.invalid}\n",
                "",
                _warning(17, "party 'agency-a' does not give its dpo"),
                id="dpo",
            ),
            pytest.param(
                "    benefits: The victim and children are safer.\n",
                "",
                _warning(31, "purpose 'safeguarding' does not state its benefits"),
                id="benefits",
            ),
            pytest.param(
                "        part3_purpose: s31_prevention_detection\n",
                "",
                _warning(
                    40,
                    "'agency-a' processes under Part 3 but does not name its law-enforcement "
                    "purpose (part3_purpose)",
                ),
                id="part3-purpose",
            ),
            pytest.param(
                "  person_told: The victim is told about the referral when it is safe "
                "to tell her.\n",
                "",
                _warning(49, "consent_model does not say person_told"),
                id="person-told",
            ),
            pytest.param(
                "    frequency: as each incident happens\n    channel: ISA Relay\n",
                "",
                _warning(61, "flow 'a-to-b' does not give its frequency, channel"),
                id="frequency-channel",
            ),
            pytest.param(
                "    triggers: [change_in_law, personal_data_breach, party_added, "
                "party_left, dpia_revised]\n",
                "",
                _warning(
                    11, "review does not list what triggers an early review (review.triggers)"
                ),
                id="review-triggers",
            ),
            pytest.param(
                "  privacy_notices: {agency-a: https://example.invalid/a, agency-b: "
                "https://example.invalid/b}\n",
                "",
                _warning(
                    98,
                    "no privacy notice for agency-a, agency-b (individuals_rights.privacy_notices)",
                ),
                id="privacy-notices",
            ),
        ],
    )
    def test_each_missing_detail_is_one_warning_at_its_place(
        self, old: str, new: str, expected: str
    ) -> None:
        """A missing party, purpose, consent, flow or review detail is warned at its own line."""
        assert COMPLETE.count(old) == 1
        assert lint_text(COMPLETE.replace(old, new)) == [expected]


class TestOldFilesStillLoad:
    def test_an_isa_without_any_new_element_loads(self) -> None:
        """Backwards compatible: the v1 clean fixture loads; its missing elements are warnings."""
        isa = load_isa("clean.yaml", CLEAN_ISA, catalogue=fake_catalogue)
        problems = completeness(isa)
        assert problems
        assert {p.severity for p in problems} == {"warning"}

    def test_a_permitted_transfer_must_say_where_and_how(self) -> None:
        """International transfers are denied by default; permitting one needs its safeguards."""
        text = COMPLETE.replace(
            "international_transfers: {permitted: false}",
            "international_transfers: {permitted: true}",
        )
        assert lint_text(text) == [
            "complete.yaml:91: international_transfers: Value error, a permitted transfer needs "
            "destinations and safeguards"
        ]

    def test_complete_isa_records_what_the_model_reads(self) -> None:
        """The parsed model carries the new elements (spot checks)."""
        doc = parse_text(COMPLETE).doc
        assert doc.parties[1].dpo is not None
        assert doc.parties[1].dpo.name == "SYNTHETIC Name"
        assert doc.breach is not None
        assert doc.breach.notify_originator_within == "PT24H"
        assert doc.consent_model.common_law_confidentiality is not None
        assert [s.role for s in doc.sign_off] == ["dpo", "caldicott_guardian"]
