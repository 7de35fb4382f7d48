"""Export an ISA as an ODRL 2.2 policy in JSON-LD, annotated with the W3C Data Privacy Vocabulary.

This module performs no I/O: it returns a JSON-ready ``dict``; the caller writes it.

The shape follows the UK MAIS draft (domain brief sections 1.5 and 4): the ISA is an
``odrl:Agreement`` whose rules carry the three outcomes of a decision, ``isa:decision`` naming
which:
1. PERMIT: an ``odrl:permission`` to ``dpv:Share`` the fields the evaluator releases (the target,
   an ``odrl:AssetCollection`` of field assets) from the sender (``odrl:assigner``) with the
   recipient (``odrl:assignee``), constrained by purpose, risk level, the dates in force and the
   practice-consent rule; its duties are the flow's obligations (delete after the period, inform
   the sender of the events named, log to the DPA 2018 s62 standard).
2. REVIEW: the same permission with one more duty, ``odrl:reviewPolicy`` by the sender ("used
   when human intervention is required", ODRL common vocabulary): a person approves first.
3. DENY: an ``odrl:prohibition`` to share: the levels a flow denies, the consent rule's
   ``otherwise: deny``, the flow's ``deny_fields`` and every ``never_share`` field. Onward
   disclosure (``dpv:Disclose``) and informing the people named in ``must_not_inform``
   (``odrl:inform``) are prohibitions on the recipient. Conflicts: ``odrl:prohibit``
   (deny overrides).
Legal bases are ``dpv:hasLegalBasis`` on each rule (the sender's) and on each purpose per party:
the project's own code IRIs (``urn:isa-relay:code:...``, labelled with words and citation), plus
the DPV ``eu-gdpr`` IRI of the same Art 6 / Art 9 point. Fields carry ``dpv:hasPersonalData``
categories from ``dpv`` and ``dpv-pd`` and ``dpv:hasDataSubject``. Terms ODRL and DPV lack
(risk level, practice consent, the s62 log, the UK roles) are in ``urn:isa-relay:vocab:``.
The context is inline: parsing the export never fetches anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from federation.isa.catalogue import FieldLabels
from federation.isa.codes import CODE_WORDS, DPV_LEGAL_BASIS, citation
from federation.isa.model import RISK_LEVELS, Flow, Isa, LawfulBasis, RiskLevel
from federation.isa.plan import expand, labels_for, never_share_paths, plan_for

__all__ = ["CONTEXT", "field_iri", "to_odrl"]

Json = dict[str, Any]

CONTEXT: Json = {
    "odrl": "http://www.w3.org/ns/odrl/2/",
    "dpv": "https://w3id.org/dpv#",
    "pd": "https://w3id.org/dpv/pd#",
    "eu-gdpr": "https://w3id.org/dpv/legal/eu/gdpr#",
    "legal-gb": "https://w3id.org/dpv/legal/gb#",
    "dct": "http://purl.org/dc/terms/",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "isa": "urn:isa-relay:vocab:",
}
_CODE = "urn:isa-relay:code:"
_AGENCY = "urn:isa-relay:agency:"
_SUBJECTS = {
    "victim": "isa:Victim",
    "perpetrator": "isa:AllegedPerpetrator",
    "child": "dpv:Child",
    "third_party": "isa:ThirdParty",
    "practitioner": "isa:Practitioner",
}
_CLASSES = {
    "personal": "dpv:PersonalData",
    "special_category": "dpv:SpecialCategoryPersonalData",
    "criminal_offence": "pd:CriminalOffense",
    "sensitive_location": "pd:Location",
}
_WORDS = (  # a word in the field path -> a dpv-pd category
    ("date_of_birth", "pd:BirthDate"),
    ("postcode", "pd:PhysicalAddress"),
    ("address", "pd:PhysicalAddress"),
    ("phone", "pd:TelephoneNumber"),
    ("email", "pd:EmailAddress"),
    ("gender", "pd:Gender"),
    ("ethnic", "pd:Ethnicity"),
    ("bme", "pd:Ethnicity"),
    ("religion", "pd:Religion"),
    ("sexual", "pd:SexualPreference"),
    ("lgbt", "pd:SexualPreference"),
    ("mental_health", "pd:MentalHealth"),
    ("disab", "pd:Disability"),
    ("pregnant", "pd:Health"),
    ("school", "pd:School"),
    ("language", "pd:Language"),
    ("criminal_history", "pd:CriminalConviction"),
    ("convictions", "pd:CriminalConviction"),
    ("relationship", "pd:Relationship"),
    ("name", "pd:Name"),
    ("aka", "pd:Name"),
    ("aliases", "pd:Name"),
)
_CONSENT_OK = {
    "agreement_given": ["isa:AgreementGiven"],
    "agreement_or_reason_recorded": ["isa:AgreementGiven", "isa:ReasonNotSoughtRecorded"],
}


def _iri(value: str) -> Json:
    return {"@id": value}


def _base(isa: Isa) -> str:
    return f"urn:isa-relay:isa:{isa.id}:{isa.version}"


def field_iri(message_type: str, path: str) -> str:
    """A field's IRI; the brackets of a list path are percent-encoded (RFC 3986)."""
    encoded = path.replace("[", "%5B").replace("]", "%5D")
    return f"urn:isa-relay:field:{message_type}:{encoded}"


