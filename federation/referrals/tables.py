"""The label table of each message type (see ``labels`` for the rules).

This module performs no I/O; it is data, reviewed like code.
"""

from __future__ import annotations

from federation.referrals.labels import (
    CH,
    CO,
    CONSENT,
    LOC,
    NEVER_SHARE,
    NOT_TO_PERPETRATOR,
    ORIGINATOR_CONTROL,
    PD,
    PR,
    PRACTITIONER,
    SAFE_CONTACT,
    SC,
    C,
    Label,
    P,
    T,
    Table,
    V,
    dash_table,
    lbl,
    under,
)

__all__ = ["TABLES"]

NDP = [NOT_TO_PERPETRATOR]

COMMON: Table = {
    "synthetic": lbl("marks synthetic test data (always kept)"),
    **under("consent.", CONSENT, V),
}

PERSON: Table = {
    "name": lbl("full name", PD),
    "aliases": lbl("other names used", PD),
    "date_of_birth": lbl("date of birth", PD),
    "gender": lbl("gender", PD),
    "address": lbl("home address", PD, LOC),
    "postcode": lbl("home postcode", PD, LOC),
    "phone": lbl("phone number", PD),
}

MARAC_VICTIM: Table = {
    **PERSON,
    **under("", {k: PERSON[k] for k in ("address", "postcode", "phone")}, None, NDP),
    "safe_to_call": lbl("whether it is safe to call", PD, handling=NDP),
    "contact_notes": lbl("notes on safe contact", PD, handling=NDP),
    **under("safe_contact.", SAFE_CONTACT, None),
    "refuge_address": lbl("refuge address", PD, LOC, handling=[NEVER_SHARE, NOT_TO_PERPETRATOR]),
    "pregnant": lbl("pregnant", PD, SC),
    "ethnicity": lbl("ethnicity", PD, SC),
    "first_language": lbl("first language", PD),
    "interpreter_required": lbl("needs an interpreter", PD),
    "mental_health": lbl("mental health", PD, SC),
    "substance_use": lbl("drink or drug use", PD, SC),
    "occupation": lbl("occupation", PD),
    "gp_practice": lbl("GP practice", PD, LOC, handling=NDP),
}

MARAC_PERPETRATOR: Table = {
    **{k: v for k, v in PERSON.items() if k != "phone"},
    "relationship_to_victim": lbl("relationship to the victim", PD, roles=[V, P]),
    "criminal_history": lbl("criminal history", PD, CO, handling=[ORIGINATOR_CONTROL]),
    "bail_conditions": lbl("bail conditions", PD, CO, roles=[P, V]),
    "orders": lbl("court orders against them", PD, CO, roles=[P, V]),
}

MARAC_CHILD: Table = {
    "name": lbl("child's name", PD),
    "date_of_birth": lbl("child's date of birth", PD),
    "gender": lbl("child's gender", PD),
    "relationship_to_victim": lbl("child's relationship to the victim", PD),
    "relationship_to_perpetrator": lbl("child's relationship to the perpetrator", PD),
    "lives_with_victim": lbl("whether the child lives with the victim", PD, handling=NDP),
    "address": lbl("child's address", PD, LOC, handling=NDP),
    "school": lbl("child's school", PD, LOC, handling=NDP),
}

