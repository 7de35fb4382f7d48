"""The ODRL 2.2 / DPV export, parsed back as RDF with rdflib and checked triple by triple."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rdflib import RDF, RDFS, Graph, Literal, Namespace, URIRef
from rdflib.term import Node

from federation.isa import Isa, load_isa, to_odrl
from federation.isa.model import RISK_LEVELS
from federation.isa.odrl import field_iri
from federation.isa.plan import plan_for
from tests.unit.federation.isa.support import fake_catalogue
from tests.unit.federation.isa.support_v2 import COMPLETE

POLICIES = Path(__file__).resolve().parents[4] / "policies"
ODRL = Namespace("http://www.w3.org/ns/odrl/2/")
DPV = Namespace("https://w3id.org/dpv#")
PD = Namespace("https://w3id.org/dpv/pd#")
GDPR = Namespace("https://w3id.org/dpv/legal/eu/gdpr#")
ISA = Namespace("urn:isa-relay:vocab:")
AGENCY = "urn:isa-relay:agency:"


def _isas() -> list[Isa]:
    shipped = [load_isa(p.name, p.read_bytes()) for p in sorted(POLICIES.glob("*.yaml"))]
    return [*shipped, load_isa("complete.yaml", COMPLETE.encode(), catalogue=fake_catalogue)]


ISAS = [pytest.param(isa, id=isa.id) for isa in _isas()]


_GRAPHS: dict[tuple[str, str], Graph] = {}


def _graph(isa: Isa) -> tuple[Graph, URIRef]:
    """The export through JSON text (as the CLI writes it) and back as RDF (parsed once)."""
    key = (isa.source, isa.sha256)
    if key not in _GRAPHS:
        text = json.dumps(to_odrl(isa))
        _GRAPHS[key] = Graph().parse(data=text, format="json-ld")
    return _GRAPHS[key], URIRef(f"urn:isa-relay:isa:{isa.id}:{isa.version}")


def _one(graph: Graph, subject: Node, predicate: URIRef) -> Node:
    values = list(graph.objects(subject, predicate))
    assert len(values) == 1, (subject, predicate, values)
    return values[0]


def _levels(graph: Graph, rule: Node) -> list[str]:
    return [
        str(_one(graph, c, ODRL.rightOperand))
        for c in graph.objects(rule, ODRL.constraint)
        if _one(graph, c, ODRL.leftOperand) == ISA.riskLevel
    ]


def _decision(graph: Graph, rule: Node) -> str:
    return str(_one(graph, rule, ISA.decision))


def _expected_permissions(isa: Isa) -> int:
    """One per sender, recipient, type and permitted level, plus one for a consent 'review'."""
    count = 0
    for flow in isa.doc.flows:
        pairs = len(flow.sender) * len(flow.to) * len(flow.message_types)
        for level in RISK_LEVELS:
            rule = flow.by_risk_level.rule(level)
            if rule is None or rule.decision == "deny":
                continue
            consent = getattr(isa.consent_for(flow), level)
            extra = consent.requires != "not_required" and consent.otherwise == "review"
            count += pairs * (2 if extra else 1)
    return count


class TestOdrlExport:
    @pytest.mark.parametrize("isa", ISAS)
    def test_the_policy_is_an_agreement_that_prohibition_overrides(self, isa: Isa) -> None:
        """An odrl:Agreement, deny-overrides, naming the ISA id, version and file hash."""
        graph, policy = _graph(isa)
        assert (policy, RDF.type, ODRL.Agreement) in graph
        assert (policy, ODRL.conflict, ODRL.prohibit) in graph
        assert (policy, ISA.sha256, Literal(isa.sha256)) in graph

    @pytest.mark.parametrize("isa", ISAS)
    def test_each_permission_has_assigner_assignee_target_and_share(self, isa: Isa) -> None:
        """N permissions, each a sender's dpv:Share of an asset collection with a recipient."""
        graph, policy = _graph(isa)
        permissions = list(graph.objects(policy, ODRL.permission))
        assert len(permissions) == _expected_permissions(isa)
        for rule in permissions:
            assert _one(graph, rule, ODRL.action) == DPV.Share
            assert str(_one(graph, rule, ODRL.assigner)).startswith(AGENCY)
            assert str(_one(graph, rule, ODRL.assignee)).startswith(AGENCY)
            target = _one(graph, rule, ODRL.target)
            assert (target, RDF.type, ODRL.AssetCollection) in graph
            assert _decision(graph, rule) in {"PERMIT", "REVIEW"}

    @pytest.mark.parametrize("isa", ISAS)
    def test_targets_are_exactly_what_the_evaluator_releases(self, isa: Isa) -> None:
        """Each permission's fields equal the evaluator's plan for its sender, type and level."""
        graph, policy = _graph(isa)
        flows = {f.id: f for f in isa.doc.flows}
        for rule in graph.objects(policy, ODRL.permission):
            flow = flows[str(_one(graph, rule, ISA.flow))]
            sender = str(_one(graph, rule, ODRL.assigner)).removeprefix(AGENCY)
            target = _one(graph, rule, ODRL.target)
            mt = str(_one(graph, target, ISA.messageType))
            level = next(
                str(_one(graph, c, ODRL.rightOperand))
                for c in graph.objects(rule, ODRL.constraint)
                if _one(graph, c, ODRL.leftOperand) == ISA.riskLevel
            )
            plan = plan_for(isa, flow, mt, level, sender)  # type: ignore[arg-type]
            fields = {str(f) for f in graph.objects(target, ISA.field)}
            assert fields == {field_iri(mt, p) for p in plan.released}

    @pytest.mark.parametrize("isa", ISAS)
    def test_review_rules_carry_a_review_policy_duty(self, isa: Isa) -> None:
        """REVIEW (MAIS) is a permission with an odrl:reviewPolicy duty; PERMIT has none."""
        graph, policy = _graph(isa)
        for rule in graph.objects(policy, ODRL.permission):
            actions = {_one(graph, d, ODRL.action) for d in graph.objects(rule, ODRL.duty)}
            assert (ODRL.reviewPolicy in actions) == (_decision(graph, rule) == "REVIEW")

    def test_denied_levels_and_withheld_fields_are_prohibitions(self) -> None:
        """MARAC standard risk is a DENY prohibition; the refuge address is always prohibited."""
        isa = load_isa("m.yaml", (POLICIES / "marac-referrals.yaml").read_bytes())
        graph, policy = _graph(isa)
        prohibitions = list(graph.objects(policy, ODRL.prohibition))
        assert {_decision(graph, r) for r in prohibitions} == {"DENY"}
        levels = {r: _levels(graph, r) for r in prohibitions}
        assert sum(levels[r] == ["standard"] for r in prohibitions) == 5  # one per sender
        refuge = URIRef(field_iri("marac_referral", "victim.refuge_address"))
        withheld = [
            r
            for r in prohibitions
            if (_one(graph, r, ODRL.target), ISA.field, refuge) in graph
            and _one(graph, r, ODRL.action) == DPV.Share
            and not levels[r]
        ]
        assert len(withheld) == 5  # one per sender, whatever the risk level
        actions = {_one(graph, r, ODRL.action) for r in prohibitions}
        assert actions == {DPV.Share, DPV.Disclose, ODRL.inform}

    def test_legal_bases_are_dpv_and_the_projects_codes(self) -> None:
        """A council's public task is eu-gdpr:A6-1-e and Art 9(2)(g); police Part 3 its s31."""
        isa = load_isa("m.yaml", (POLICIES / "marac-referrals.yaml").read_bytes())
        graph, policy = _graph(isa)
        by_sender: dict[str, set[Node]] = {}
        for rule in graph.objects(policy, ODRL.permission):
            sender = str(_one(graph, rule, ODRL.assigner)).removeprefix(AGENCY)
            by_sender.setdefault(sender, set()).update(graph.objects(rule, DPV.hasLegalBasis))
        council = by_sender["council-sw"]
        assert {GDPR["A6-1-e"], GDPR["A9-2-g"]} <= council
        assert URIRef("urn:isa-relay:code:sch1_p2_18_safeguarding") in council
        police = by_sender["police-scotland"]
        assert URIRef("urn:isa-relay:code:s31_prevention_detection") in police
        assert not any(str(b).startswith(str(GDPR)) for b in police)
        label = _one(graph, URIRef("urn:isa-relay:code:sch1_p2_18_safeguarding"), RDFS.label)
        assert str(label) == "safeguarding children and adults at risk"

    def test_purposes_and_personal_data_categories(self) -> None:
        """Purposes are dpv:Purpose; fields carry dpv-pd categories and data subjects."""
        isa = load_isa("m.yaml", (POLICIES / "marac-referrals.yaml").read_bytes())
        graph, policy = _graph(isa)
        purpose = _one(graph, policy, DPV.hasPurpose)
        assert (purpose, RDF.type, DPV.Purpose) in graph
        q5 = URIRef(field_iri("marac_referral", "dash.q5.answer"))
        assert (q5, DPV.hasPersonalData, DPV.SpecialCategoryPersonalData) in graph
        dob = URIRef(field_iri("marac_referral", "victim.date_of_birth"))
        assert (dob, DPV.hasPersonalData, PD.BirthDate) in graph
        assert (dob, DPV.hasDataSubject, ISA.Victim) in graph
        child = URIRef(field_iri("marac_referral", "children[].name"))
        assert str(child).endswith("children%5B%5D.name")
        assert (child, DPV.hasDataSubject, DPV.Child) in graph

    def test_practice_consent_and_duties_are_constraints(self) -> None:
        """The consent rule is a constraint; deletion after the period is a duty."""
        isa = load_isa("m.yaml", (POLICIES / "marac-referrals.yaml").read_bytes())
        graph, policy = _graph(isa)
        rule = next(
            r for r in graph.objects(policy, ODRL.permission) if _decision(graph, r) == "PERMIT"
        )
        lefts = {_one(graph, c, ODRL.leftOperand) for c in graph.objects(rule, ODRL.constraint)}
        assert {ODRL.purpose, ODRL.dateTime, ISA.riskLevel, ISA.practiceConsent} <= lefts
        duties = {_one(graph, d, ODRL.action) for d in graph.objects(rule, ODRL.duty)}
        assert {ODRL.delete, ODRL.inform, ISA.log} == duties
