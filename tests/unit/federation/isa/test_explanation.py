"""``policy explain`` is complete and correct: it leaves out no rule the evaluator applies.

The completeness tests walk the ISA model and the evaluator's own compiled plans
(:func:`federation.isa.plan.plan_for`, what ``evaluate`` releases) for every flow, message type,
risk level and sender, and find each decision, consent rule, released field, withheld field,
never-shared field, duty and legal condition in the explanation's document.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from federation.isa import Isa, explain, explain_html, explanation, load_isa, parse_isa
from federation.isa.codes import CODE_WORDS
from federation.isa.model import RISK_LEVELS, Flow, RiskLevel
from federation.isa.plan import expand, labels_for, never_share_paths, plan_for
from federation.isa.rendering import Explanation, Node, Section
from federation.isa.wording import field_phrase
from tests.unit.federation.isa.support import CLEAN_ISA, fake_catalogue
from tests.unit.federation.isa.support_v2 import COMPLETE

POLICIES = Path(__file__).resolve().parents[4] / "policies"
SHIPPED = sorted(POLICIES.glob("*.yaml"))
_QUESTION = re.compile(r"^dash\.q(\d+)\.(answer|source|comment)$")


def _shipped(path: Path) -> Isa:
    return load_isa(path.name, path.read_bytes())


#: complete.yaml with a second sender, a charity with no condition for special category or
#: criminal-offence data: the evaluator releases less from it than from agency-a. Lint refuses
#: this ISA (E7, E8), but ``policy explain`` reads drafts with errors too (``parse_isa``).
TWO_SENDERS = (
    COMPLETE.replace(
        "purposes:\n",
        "  - id: agency-c\n    name: SYNTHETIC Charity C\n    sector: third_sector\n"
        "    public_authority: false\npurposes:\n",
    )
    .replace(
        "      agency-b:\n",
        "      agency-c:\n        regime: uk_gdpr\n"
        "        article6: a6_1_ea_recognised_legitimate_interest\n"
        "        rli_condition: annex1_p6_safeguarding\n      agency-b:\n",
    )
    .replace("    from: [agency-a]\n", "    from: [agency-a, agency-c]\n")
)


def _two_senders() -> Isa:
    return parse_isa("two.yaml", TWO_SENDERS.encode(), catalogue=fake_catalogue)


def _all_isas() -> list[Isa]:
    return [
        *(_shipped(p) for p in SHIPPED),
        load_isa("complete.yaml", COMPLETE.encode(), catalogue=fake_catalogue),
        load_isa("clean.yaml", CLEAN_ISA, catalogue=fake_catalogue),
        _two_senders(),
    ]


ISAS = [pytest.param(isa, id=isa.source) for isa in _all_isas()]


def _texts(item: Section | Node | None) -> list[str]:
    """Every line of text under a section or node, itself included."""
    if item is None:
        return []
    if isinstance(item, Section):
        out = [item.heading, *item.paragraphs]
        for node in item.items:
            out += _texts(node)
        return out
    out = [item.text]
    for child in item.children:
        out += _texts(child)
    return out


def _expected(path: str, description: str) -> str:
    """What a field's line starts with: its phrase, or its DASH question number."""
    found = _QUESTION.match(path)
    return f"DASH question {found[1]}:" if found else field_phrase(path, description)


def _field_node(doc: Explanation, flow: Flow, mt: str, level: RiskLevel, sender: str) -> Node:
    found = [
        node
        for section in doc.sections
        if section.key == ("flow", flow.id)
        for level_node in section.items
        if level_node.key == ("level", flow.id, level)
        for node in level_node.children
        if node.key[:4] == ("fields", flow.id, mt, level) and sender in node.key[4].split("+")
    ]
    assert len(found) == 1, (flow.id, mt, level, sender)
    return found[0]


def _field_lines(doc: Explanation, flow: Flow, mt: str, level: RiskLevel, sender: str) -> set[str]:
    """The field lines listed for one sender at one level, following 'everything at ...'."""
    node = _field_node(doc, flow, mt, level, sender)
    lines = {c.text for c in node.children if not c.children}
    marker = next((t for t in lines if t.startswith("everything shared at ")), None)
    if marker is not None:
        lines.discard(marker)
        below: RiskLevel = marker.split()[3]  # type: ignore[assignment]
        lines |= _field_lines(doc, flow, mt, below, sender)
    return lines


def _decides(flow: Flow, level: RiskLevel) -> bool:
    rule = flow.by_risk_level.rule(level)
    return rule is not None and rule.decision != "deny"