MARAC: dict[str, Label] = {
    **COMMON,
    "referral_ref": lbl("referral reference"),
    "referral_date": lbl("date of referral"),
    "referring_agency": lbl("referring agency"),
    **under("referrer.", PRACTITIONER, PR),
    **under("victim.", MARAC_VICTIM, V),
    "diversity.bme": lbl("black or minority ethnic", PD, SC, roles=[V]),
    "diversity.disabled": lbl("disabled", PD, SC, roles=[V]),
    "diversity.lgbt": lbl("lesbian, gay, bisexual or trans", PD, SC, roles=[V]),
    **under("perpetrators[].", MARAC_PERPETRATOR, P),
    **under("children[].", MARAC_CHILD, C),
    "reason_for_referral": lbl("reason for referral (free text)", PD, SC, CO, roles=[V, P]),
    "criteria.visible_high_risk": lbl("14 or more yes answers on the DASH", PD, roles=[V]),
    "criteria.professional_judgement": lbl("referred on professional judgement", PD, roles=[V]),
    "criteria.potential_escalation": lbl(
        "3 or more police-reported incidents in 12 months", PD, CO, roles=[V, P]
    ),
    "criteria.repeat": lbl("repeat referral within 12 months", PD, roles=[V]),
    "police_incidents_last_12_months": lbl(
        "police-reported incidents in 12 months", PD, CO, roles=[V, P]
    ),
    "previous_marac.date_listed": lbl("date previously listed at MARAC", PD, roles=[V]),
    "previous_marac.case_number": lbl("previous MARAC case number", PD, roles=[V]),
    **under("dash.", dash_table(), V),
    "afraid_of": lbl("everyone the victim is afraid of", PD, CO, roles=[V, P, T]),
    "safe_to_talk_to": lbl("people safe to talk to", PD, roles=[V, T], handling=NDP),
    "not_safe_to_talk_to": lbl("people not safe to talk to", PD, roles=[V, T], handling=NDP),
    "referred_to_other_marac": lbl("also referred to another MARAC", PD, roles=[V]),
    "crime_ref": lbl("police crime reference", CO, roles=[V, P]),
    "incident_ref": lbl("police incident reference", CO, roles=[V, P]),
    "officer_in_charge": lbl("police officer in charge", PD, roles=[PR]),
}

DASH_RA: dict[str, Label] = {
    **COMMON,
    "assessment_ref": lbl("assessment reference"),
    "victim.name": lbl("victim's name", PD, roles=[V]),
    "victim.date_of_birth": lbl("victim's date of birth", PD, roles=[V]),
    "victim.postcode": lbl("victim's postcode", PD, LOC, roles=[V], handling=NDP),
    "perpetrator.name": lbl("perpetrator's name", PD, roles=[P]),
    "perpetrator.date_of_birth": lbl("perpetrator's date of birth", PD, roles=[P]),
    "perpetrator.relationship_to_victim": lbl("relationship to the victim", PD, roles=[V, P]),
    **under("dash.", dash_table(), V),
}

POLICE_ACCUSED: Table = {
    **PERSON,
    "criminal_history": lbl("criminal history", PD, CO, handling=[ORIGINATOR_CONTROL]),
    "bail_conditions": lbl("bail conditions", PD, CO, roles=[P, V]),
}

POLICE_CHILD: Table = {
    "name": lbl("child's name", PD),
    "date_of_birth": lbl("child's date of birth", PD),
    "present": lbl("child present at the incident", PD),
    "witnessed": lbl("child witnessed the incident", PD),
    "injured": lbl("child injured", PD, SC),
    "school": lbl("child's school", PD, LOC, handling=NDP),
}

POLICE: dict[str, Label] = {
    **COMMON,
    "report_id": lbl("concern report reference"),
    "report_type": lbl("kind of concern", PD, roles=[V]),
    "incident_ref": lbl("police incident reference", CO, roles=[V, P]),
    "crime_ref": lbl("police crime reference", CO, roles=[V, P]),
    "occurred_at": lbl("when the incident happened", CO, roles=[V, P]),
    "reported_at": lbl("when the incident was reported", roles=[V]),
    "location": lbl("where the incident happened", PD, LOC, roles=[V, P], handling=NDP),
    "location_postcode": lbl("postcode of the incident", PD, LOC, roles=[V, P], handling=NDP),
    **under("officer.", PRACTITIONER, PR),
    "supervisor_review.by": lbl("reviewing supervisor", PD, roles=[PR]),
    "supervisor_review.at": lbl("when the supervisor reviewed"),
    "supervisor_review.outcome": lbl("outcome of the supervisor's review"),
    **under("victim.", PERSON, V, NDP),
    **under("victim_safe_contact.", SAFE_CONTACT, V),
    **under("perpetrators[].", POLICE_ACCUSED, P),
    **under("children[].", POLICE_CHILD, C),
    **under("other_subjects[].", PERSON, T),
    "other_subjects[].role": lbl("how the person is involved", PD, roles=[T]),
    "narrative": lbl("account of the incident (free text)", PD, SC, CO, roles=[V, P, C, T]),
    "child_wellbeing_indicators": lbl("SHANARRI wellbeing concerns", PD, SC, CH, roles=[C]),
    "adult_at_risk.unable_to_safeguard_self": lbl("unable to safeguard self", PD, SC, roles=[V]),
    "adult_at_risk.at_risk_of_harm": lbl("at risk of harm", PD, roles=[V]),
    "adult_at_risk.more_vulnerable_due_to_condition": lbl(
        "more vulnerable through disability, illness or mental disorder", PD, SC, roles=[V]
    ),
    "adult_at_risk.notes": lbl("notes on the adult-at-risk test", PD, SC, roles=[V]),
    "views.sought": lbl("whether the person's views were sought", PD, roles=[V]),
    "views.views": lbl("the person's views on sharing", PD, roles=[V], handling=NDP),
    "views.exemption_reason": lbl("why views were not sought", PD, roles=[V]),
    "risk_assessment.scheme": lbl("risk assessment scheme"),
    "risk_assessment.score": lbl("risk assessment score", PD, roles=[V]),
    "risk_assessment.level": lbl("risk level", PD, roles=[V]),
    "disposal": lbl("what happened to the accused", PD, CO, roles=[P]),
    "interviewer_gender_requested": lbl("interviewer gender the victim asked for", PD, roles=[V]),
    "recommended_partners": lbl("partners the concern should go to", roles=[V]),
    "share_decision.lawful_basis": lbl("lawful basis for sharing"),
    "share_decision.condition": lbl("Schedule 1 or 8 condition for sharing"),
    "share_decision.decided_by": lbl("who decided to share", PD, roles=[PR]),
    "share_decision.decided_at": lbl("when the decision to share was made"),
}