def _constraint(left: str, op: str, right: Any) -> Json:
    return {"odrl:leftOperand": _iri(left), "odrl:operator": _iri(op), "odrl:rightOperand": right}


def _basis_iris(basis: LawfulBasis) -> list[Json]:
    codes = [
        basis.article6,
        basis.rli_condition,
        basis.part3_purpose,
        *basis.article9,
        *basis.sch1,
        *basis.sch8,
        *basis.criminal_offence,
    ]
    present = [c for c in codes if c]
    iris = [_CODE + c for c in present]
    iris += [DPV_LEGAL_BASIS[c] for c in present if c in DPV_LEGAL_BASIS]
    return [_iri(i) for i in iris]


def _code_nodes(isa: Isa) -> Iterator[Json]:
    used = {
        c
        for p in isa.doc.purposes
        for b in p.lawful_basis.values()
        for c in (
            b.article6,
            b.rli_condition,
            b.part3_purpose,
            *b.article9,
            *b.sch1,
            *b.sch8,
            *b.criminal_offence,
        )
        if c
    }
    for code in sorted(used):
        node: Json = {
            "@id": _CODE + code,
            "@type": "dpv:LegalBasis",
            "rdfs:label": CODE_WORDS.get(code, code),
        }
        if citation(code):
            node["dct:source"] = citation(code)
        yield node


def _field_node(mt: str, path: str, labels: FieldLabels) -> Json:
    cats = {_CLASSES[c] for c in labels.data_classes if c in _CLASSES}
    cats |= {cat for word, cat in _WORDS if word in path}
    node: Json = {
        "@id": field_iri(mt, path),
        "@type": "odrl:Asset",
        "isa:path": path,
        "dpv:hasPersonalData": [_iri(c) for c in sorted(cats)],
    }
    if labels.description:
        node["rdfs:label"] = labels.description
    subjects = sorted(_SUBJECTS[r] for r in labels.subject_roles if r in _SUBJECTS)
    if subjects:
        node["dpv:hasDataSubject"] = [_iri(s) for s in subjects]
    return node


class _Builder:
    """Collects the graph's nodes while the rules are built (assets are shared by rules)."""

    def __init__(self, isa: Isa) -> None:
        self.isa, self.base = isa, _base(isa)
        self.assets: dict[str, Json] = {}
        self.fields: dict[str, Json] = {}

    def collection(self, name: str, mt: str, paths: set[str]) -> Json:
        iri = f"{self.base}:asset:{name}"
        labels = labels_for(self.isa, mt) or {}
        for path in paths:
            self.fields.setdefault(field_iri(mt, path), _field_node(mt, path, labels[path]))
        self.assets[iri] = {
            "@id": iri,
            "@type": "odrl:AssetCollection",
            "isa:messageType": mt,
            "isa:field": [_iri(field_iri(mt, p)) for p in sorted(paths)],
        }
        return _iri(iri)

    def common(self, flow: Flow, sender: str, recipient: str, level: RiskLevel | None) -> Json:
        header = self.isa.doc.isa
        constraints = [
            _constraint("odrl:purpose", "odrl:eq", _iri(f"{self.base}:purpose:{flow.purpose}"))
        ]
        if level is not None:
            constraints.append(_constraint("isa:riskLevel", "odrl:eq", level))
        constraints.append(
            _constraint(
                "odrl:dateTime",
                "odrl:gteq",
                {"@value": header.effective_from.isoformat(), "@type": "xsd:date"},
            )
        )
        if header.effective_to is not None:
            constraints.append(
                _constraint(
                    "odrl:dateTime",
                    "odrl:lteq",
                    {"@value": header.effective_to.isoformat(), "@type": "xsd:date"},
                )
            )
        rule: Json = {
            "odrl:assigner": _iri(_AGENCY + sender),
            "odrl:assignee": _iri(_AGENCY + recipient),
            "isa:flow": flow.id,
            "odrl:constraint": constraints,
        }
        purpose = self.isa.purpose(flow.purpose)
        basis = purpose.lawful_basis.get(sender) if purpose else None
        if basis is not None:
            rule["dpv:hasLegalBasis"] = _basis_iris(basis)
        return rule


