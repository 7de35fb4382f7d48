"""parse_payload: strict, path-naming errors; full versus minimised payloads; payload_dict."""

from __future__ import annotations

import json
import random
from datetime import date
from typing import Any

import pydantic
import pytest

from federation.errors import PayloadInvalid
from federation.referrals import (
    MESSAGE_TYPES,
    REQUIRED_ON_SUBMIT,
    PracticeConsent,
    catalogue,
    parse_payload,
    payload_dict,
)
from federation.synth import generate_referral

ALL_TYPES = sorted(MESSAGE_TYPES)
GENERALISED = {"age_band": "25-34", "postcode_district": "QX1", "year": 2026}


def full(message_type: str, level: str = "high") -> dict[str, Any]:
    """A complete synthetic payload of ``message_type``."""
    return generate_referral(message_type, random.Random(11), level)  # type: ignore[arg-type]


def nest(path: str, value: Any) -> dict[str, Any]:
    """``{"a": [{"b": value}]}`` for the catalogue path ``a[].b``."""
    head, _, rest = path.partition(".")
    inner = nest(rest, value) if rest else value
    if head.endswith("[]"):
        return {head[:-2]: [inner]}
    return {head: inner}


def errors_of(message_type: str, payload: Any, *, minimised: bool = False) -> dict[str, str]:
    with pytest.raises(PayloadInvalid) as caught:
        parse_payload(message_type, payload, minimised=minimised)
    return caught.value.errors


class TestAcceptance:
    @pytest.mark.parametrize("message_type", ALL_TYPES)
    def test_a_complete_payload_parses(self, message_type: str) -> None:
        """A full synthetic payload parses as its type."""
        referral = parse_payload(message_type, full(message_type))
        assert type(referral) is MESSAGE_TYPES[message_type]
        assert referral.synthetic is True

    @pytest.mark.parametrize("message_type", ALL_TYPES)
    def test_bytes_and_mapping_give_the_same_referral(self, message_type: str) -> None:
        """JSON bytes and the dict json.loads makes of them parse alike."""
        payload = full(message_type)
        as_bytes = json.dumps(payload).encode()
        assert parse_payload(message_type, as_bytes) == parse_payload(message_type, payload)

    @pytest.mark.parametrize("message_type", ALL_TYPES)
    def test_payload_dict_round_trips(self, message_type: str) -> None:
        """parse(payload_dict(r)) == r and payload_dict drops nothing that was sent."""
        payload = full(message_type)
        referral = parse_payload(message_type, payload)
        assert parse_payload(message_type, payload_dict(referral)) == referral
        assert payload_dict(referral) == json.loads(json.dumps(payload))

    def test_python_dates_in_a_mapping_are_accepted(self) -> None:
        """A dict holding date objects is read as their ISO form."""
        payload = {**full("support_referral"), "referral_date": date(2026, 3, 1)}
        referral = parse_payload("support_referral", payload)
        assert referral.referral_date == date(2026, 3, 1)  # type: ignore[attr-defined]

    def test_only_synthetic_is_required_when_minimised(self) -> None:
        """A recipient's copy may have every other field withheld."""
        referral = parse_payload("marac_referral", {"synthetic": False}, minimised=True)
        assert referral.synthetic is False

    def test_models_are_frozen(self) -> None:
        """A parsed referral cannot be changed."""
        referral = parse_payload("police_concern", full("police_concern"))
        with pytest.raises(pydantic.ValidationError):
            referral.synthetic = False  # type: ignore[misc]