CLIENT: Table = {
    "name": lbl("full name", PD),
    "aka": lbl("other name used", PD),
    "date_of_birth": lbl("date of birth", PD),
    "gender": lbl("gender", PD),
    "ethnicity": lbl("ethnicity", PD, SC),
    "first_language": lbl("first language", PD),
    "interpreter_required": lbl("needs an interpreter (incl. BSL)", PD),
    "disability.self_identifies": lbl("identifies as disabled", PD, SC),
    "disability.details": lbl("details of disability", PD, SC),
    "pregnant": lbl("pregnant", PD, SC),
    "sexual_orientation": lbl("sexual orientation", PD, SC),
    "religion": lbl("religion", PD, SC),
    "ni_number": lbl("National Insurance number", PD),
    "immigration.no_recourse_to_public_funds": lbl("no recourse to public funds", PD),
    "immigration.indefinite_leave": lbl("has indefinite leave to remain", PD),
}

SUPPORT_PERPETRATOR: Table = {
    "name": lbl("full name", PD),
    "date_of_birth": lbl("date of birth", PD),
    "ethnicity": lbl("ethnicity", PD, SC),
    "occupation": lbl("occupation", PD),
    "workplace": lbl("workplace", PD, LOC),
    "location": lbl("where they live or stay", PD, LOC),
    "knows_client_address": lbl("knows the client's address", PD, roles=[P, V]),
    "lives_with_client": lbl("lives with the client", PD, roles=[P, V]),
    "criminal_history": lbl("criminal history", PD, CO, handling=[ORIGINATOR_CONTROL]),
}

SUPPORT_CHILD: Table = {
    "name": lbl("child's name", PD),
    "gender": lbl("child's gender", PD),
    "date_of_birth": lbl("child's date of birth", PD),
    "lives_with_client": lbl("child lives with the client", PD, handling=NDP),
    "perpetrators_child": lbl("child is the perpetrator's child", PD),
    "support_needs": lbl("child's support needs", PD, SC),
    "social_work_involvement": lbl("social work involved with the child", PD),
}