def _duties(flow: Flow, sender: str) -> list[Json]:
    ob = flow.obligations
    duties: list[Json] = []
    if ob.retain:
        duties.append(
            {
                "odrl:action": _iri("odrl:delete"),
                "isa:from": ob.retain.start,
                "odrl:constraint": [
                    _constraint(
                        "odrl:elapsedTime",
                        "odrl:eq",
                        {"@value": ob.retain.period, "@type": "xsd:duration"},
                    )
                ],
            }
        )
    if ob.notify_originator:
        duties.append(
            {
                "odrl:action": _iri("odrl:inform"),
                "odrl:informedParty": _iri(_AGENCY + sender),
                "odrl:constraint": [
                    _constraint("isa:event", "odrl:isAnyOf", list(ob.notify_originator))
                ],
            }
        )
    if ob.log:
        duties.append({"odrl:action": _iri("isa:log"), "dct:conformsTo": "DPA 2018 s62"})
    return duties


def _review(sender: str) -> Json:
    return {"odrl:action": _iri("odrl:reviewPolicy"), "odrl:assignee": _iri(_AGENCY + sender)}


def _level_rules(
    b: _Builder, flow: Flow, sender: str, recipient: str, mt: str, level: RiskLevel
) -> Iterator[tuple[str, Json]]:
    """(``permission`` | ``prohibition``, rule) for one sender, recipient, type and level."""
    rule = flow.by_risk_level.rule(level)
    name = f"{flow.id}:{mt}:{level}:{sender}"
    if rule is None or rule.decision == "deny":
        target = b.collection(f"{flow.id}:{mt}:all", mt, set(labels_for(b.isa, mt) or {}))
        yield (
            "prohibition",
            {
                **b.common(flow, sender, recipient, level),
                "isa:decision": "DENY",
                "odrl:action": _iri("dpv:Share"),
                "odrl:target": target,
            },
        )
        return
    plan = plan_for(b.isa, flow, mt, level, sender)
    target = b.collection(name, mt, set(plan.released))
    consent = getattr(b.isa.consent_for(flow), level)
    duties = _duties(flow, sender)
    base = {
        **b.common(flow, sender, recipient, level),
        "odrl:action": _iri("dpv:Share"),
        "odrl:target": target,
    }
    ok = _CONSENT_OK.get(consent.requires)
    missing: list[Json] = []
    first = dict(
        base,
        **{
            "isa:decision": rule.decision.upper(),
            "odrl:duty": duties + ([_review(sender)] if rule.decision == "review" else []),
        },
    )
    if ok:
        first["odrl:constraint"] = [
            *base["odrl:constraint"],
            _constraint("isa:practiceConsent", "odrl:isAnyOf", [_iri(v) for v in ok]),
        ]
        missing = [
            *base["odrl:constraint"],
            _constraint("isa:practiceConsent", "odrl:isNoneOf", [_iri(v) for v in ok]),
        ]
    yield "permission", first
    if ok and consent.otherwise == "review":
        yield (
            "permission",
            dict(
                base,
                **{
                    "isa:decision": "REVIEW",
                    "odrl:constraint": missing,
                    "odrl:duty": [*duties, _review(sender)],
                },
            ),
        )
    elif ok:
        yield "prohibition", dict(base, **{"isa:decision": "DENY", "odrl:constraint": missing})