class TestEveryRuleIsExplained:
    @pytest.mark.parametrize("isa", ISAS)
    def test_every_released_field_for_every_sender_at_every_level(self, isa: Isa) -> None:
        """Exactly the fields the evaluator releases, for each sender, appear at each level."""
        doc = explanation(isa)
        for flow in isa.doc.flows:
            for mt in flow.message_types:
                for level in RISK_LEVELS:
                    if not _decides(flow, level):
                        continue
                    for sender in flow.sender:
                        plan = plan_for(isa, flow, mt, level, sender)
                        wanted = {_expected(p, plan.labels[p].description) for p in plan.released}
                        lines = _field_lines(doc, flow, mt, level, sender)
                        for text in wanted:
                            assert any(line.startswith(text) for line in lines), (level, text)
                        for line in lines:
                            assert any(line.startswith(text) for text in wanted), (level, line)

    @pytest.mark.parametrize("isa", ISAS)
    def test_every_decision_and_consent_rule(self, isa: Isa) -> None:
        """Each level's decision, and its consent rule with what happens otherwise."""
        doc = explanation(isa)
        decision_words = {
            "permit": "may be shared.",
            "deny": "nothing is shared.",
            "review": "once a supervisor has reviewed and approved it.",
        }
        for flow in isa.doc.flows:
            for level in RISK_LEVELS:
                node = doc.find(("level", flow.id, level))
                assert isinstance(node, Node)
                rule = flow.by_risk_level.rule(level)
                assert node.text.endswith(decision_words[rule.decision if rule else "deny"])
                if not _decides(flow, level):
                    continue
                consent = getattr(isa.consent_for(flow), level)
                text = next(c.text for c in node.children if c.text.startswith("Practice"))
                if consent.requires == "not_required":
                    assert "not needed" in text
                elif consent.otherwise == "review":
                    assert "otherwise a supervisor reviews it" in text
                else:
                    assert "otherwise nothing is shared" in text

    @pytest.mark.parametrize("isa", ISAS)
    def test_every_withheld_and_never_shared_field(self, isa: Isa) -> None:
        """deny_fields under their flow; never_share fields in their own section."""
        doc = explanation(isa)
        never_lines = _texts(doc.find(("never",)))
        for flow in isa.doc.flows:
            for mt in flow.message_types:
                labels = labels_for(isa, mt) or {}
                never = never_share_paths(isa, labels)
                for path in never:
                    want = _expected(path, labels[path].description)
                    assert any(line.startswith(want) for line in never_lines), path
                lines = _texts(doc.find(("deny", flow.id, mt)))
                for path in expand(flow.deny_fields, labels) - never:
                    want = _expected(path, labels[path].description)
                    assert any(line.startswith(want) for line in lines), path

    @pytest.mark.parametrize("isa", ISAS)
    def test_every_duty_on_the_recipient(self, isa: Isa) -> None:
        """Each obligation, and each handling label of a released field, is a duty."""
        doc = explanation(isa)
        for flow in isa.doc.flows:
            duties = doc.find(("duties", flow.id))
            assert isinstance(duties, Node)
            keys = {child.key[:1] for child in duties.children}
            ob = flow.obligations
            for name, present in (
                ("must_not_inform", ob.must_not_inform),
                ("retain", ob.retain),
                ("no_onward_disclosure", ob.no_onward_disclosure),
                ("notify_originator", ob.notify_originator),
                ("log", ob.log),
            ):
                assert ((name,) in keys) == bool(present), name
            if ob.log:
                assert "s62" in doc.find(("log",)).text  # type: ignore[union-attr]
            for mt in flow.message_types:
                self._handling_explained(isa, doc, flow, mt)

    def _handling_explained(self, isa: Isa, doc: Explanation, flow: Flow, mt: str) -> None:
        for level in RISK_LEVELS:
            if not _decides(flow, level):
                continue
            for sender in flow.sender:
                plan = plan_for(isa, flow, mt, level, sender)
                for path in plan.released:
                    for label in plan.labels[path].handling:
                        if label.startswith("must_not_disclose_to:") or label == (
                            "originator_control"
                        ):
                            lines = _texts(doc.find(("handling", flow.id, mt, label)))
                            want = _expected(path, plan.labels[path].description)
                            assert any(line.startswith(want) for line in lines), (path, label)

    @pytest.mark.parametrize("isa", ISAS)
    def test_every_legal_condition_in_words(self, isa: Isa) -> None:
        """Every code of every party's basis is shown in its words, with the legal powers."""
        doc = explanation(isa)
        for purpose in isa.doc.purposes:
            section = doc.find(("purpose", purpose.id))
            assert purpose.description in _texts(section)
            for agency, basis in purpose.lawful_basis.items():
                text = " ".join(_texts(doc.find(("basis", agency))))
                codes = [
                    basis.article6,
                    basis.rli_condition,
                    basis.part3_purpose,
                    *basis.article9,
                    *basis.sch1,
                    *basis.sch8,
                    *basis.criminal_offence,
                ]
                for code in filter(None, codes):
                    assert CODE_WORDS[code] in text, code
                for gateway in basis.legal_gateways:
                    assert gateway in text

    @pytest.mark.parametrize("isa", ISAS)
    def test_parties_dates_and_review(self, isa: Isa) -> None:
        """Every party by name; the dates in force and the review date."""
        text = explain(isa)
        for party in isa.doc.parties:
            assert party.name in text
        header = isa.doc.isa
        assert header.effective_from.isoformat() in text
        assert f"Next review due {header.review.next_review.isoformat()}" in text