SUPPORT: dict[str, Label] = {
    **COMMON,
    "referral_ref": lbl("referral reference"),
    "referral_date": lbl("date of referral"),
    "referral_source": lbl("who referred"),
    **under("referrer.", PRACTITIONER, PR),
    "consent_scope_agencies": lbl("agencies the client agreed may be told", PD, roles=[V]),
    **under("client.", CLIENT, V),
    **under("safe_contact.", SAFE_CONTACT, V),
    "address.current": lbl("current address", PD, LOC, roles=[V], handling=NDP),
    "address.current_postcode": lbl("current postcode", PD, LOC, roles=[V], handling=NDP),
    "address.fleeing": lbl("address being fled", PD, LOC, roles=[V, P]),
    "address.fleeing_postcode": lbl("postcode being fled", PD, LOC, roles=[V, P]),
    "address.date_left": lbl("date the client left", PD, roles=[V], handling=NDP),
    "refuge_location": lbl("refuge address", PD, LOC, roles=[V], handling=[NEVER_SHARE, *NDP]),
    **under("perpetrator.", SUPPORT_PERPETRATOR, P),
    "relationship": lbl("relationship to the perpetrator", PD, roles=[V, P]),
    "relationship_length": lbl("length of the relationship", PD, roles=[V, P]),
    "abuse_types": lbl("kinds of abuse experienced", PD, SC, CO, roles=[V, P]),
    **under("children[].", SUPPORT_CHILD, C),
    "risk.dash_score": lbl("DASH score", PD, roles=[V]),
    "risk.level": lbl("risk level", PD, roles=[V]),
    "risk.assessed_at": lbl("date of the risk assessment", roles=[V]),
    "justice.police_involved": lbl("police involved", PD, CO, roles=[V, P]),
    "justice.officer_contact": lbl("police officer to contact", PD, roles=[PR]),
    "justice.crime_ref": lbl("police crime reference", CO, roles=[V, P]),
    "justice.bail_conditions": lbl("perpetrator's bail conditions", PD, CO, roles=[P, V]),
    "justice.address_flagged": lbl("client's address flagged with police", PD, roles=[V]),
    "justice.next_court_date": lbl("next court date", CO, roles=[P, V]),
    "justice.orders": lbl("protective orders in place", PD, CO, roles=[P, V]),
    **under("other_professionals[].", PRACTITIONER, PR),
    "support_needs": lbl("support needs", PD, SC, roles=[V]),
    "services_requested": lbl("services requested", PD, roles=[V]),
    "welfare_check_if_uncontactable": lbl("welfare check if uncontactable", PD, roles=[V]),
}

CALEDONIAN: dict[str, Label] = {
    **COMMON,
    "referral_ref": lbl("referral reference"),
    "referral_date": lbl("date of referral"),
    "court_order.order_type": lbl("kind of order", PD, CO, roles=[P]),
    "court_order.made_on": lbl("date the order was made", PD, CO, roles=[P]),
    "court_order.court": lbl("court that made the order", PD, CO, roles=[P]),
    "court_order.duration_months": lbl("length of the order", PD, CO, roles=[P]),
    **under("mens_worker.", PRACTITIONER, PR),
    "man.name": lbl("man's name", PD, roles=[P]),
    "man.date_of_birth": lbl("man's date of birth", PD, roles=[P]),
    "man.address": lbl("man's address", PD, LOC, roles=[P]),
    "man.postcode": lbl("man's postcode", PD, LOC, roles=[P]),
    "man.convictions": lbl(
        "man's convictions", PD, CO, roles=[P], handling=[ORIGINATOR_CONTROL]
    ),
    "man.programme_stage": lbl("stage of the programme", PD, CO, roles=[P]),
    **under("partner.", {k: PERSON[k] for k in ("name", "date_of_birth", "address", "postcode")},
            V, NDP),
    "partner.relationship": lbl("partner or ex-partner", PD, roles=[V, P], handling=NDP),
    "partner.living_with_man": lbl("partner lives with the man", PD, roles=[V, P], handling=NDP),
    **under("partner.safe_contact.", SAFE_CONTACT, V),
    "children[].name": lbl("child's name", PD, CH, roles=[C]),
    "children[].date_of_birth": lbl("child's date of birth", PD, CH, roles=[C]),
    "children[].lives_with_partner": lbl("child lives with the partner", PD, CH, roles=[C],
                                         handling=NDP),
    "children[].mans_child": lbl("child is the man's child", PD, CH, roles=[C, P]),
    "assessed_risk.level": lbl("assessed risk the man poses", PD, roles=[P, V]),
    "assessed_risk.tool": lbl("tool used for the risk assessment"),
    "assessed_risk.assessed_at": lbl("date of the risk assessment", roles=[P]),
    "assessed_risk.summary": lbl("summary of the risk assessment", PD, CO, roles=[P, V]),
}

TABLES: dict[str, dict[str, Label]] = {
    "marac_referral": MARAC,
    "dash_risk_assessment": DASH_RA,
    "police_concern": POLICE,
    "support_referral": SUPPORT,
    "caledonian_partner_contact": CALEDONIAN,
}
