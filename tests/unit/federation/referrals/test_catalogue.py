"""The field catalogue: complete, exact, and labelled the way the ISA engine relies on."""

from __future__ import annotations

import pytest

from federation.errors import PayloadInvalid
from federation.referrals import (
    MESSAGE_TYPES,
    TRANSFORMS,
    DataClass,
    SubjectRole,
    catalogue,
    leaf_fields,
)

ALL_TYPES = sorted(MESSAGE_TYPES)


class TestCompleteness:
    @pytest.mark.parametrize("message_type", ALL_TYPES)
    def test_every_leaf_field_has_an_entry(self, message_type: str) -> None:
        """Walking the model finds no leaf the catalogue lacks."""
        leaves = set(leaf_fields(MESSAGE_TYPES[message_type]))
        assert leaves - set(catalogue(message_type)) == set()

    @pytest.mark.parametrize("message_type", ALL_TYPES)
    def test_no_entry_names_a_path_the_model_lacks(self, message_type: str) -> None:
        """The catalogue invents no paths."""
        leaves = set(leaf_fields(MESSAGE_TYPES[message_type]))
        assert set(catalogue(message_type)) - leaves == set()

    @pytest.mark.parametrize("message_type", ALL_TYPES)
    def test_entries_know_their_own_path(self, message_type: str) -> None:
        """Each FieldInfo's path is the key it is filed under."""
        assert all(info.path == path for path, info in catalogue(message_type).items())

    @pytest.mark.parametrize("message_type", ALL_TYPES)
    def test_every_entry_has_a_description(self, message_type: str) -> None:
        """``policy explain`` can describe every field."""
        assert all(info.description for info in catalogue(message_type).values())

    def test_the_five_types_are_named_exactly(self) -> None:
        """The message type names are part of the contract."""
        assert ALL_TYPES == [
            "caledonian_partner_contact",
            "dash_risk_assessment",
            "marac_referral",
            "police_concern",
            "support_referral",
        ]

    def test_unknown_type_is_payload_invalid(self) -> None:
        """Asking for the catalogue of a type that does not exist is a clear error."""
        with pytest.raises(PayloadInvalid, match="unknown message type"):
            catalogue("parking_ticket")


class TestLabels:
    def test_dash_q15_is_dual_subject(self) -> None:
        """Strangulation is health data about the victim and offence data about the abuser."""
        info = catalogue("marac_referral")["dash.q15.answer"]
        assert {SubjectRole.VICTIM, SubjectRole.PERPETRATOR} <= info.subject_roles
        assert {DataClass.SPECIAL_CATEGORY, DataClass.CRIMINAL_OFFENCE} <= info.data_classes

    @pytest.mark.parametrize(
        ("message_type", "path"),
        [("marac_referral", "victim.refuge_address"), ("support_referral", "refuge_location")],
    )
    def test_refuge_address_is_never_share(self, message_type: str, path: str) -> None:
        """No flow may ever release where a refuge is."""
        assert "never_share" in catalogue(message_type)[path].handling

    @pytest.mark.parametrize(
        ("message_type", "prefix"),
        [
            ("marac_referral", "victim.safe_contact."),
            ("police_concern", "victim_safe_contact."),
            ("support_referral", "safe_contact."),
            ("caledonian_partner_contact", "partner.safe_contact."),
        ],
    )
    def test_safe_contact_must_not_reach_the_perpetrator(
        self, message_type: str, prefix: str
    ) -> None:
        """Every victim safe-contact field carries must_not_disclose_to:perpetrator."""
        fields = [i for p, i in catalogue(message_type).items() if p.startswith(prefix)]
        assert len(fields) == 5
        assert all("must_not_disclose_to:perpetrator" in i.handling for i in fields)

    @pytest.mark.parametrize(
        ("message_type", "path"),
        [
            ("marac_referral", "perpetrators[].criminal_history"),
            ("police_concern", "perpetrators[].criminal_history"),
            ("support_referral", "perpetrator.criminal_history"),
            ("caledonian_partner_contact", "man.convictions"),
        ],
    )
    def test_perpetrator_criminal_history_is_originator_control(
        self, message_type: str, path: str
    ) -> None:
        """Criminal history may not be passed on without the originator's agreement."""
        info = catalogue(message_type)[path]
        assert "originator_control" in info.handling
        assert DataClass.CRIMINAL_OFFENCE in info.data_classes

    def test_children_fields_are_child_data(self) -> None:
        """A child's name is labelled with the child role and the child data class."""
        info = catalogue("marac_referral")["children[].name"]
        assert info.subject_roles == frozenset({SubjectRole.CHILD})
        assert DataClass.CHILD in info.data_classes

    def test_ethnicity_is_special_category(self) -> None:
        """Racial or ethnic origin is Art 9 data."""
        info = catalogue("support_referral")["client.ethnicity"]
        assert DataClass.SPECIAL_CATEGORY in info.data_classes


class TestTransforms:
    @pytest.mark.parametrize(
        ("path", "transform"),
        [
            ("victim.date_of_birth", "age_band"),
            ("children[].date_of_birth", "age_band"),
            ("victim.postcode", "postcode_district"),
            ("victim.address", "postcode_district"),
            ("referral_date", "year"),
            ("dash.assessed_at", "year"),
        ],
    )
    def test_generalisable_fields_name_their_transform(self, path: str, transform: str) -> None:
        """Dates of birth band, addresses give a district, dates give a year."""
        assert catalogue("marac_referral")[path].transforms == frozenset({transform})

    def test_a_free_text_field_has_no_transform(self) -> None:
        """Only keep or drop apply to a name."""
        assert catalogue("marac_referral")["victim.name"].transforms == frozenset()

    @pytest.mark.parametrize("message_type", ALL_TYPES)
    def test_transforms_come_from_the_vocabulary(self, message_type: str) -> None:
        """Every listed transform is one the minimiser knows."""
        used = {t for i in catalogue(message_type).values() for t in i.transforms}
        assert used <= set(TRANSFORMS) - {"keep", "drop"}
