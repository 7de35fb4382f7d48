"""Synthetic referrals for tests, demos and benchmarks: seeded, deterministic, obviously fake.

This module performs no I/O; all randomness comes from the ``random.Random`` passed in.

Rules (domain notes section 3.7):
1. Every record has ``synthetic: true``; every reference starts ``SYN-``.
2. Invented names only (the lists below are made up and checked against nothing real); postcodes
   in the impossible ``QX`` area; phone numbers in Ofcom's drama range 07700 900000-900999;
   e-mail addresses at ``example.invalid``; dates in 2026.
3. Records come from households (a victim, a perpetrator, 0-3 children) so that fields agree.
4. DASH answers are drawn so that the score lies in the band of the requested risk level; the
   below-threshold edge case draws a lower band and raises it by professional judgement.
5. Edge cases (``EDGE_CASES``): below-threshold professional judgement, victim not aware,
   refuge address present (to be stripped), a 16-17-year-old victim, a pregnant victim.
6. Every record passes ``parse_payload(type, record)`` (a property test proves it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from federation.referrals import DASH_QUESTIONS, MESSAGE_TYPES, RISK_LEVELS, RiskLevel

__all__ = [
    "EDGE_CASES",
    "Household",
    "Person",
    "dash_answers",
    "generate_batch",
    "generate_household",
    "generate_referral",
]

EDGE_CASES: tuple[str, ...] = (
    "below_threshold_judgement",
    "victim_not_aware",
    "refuge_address",
    "young_victim",
    "pregnant_victim",
)
_EDGE_CYCLE: tuple[str | None, ...] = (None, *EDGE_CASES)
_TYPES: tuple[str, ...] = tuple(sorted(MESSAGE_TYPES))
_BANDS: dict[RiskLevel, tuple[int, int]] = {
    "standard": (1, 9),
    "medium": (10, 13),
    "high": (14, 24),
}

# Invented names (synthetic): not drawn from any register of real people.
_FEMALE = ("Alvena", "Brisa", "Corran", "Delphy", "Elowyn", "Farra", "Ginevre", "Hallie", "Isolde")
_MALE = ("Arvel", "Brannoc", "Cadoc", "Dorran", "Evander", "Fenwick", "Garrow", "Hollis", "Ivor")
_CHILD = ("Ash", "Bryn", "Cass", "Dee", "Ellis", "Fen", "Gale", "Hazel", "Ira", "Jory")
_SURNAMES = ("QUARRELL", "QUENBY", "QUILLAN", "QUINTRELL", "QUORVEN", "QUASTLE", "QUILBY")
_STREETS = ("Synthetic Street", "Example Road", "Placeholder Lane", "Testing Close")
_TOWNS = ("Notaplace", "Fakesby", "Testerton")
_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"


@dataclass(frozen=True, slots=True)
class Person:
    """One invented person."""

    first: str
    last: str
    date_of_birth: date
    gender: str

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"


@dataclass(frozen=True, slots=True)
class Household:
    """A victim, a perpetrator and their children, with one home and one referral date."""

    victim: Person
    perpetrator: Person
    children: tuple[Person, ...]
    address: str
    postcode: str
    phone: str
    email: str
    referral_date: date
    ref_number: int


def generate_household(rng: random.Random, *, victim_age: int | None = None) -> Household:
    """A synthetic household; ``victim_age`` fixes the victim's age on the referral date."""
    when = date(2026, 1, 5) + timedelta(days=rng.randint(0, 340))
    last = rng.choice(_SURNAMES)
    female = rng.random() < 0.85
    age = victim_age or rng.randint(18, 70)
    victim = _person(rng, when, age, female, last)
    perpetrator = _person(rng, when, rng.randint(18, 72), not female, rng.choice(_SURNAMES))
    oldest_child = max(0, min(15, age - 16))
    children = tuple(
        _person(rng, when, rng.randint(0, oldest_child), rng.random() < 0.5, last, _CHILD)
        for _ in range(rng.choice((0, 0, 1, 1, 2, 3)))
    )
    postcode = _postcode(rng)
    return Household(
        victim=victim,
        perpetrator=perpetrator,
        children=children,
        address=f"{rng.randint(1, 180)} {rng.choice(_STREETS)}, {rng.choice(_TOWNS)}, {postcode}",
        postcode=postcode,
        phone=_phone(rng),
        email=f"{victim.first}.{victim.last}@example.invalid".lower(),
        referral_date=when,
        ref_number=rng.randint(0, 999_999),
    )