def _flow_prohibitions(
    b: _Builder, flow: Flow, sender: str, recipient: str, mt: str
) -> Iterator[Json]:
    labels = labels_for(b.isa, mt) or {}
    never = never_share_paths(b.isa, labels) | expand(flow.deny_fields, labels)
    if never:
        target = b.collection(f"{flow.id}:{mt}:withheld", mt, never)
        yield {
            **b.common(flow, sender, recipient, None),
            "isa:decision": "DENY",
            "odrl:action": _iri("dpv:Share"),
            "odrl:target": target,
        }
    released: set[str] = set()
    for level in RISK_LEVELS:
        rule = flow.by_risk_level.rule(level)
        if rule is not None and rule.decision != "deny":
            released |= plan_for(b.isa, flow, mt, level, sender).released
    if not released:
        return
    target = b.collection(f"{flow.id}:{mt}:released:{sender}", mt, released)
    recipient_rule = {
        "odrl:assigner": _iri(_AGENCY + sender),
        "odrl:assignee": _iri(_AGENCY + recipient),
        "isa:flow": flow.id,
        "odrl:target": target,
        "isa:decision": "DENY",
    }
    if flow.obligations.no_onward_disclosure:
        yield dict(
            recipient_rule,
            **{"odrl:action": _iri("dpv:Disclose"), "rdfs:comment": "unless the sender agrees"},
        )
    if flow.obligations.must_not_inform:
        who = [_iri(_SUBJECTS.get(w, "isa:" + w)) for w in flow.obligations.must_not_inform.who]
        yield dict(
            recipient_rule,
            **{
                "odrl:action": _iri("odrl:inform"),
                "odrl:constraint": [_constraint("odrl:recipient", "odrl:isAnyOf", who)],
            },
        )


def _rules(b: _Builder) -> tuple[list[Json], list[Json]]:
    permissions: list[Json] = []
    prohibitions: list[Json] = []
    for flow in b.isa.doc.flows:
        for sender in flow.sender:
            for recipient in flow.to:
                for mt in flow.message_types:
                    for level in RISK_LEVELS:
                        for kind, rule in _level_rules(b, flow, sender, recipient, mt, level):
                            (permissions if kind == "permission" else prohibitions).append(rule)
                    prohibitions += _flow_prohibitions(b, flow, sender, recipient, mt)
    return permissions, prohibitions


def _parties(isa: Isa) -> Iterator[Json]:
    for party in isa.doc.parties:
        yield {
            "@id": _AGENCY + party.id,
            "@type": ["odrl:Party", "dpv:DataController"],
            "rdfs:label": party.name,
            "isa:sector": party.sector,
            "isa:publicAuthority": party.public_authority,
            "isa:competentAuthority": party.competent_authority_part3,
        }


def _purposes(isa: Isa) -> Iterator[Json]:
    for purpose in isa.doc.purposes:
        yield {
            "@id": f"{_base(isa)}:purpose:{purpose.id}",
            "@type": ["dpv:Purpose", *purpose.dpv],
            "dct:description": purpose.description,
            "isa:legalBasisOf": [
                {"isa:party": _iri(_AGENCY + agency), "dpv:hasLegalBasis": _basis_iris(basis)}
                for agency, basis in purpose.lawful_basis.items()
            ],
        }


_VOCAB: list[Json] = [
    {"@id": "isa:Victim", "rdfs:subClassOf": _iri("dpv:DataSubject")},
    {"@id": "isa:AllegedPerpetrator", "rdfs:subClassOf": _iri("dpv:DataSubject")},
    {"@id": "isa:ThirdParty", "rdfs:subClassOf": _iri("dpv:DataSubject")},
    {"@id": "isa:Practitioner", "rdfs:subClassOf": _iri("dpv:DataSubject")},
    {"@id": "isa:riskLevel", "@type": "odrl:LeftOperand"},
    {"@id": "isa:practiceConsent", "@type": "odrl:LeftOperand"},
    {"@id": "isa:event", "@type": "odrl:LeftOperand"},
    {"@id": "isa:log", "@type": "odrl:Action"},
]


def to_odrl(isa: Isa) -> Json:
    """The ISA as one JSON-LD document: the ``odrl:Agreement`` and the nodes it names."""
    builder = _Builder(isa)
    permissions, prohibitions = _rules(builder)
    header = isa.doc.isa
    policy: Json = {
        "@id": _base(isa),
        "@type": "odrl:Agreement",
        "odrl:uid": _iri(_base(isa)),
        "odrl:profile": _iri("urn:isa-relay:vocab:profile"),
        "odrl:conflict": _iri("odrl:prohibit"),
        "dct:title": header.title,
        "dct:identifier": isa.id,
        "dct:hasVersion": isa.version,
        "isa:status": header.status,
        "isa:sha256": isa.sha256,
        "dpv:hasApplicableLaw": [_iri("legal-gb:law-GDPR"), _iri("legal-gb:law-DPA")],
        "dpv:hasPurpose": [_iri(f"{_base(isa)}:purpose:{p.id}") for p in isa.doc.purposes],
        "odrl:permission": permissions,
        "odrl:prohibition": prohibitions,
    }
    graph = [
        policy,
        *_parties(isa),
        *_purposes(isa),
        *_code_nodes(isa),
        *_VOCAB,
        *builder.assets.values(),
        *builder.fields.values(),
    ]
    return {"@context": CONTEXT, "@graph": graph}