class TestEverySender:
    def test_senders_releasing_different_fields_get_their_own_lists(self) -> None:
        """Regression: fields were listed for the first sender only. A sender without a special
        category condition gets its own, shorter list and a note of what is withheld."""
        doc = explanation(_two_senders())
        flow = _two_senders().doc.flows[0]
        a = _field_node(doc, flow, "fake_referral", "high", "agency-a")
        c = _field_node(doc, flow, "fake_referral", "high", "agency-c")
        assert a is not c
        assert "victim: mental health" in _field_lines(
            doc, flow, "fake_referral", "high", "agency-a"
        )
        assert "victim: mental health" not in {n.text for n in c.children}
        withheld = [n for n in c.children if n.children]
        assert [n.text for n in withheld] == [
            "SYNTHETIC Charity C has no condition recorded for special category information, so "
            "these are withheld:",
            "SYNTHETIC Charity C has no condition recorded for criminal-offence information, so "
            "these are withheld:",
        ]


class TestNoJargon:
    @pytest.mark.parametrize("isa", ISAS)
    def test_no_agency_id_legal_code_or_message_type_code(self, isa: Isa) -> None:
        """Agencies by name, codes in words: no id or code leaks into the text."""
        text = explain(isa)
        for party in isa.doc.parties:
            if "-" in party.id:
                assert not re.search(rf"(?<![\w-]){re.escape(party.id)}(?![\w-])", text), party.id
        for code in CODE_WORDS:
            assert code not in text
        for flow in isa.doc.flows:
            for mt in flow.message_types:
                assert mt not in text or "_" not in mt

    def test_dash_questions_in_numeric_order_one_line_each(self) -> None:
        """The MARAC ISA lists DASH questions 1..24 in order, one line per question."""
        text = explain(_shipped(POLICIES / "marac-referrals.yaml"))
        numbers = [int(n) for n in re.findall(r"DASH question (\d+):", text)]
        assert numbers[:24] == list(range(1, 25))
        assert "q10" not in text

    def test_womens_aid_basis_is_not_called_safeguarding(self) -> None:
        """Regression: Women's Aid's Art 6(1)(ea) was labelled 'safeguarding' although that ISA
        cites the crime condition; now the basis is named and the gap said plainly."""
        doc = explanation(_shipped(POLICIES / "womens-aid-to-police.yaml"))
        node = doc.find(("basis", "womens-aid"))
        assert isinstance(node, Node)
        assert "safeguarding" not in node.text
        assert "recognised legitimate interest (UK GDPR Art 6(1)(ea))" in node.text
        assert "Annex 1 condition it relies on is not recorded" in node.text

    def test_police_purpose_and_s62_are_shown(self) -> None:
        """Regression: the police law-enforcement purpose and the s62 duty were never shown."""
        text = explain(_shipped(POLICIES / "marac-referrals.yaml"))
        assert "for preventing and detecting crime (DPA 2018 s31)" in text
        assert "Data Protection Act 2018 s62" in text
        assert "Criminal-offence details: the same public-interest conditions" in text


class TestHtml:
    def test_html_is_one_escaped_self_contained_page(self) -> None:
        """Text from the ISA is escaped; no script, link or external resource."""
        hostile = COMPLETE.replace(
            "title: SYNTHETIC complete test agreement",
            'title: "SYNTHETIC <script>alert(1)</script> & \\"quotes\\""',
        ).replace("channel: ISA Relay", 'channel: "<img src=x onerror=alert(1)>"')
        page = explain_html(load_isa("h.yaml", hostile.encode(), catalogue=fake_catalogue))
        assert page.startswith("<!DOCTYPE html>")
        assert "<script" not in page
        assert "<img" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;" in page
        assert "src=" not in page.replace("&lt;img src=x", "")
        assert "<link" not in page

    @pytest.mark.parametrize("isa", ISAS)
    def test_html_carries_the_same_words_as_the_text(self, isa: Isa) -> None:
        """Every line of the text explanation appears, escaped, in the HTML page."""
        import html

        page = explain_html(isa)
        for line in explain(isa).splitlines():
            words = line.strip().removeprefix("- ")
            if words and set(words) != {"="}:
                assert html.escape(words, quote=True) in page, words