def _person(
    rng: random.Random,
    on: date,
    age: int,
    female: bool,
    last: str,
    firsts: tuple[str, ...] | None = None,
) -> Person:
    born = on - timedelta(days=365 * age + rng.randint(1, 360) + age // 4)
    names = firsts or (_FEMALE if female else _MALE)
    return Person(rng.choice(names), last, born, "female" if female else "male")


def _postcode(rng: random.Random) -> str:
    return f"QX{rng.randint(1, 99)} {rng.randint(0, 9)}{rng.choice(_LETTERS)}{rng.choice(_LETTERS)}"


def _phone(rng: random.Random) -> str:
    return f"07700 900{rng.randint(0, 999):03d}"


def dash_answers(
    rng: random.Random, level: RiskLevel, *, must_be_yes: tuple[str, ...] = ()
) -> dict[str, dict[str, str]]:
    """24 answers whose ``yes`` count lies in ``level``'s band, including ``must_be_yes``."""
    low, high = _BANDS[level]
    score = rng.randint(max(low, len(must_be_yes)), high)
    others = [q for q in DASH_QUESTIONS if q not in must_be_yes]
    yes = set(must_be_yes) | set(rng.sample(others, score - len(must_be_yes)))
    answers: dict[str, dict[str, str]] = {}
    for q in DASH_QUESTIONS:
        if q in yes:
            answers[q] = {"answer": "yes"}
        else:
            answers[q] = {"answer": "dont_know" if rng.random() < 0.1 else "no"}
    return answers


def generate_referral(
    message_type: str,
    rng: random.Random,
    risk_level: RiskLevel = "high",
    *,
    edge: str | None = None,
) -> dict[str, Any]:
    """One synthetic payload of ``message_type`` whose ``risk_level`` is ``risk_level``."""
    if message_type not in _BUILDERS:
        raise ValueError(f"unknown message type {message_type!r}")
    if edge is not None and edge not in EDGE_CASES:
        raise ValueError(f"unknown edge case {edge!r}")
    if edge == "below_threshold_judgement" and risk_level == "standard":
        raise ValueError("a below-threshold judgement raises the level: ask for medium or high")
    age = rng.choice((16, 17)) if edge == "young_victim" else None
    household = generate_household(rng, victim_age=age)
    record = _BUILDERS[message_type](_Ctx(rng, household, risk_level, edge))
    return {key: value for key, value in record.items() if value != []}  # no children: omit


def generate_batch(
    count: int, seed: int, message_type: str | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """``count`` (type, payload) pairs, the same for the same seed; cycles types and edges."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not a secret
    batch: list[tuple[str, dict[str, Any]]] = []
    for i in range(count):
        kind = message_type or _TYPES[i % len(_TYPES)]
        edge = _EDGE_CYCLE[(i // len(_TYPES)) % len(_EDGE_CYCLE)]
        levels = RISK_LEVELS[1:] if edge == "below_threshold_judgement" else RISK_LEVELS
        batch.append((kind, generate_referral(kind, rng, rng.choice(levels), edge=edge)))
    return batch


@dataclass(frozen=True, slots=True)
class _Ctx:
    """What every builder needs: randomness, the household, the level and the edge case."""

    rng: random.Random
    home: Household
    level: RiskLevel
    edge: str | None

    def ref(self, kind: str) -> str:
        return f"SYN-{kind}-2026-{self.home.ref_number:06d}"

    def day(self, days_before: int = 0) -> str:
        return (self.home.referral_date - timedelta(days=days_before)).isoformat()

    def moment(self, days_before: int = 0) -> str:
        base = datetime.combine(self.home.referral_date, datetime.min.time(), tzinfo=UTC)
        at = base - timedelta(days=days_before) + timedelta(minutes=self.rng.randint(0, 1439))
        return at.strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def pregnant(self) -> bool:
        return self.edge == "pregnant_victim"

    def consent(self) -> dict[str, Any]:
        if self.edge == "victim_not_aware":
            return {
                "victim_aware": "no",
                "agreement": "not_sought",
                "reason_not_sought": "seeking_would_increase_risk",
                "recorded_at": self.day(),
            }
        if self.level == "high" and self.rng.random() < 0.3:
            return {
                "victim_aware": "yes",
                "agreement": "not_sought",
                "reason_not_sought": "risk_level_high",
                "recorded_at": self.day(),
            }
        return {"victim_aware": "yes", "agreement": "given", "recorded_at": self.day()}

    def practitioner(self, agency: str, role: str) -> dict[str, str]:
        first = self.rng.choice(_FEMALE + _MALE)
        return {
            "name": f"{first} {self.rng.choice(_SURNAMES)}",
            "role": role,
            "agency": agency,
            "phone": _phone(self.rng),
            "email": f"{first.lower()}.worker@example.invalid",
        }


# Builders: one per message type ------------------------------------------------------------


def _dash(c: _Ctx) -> dict[str, Any]:
    """A DASH whose final level is ``c.level`` (judged up from a lower band for that edge)."""
    below = c.edge == "below_threshold_judgement"
    banded = RISK_LEVELS[RISK_LEVELS.index(c.level) - 1] if below else c.level
    answers = dash_answers(c.rng, banded, must_be_yes=("q9",) if c.pregnant else ())
    score = sum(1 for a in answers.values() if a["answer"] == "yes")
    dash: dict[str, Any] = {"scheme": "safelives_dash_24", **answers, "score": score}
    if below:
        dash["professional_judgement"] = {
            "level": c.level,
            "justification": "SYNTHETIC: non-fatal strangulation and recent separation",
        }
    dash.update(level=c.level, assessed_at=c.day(1), assessor_org="SYN Police Division")
    dash["assessor_role"] = "public protection officer"
    return dash


def _children(c: _Ctx, related: str) -> list[dict[str, Any]]:
    return [
        {
            "name": child.name,
            "date_of_birth": child.date_of_birth.isoformat(),
            related: c.rng.choice(("child", "stepchild", "none")),
        }
        for child in c.home.children
    ]


def _marac(c: _Ctx) -> dict[str, Any]:
    h, dash = c.home, _dash(c)
    incidents = c.rng.randint(0, 5)
    victim: dict[str, Any] = {
        "name": h.victim.name,
        "date_of_birth": h.victim.date_of_birth.isoformat(),
        "gender": h.victim.gender,
        "address": h.address,
        "postcode": h.postcode,
        "phone": h.phone,
        "safe_to_call": True,
        "safe_contact": {"phone": h.phone, "safe_times": "weekdays 10:00-12:00"},
        "pregnant": c.pregnant,
    }
    if c.edge == "refuge_address":
        victim["refuge_address"] = f"SYNTHETIC REFUGE, 1 Hidden Row, {_postcode(c.rng)}"
    return {
        "synthetic": True,
        "referral_ref": c.ref("MARAC"),
        "referral_date": c.day(),
        "referring_agency": "SYN Police Division",
        "referrer": c.practitioner("SYN Police Division", "MARAC single point of contact"),
        "victim": victim,
        "diversity": {"bme": False, "disabled": c.rng.random() < 0.2, "lgbt": False},
        "perpetrators": [
            {
                "name": h.perpetrator.name,
                "date_of_birth": h.perpetrator.date_of_birth.isoformat(),
                "relationship_to_victim": "ex_partner",
                "criminal_history": "SYNTHETIC: previous common assault (2025)",
            }
        ],
        "children": _children(c, "relationship_to_perpetrator"),
        "reason_for_referral": "SYNTHETIC: escalating abuse after separation",
        "criteria": {
            "visible_high_risk": dash["score"] >= 14,
            "professional_judgement": "professional_judgement" in dash,
            "potential_escalation": incidents >= 3,
            "repeat": False,
        },
        "police_incidents_last_12_months": incidents,
        "dash": dash,
        "consent": c.consent(),
        "crime_ref": c.ref("CR"),
    }


def _dash_ra(c: _Ctx) -> dict[str, Any]:
    h = c.home
    return {
        "synthetic": True,
        "assessment_ref": c.ref("DASH"),
        "victim": {
            "name": h.victim.name,
            "date_of_birth": h.victim.date_of_birth.isoformat(),
            "postcode": h.postcode,
        },
        "perpetrator": {"name": h.perpetrator.name, "relationship_to_victim": "partner"},
        "dash": _dash(c),
        "consent": c.consent(),
    }


def _police(c: _Ctx) -> dict[str, Any]:
    h, dash = c.home, _dash(c)
    return {
        "synthetic": True,
        "report_id": c.ref("VPD"),
        "report_type": "domestic_abuse",
        "incident_ref": c.ref("INC"),
        "crime_ref": c.ref("CR"),
        "occurred_at": c.moment(2),
        "reported_at": c.moment(1),
        "location": h.address,
        "location_postcode": h.postcode,
        "officer": c.practitioner("SYN Police Division", "constable"),
        "victim": {"name": h.victim.name, "date_of_birth": h.victim.date_of_birth.isoformat()},
        "victim_safe_contact": {"phone": h.phone, "safe_to_leave_message": False},
        "perpetrators": [{"name": h.perpetrator.name, "bail_conditions": "SYNTHETIC: no contact"}],
        "children": [{"name": k.name, "present": True} for k in h.children],
        "narrative": "SYNTHETIC: officers attended a report of a domestic disturbance",
        "views": _views(c),
        "risk_assessment": {
            "scheme": "safelives_dash_24",
            "score": dash["score"],
            "level": c.level,
        },
        "disposal": c.rng.choice(("arrested", "charged", "no_crime")),
        "recommended_partners": ["idva", "social_work"] if h.children else ["idva"],
        "consent": c.consent(),
    }


def _views(c: _Ctx) -> dict[str, Any]:
    if c.edge == "victim_not_aware":
        return {"sought": False, "exemption_reason": "risk_to_person"}
    return {"sought": True, "views": "SYNTHETIC: agrees to an IDVA referral"}


def _support(c: _Ctx) -> dict[str, Any]:
    h = c.home
    record: dict[str, Any] = {
        "synthetic": True,
        "referral_ref": c.ref("SUP"),
        "referral_date": c.day(),
        "referral_source": "police",
        "referrer": c.practitioner("SYN Police Division", "constable"),
        "client": {
            "name": h.victim.name,
            "date_of_birth": h.victim.date_of_birth.isoformat(),
            "gender": h.victim.gender,
            "pregnant": c.pregnant,
        },
        "safe_contact": {"phone": h.phone, "email": h.email, "safe_to_leave_message": False},
        "address": {"current": h.address, "current_postcode": h.postcode},
        "perpetrator": {"name": h.perpetrator.name, "lives_with_client": False},
        "relationship": "ex_partner",
        "abuse_types": ["emotional", "coercive_control"],
        "children": [{"name": k.name, "lives_with_client": True} for k in h.children],
        "risk": {"dash_score": _dash(c)["score"], "level": c.level, "assessed_at": c.day(1)},
        "justice": {"police_involved": True, "crime_ref": c.ref("CR")},
        "services_requested": ["idva"] if c.level == "high" else ["outreach"],
        "consent": c.consent(),
    }
    if c.edge == "refuge_address":
        record["refuge_location"] = f"SYNTHETIC REFUGE, 1 Hidden Row, {_postcode(c.rng)}"
    return record


def _caledonian(c: _Ctx) -> dict[str, Any]:
    h = c.home
    return {
        "synthetic": True,
        "referral_ref": c.ref("CAL"),
        "referral_date": c.day(),
        "court_order": {"order_type": "community_payback_order", "made_on": c.day(20)},
        "mens_worker": c.practitioner("SYN Justice Social Work", "Caledonian men's worker"),
        "man": {"name": h.perpetrator.name, "programme_stage": "assessment"},
        "partner": {
            "name": h.victim.name,
            "date_of_birth": h.victim.date_of_birth.isoformat(),
            "relationship": "ex_partner",
            "postcode": h.postcode,
            "safe_contact": {"phone": h.phone, "safe_times": "evenings"},
        },
        "children": [{"name": k.name, "mans_child": True} for k in h.children],
        "assessed_risk": {"level": c.level, "tool": "sara_v3", "assessed_at": c.day(3)},
        "consent": c.consent(),
    }


_BUILDERS = {
    "marac_referral": _marac,
    "dash_risk_assessment": _dash_ra,
    "police_concern": _police,
    "support_referral": _support,
    "caledonian_partner_contact": _caledonian,
}