class TestRejection:
    def test_unknown_type(self) -> None:
        """An unknown message type is PayloadInvalid, not a KeyError."""
        assert errors_of("parking_ticket", {"synthetic": True}) == {"type": "unknown type"}

    @pytest.mark.parametrize(
        ("extra", "path"),
        [
            ({"nickname": "x"}, "nickname"),
            ({"victim": {"nickname": "x"}}, "victim.nickname"),
            ({"perpetrators": [{"name": "x"}, {"nickname": "x"}]}, "perpetrators[1].nickname"),
            ({"dash": {"q25": {"answer": "yes"}}}, "dash.q25"),
        ],
    )
    def test_unknown_fields_are_named(self, extra: dict[str, Any], path: str) -> None:
        """extra=forbid everywhere, and the error names where."""
        assert errors_of("marac_referral", {"synthetic": True, **extra}, minimised=True) == {
            path: "unknown field"
        }

    @pytest.mark.parametrize(
        ("payload", "path"),
        [
            ({"synthetic": "true"}, "synthetic"),
            ({"synthetic": 1}, "synthetic"),
            (
                {"synthetic": True, "police_incidents_last_12_months": "3"},
                "police_incidents_last_12_months",
            ),
            ({"synthetic": True, "victim": {"pregnant": "no"}}, "victim.pregnant"),
            ({"synthetic": True, "children": [{"date_of_birth": "2026-13-01"}]},
             "children[0].date_of_birth"),
            ({"synthetic": True, "consent": {"agreement": "maybe"}}, "consent.agreement"),
        ],
    )
    def test_wrong_types_are_named(self, payload: dict[str, Any], path: str) -> None:
        """Strict: no string-to-bool or string-to-int coercion."""
        assert set(errors_of("marac_referral", payload, minimised=True)) == {path}

    def test_missing_synthetic_is_an_error(self) -> None:
        """Even a minimised payload says whether it is synthetic."""
        assert set(errors_of("support_referral", {}, minimised=True)) == {"synthetic"}

    @pytest.mark.parametrize("payload", [b"{not json", b"[]", b'"x"'])
    def test_malformed_json_is_payload_invalid(self, payload: bytes) -> None:
        """Bytes that are not a JSON object are a payload error."""
        assert set(errors_of("police_concern", payload)) == {"payload"}

    def test_a_value_json_cannot_carry(self) -> None:
        """A mapping holding a set is refused cleanly."""
        assert set(errors_of("police_concern", {"synthetic": {1}})) == {"payload"}

    def test_errors_never_echo_values(self) -> None:
        """Messages name fields, never the personal data that was sent."""
        errors = errors_of("marac_referral", {"synthetic": True, "victim": {"name": 12345678}})
        assert "12345678" not in json.dumps(errors)


class TestRequiredOnSubmit:
    @pytest.mark.parametrize("message_type", ALL_TYPES)
    def test_required_paths_are_in_the_catalogue(self, message_type: str) -> None:
        """Each required path is a leaf or the list that holds leaves."""
        paths = catalogue(message_type)
        for required in REQUIRED_ON_SUBMIT[message_type]:
            assert required in paths or any(p.startswith(required + "[]") for p in paths)

    @pytest.mark.parametrize("message_type", ALL_TYPES)
    def test_a_bare_payload_lists_every_missing_path(self, message_type: str) -> None:
        """A full submit of only ``synthetic`` names every required path."""
        errors = errors_of(message_type, {"synthetic": True})
        expected = {p for p in REQUIRED_ON_SUBMIT[message_type] if "[]" not in p}
        assert set(errors) == expected

    def test_each_list_element_is_checked(self) -> None:
        """A second perpetrator without a name is named by index."""
        payload = full("marac_referral")
        payload["perpetrators"] = [*payload["perpetrators"], {"relationship_to_victim": "other"}]
        assert errors_of("marac_referral", payload) == {
            "perpetrators[1].name": "required when submitting"
        }

    def test_agreement_not_sought_needs_a_reason(self) -> None:
        """Practice consent not sought must say why."""
        payload = full("support_referral")
        payload["consent"] = {"victim_aware": "no", "agreement": "not_sought"}
        assert set(errors_of("support_referral", payload)) == {"consent.reason_not_sought"}


class TestGeneralisedValues:
    @pytest.mark.parametrize(
        ("message_type", "path", "transform"),
        [
            (t, path, transform)
            for t in ALL_TYPES
            for path, info in catalogue(t).items()
            for transform in sorted(info.transforms)
        ],
    )
    def test_minimised_payload_accepts_the_generalised_form(
        self, message_type: str, path: str, transform: str
    ) -> None:
        """Every catalogued transform's output parses with minimised=True."""
        payload = {"synthetic": True, **nest(path, GENERALISED[transform])}
        parse_payload(message_type, payload, minimised=True)

    @pytest.mark.parametrize(
        ("message_type", "path", "transform"),
        [
            (t, path, transform)
            for t in ALL_TYPES
            for path, info in catalogue(t).items()
            for transform in sorted(info.transforms)
            if transform != "postcode_district" or path.endswith("postcode")
        ],
    )
    def test_full_payload_refuses_the_generalised_form(
        self, message_type: str, path: str, transform: str
    ) -> None:
        """Where the type differs, a sender's full payload must carry the real value."""
        payload = full(message_type) | nest(path, GENERALISED[transform])
        errors = errors_of(message_type, payload)
        found = [k for k in errors if k.replace("[0]", "[]") == path]
        assert found
        assert "minimised" in errors[found[0]]

    @pytest.mark.parametrize("band", ["20-30", "65-", "adult"])
    def test_an_invented_age_band_is_refused_even_minimised(self, band: str) -> None:
        """Only the eight standard bands are age bands."""
        payload = {"synthetic": True, "victim": {"date_of_birth": band}}
        assert "victim.date_of_birth" in errors_of("marac_referral", payload, minimised=True)

    def test_a_malformed_postcode_is_refused_even_minimised(self) -> None:
        """A postcode is a full postcode or, when minimised, a district."""
        payload = {"synthetic": True, "victim": {"postcode": "nowhere"}}
        assert "victim.postcode" in errors_of("marac_referral", payload, minimised=True)


class TestRiskAndConsent:
    @pytest.mark.parametrize("message_type", ALL_TYPES)
    @pytest.mark.parametrize("level", ["standard", "medium", "high"])
    def test_risk_level_comes_from_the_content(self, message_type: str, level: str) -> None:
        """Each type derives its risk level from its own assessment."""
        assert parse_payload(message_type, full(message_type, level)).risk_level == level

    @pytest.mark.parametrize("message_type", ALL_TYPES)
    def test_consent_is_the_practice_consent(self, message_type: str) -> None:
        """Every type exposes its practice consent model."""
        assert isinstance(parse_payload(message_type, full(message_type)).consent, PracticeConsent)

    @pytest.mark.parametrize(
        ("message_type", "payload"),
        [
            ("police_concern", {"risk_assessment": {"level": "medium"}}),
            ("support_referral", {"risk": {"level": "medium"}}),
            ("caledonian_partner_contact", {"assessed_risk": {"level": "medium"}}),
            ("marac_referral", {"dash": {"score": 11}}),
        ],
    )
    def test_each_type_reads_its_own_risk_field(
        self, message_type: str, payload: dict[str, Any]
    ) -> None:
        """Police: risk_assessment.level; support: risk.level; Caledonian: assessed_risk."""
        referral = parse_payload(message_type, {"synthetic": True, **payload}, minimised=True)
        assert referral.risk_level == "medium"


class TestMaracCriteria:
    def test_visible_high_risk_must_match_the_score(self) -> None:
        """Claiming 14+ on a medium DASH names the criterion."""
        payload = full("marac_referral", "medium")
        payload["criteria"] = {**payload["criteria"], "visible_high_risk": True}
        assert set(errors_of("marac_referral", payload)) == {"criteria.visible_high_risk"}

    def test_potential_escalation_must_match_the_incidents(self) -> None:
        """Potential escalation needs 3 or more incidents."""
        payload = {
            "synthetic": True,
            "police_incidents_last_12_months": 1,
            "criteria": {"potential_escalation": True},
        }
        errors = errors_of("marac_referral", payload, minimised=True)
        assert set(errors) == {"criteria.potential_escalation"}

    def test_criteria_alone_survive_minimisation(self) -> None:
        """With the DASH withheld, the stated criterion cannot be checked and is kept."""
        payload = {"synthetic": True, "criteria": {"visible_high_risk": True}}
        referral = parse_payload("marac_referral", payload, minimised=True)
        assert referral.criteria.visible_high_risk is True  # type: ignore[attr-defined]
