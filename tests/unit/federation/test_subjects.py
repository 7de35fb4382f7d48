"""Specification of federation.subjects: who a referral is about, as keyed hashes only."""

from __future__ import annotations

import random

import pytest

from federation.subjects import (
    identifier,
    normalise_name,
    person_prefixes,
    search_keys,
    subject_key,
    subject_keys,
)
from federation.synth import generate_referral

SECRET = bytes(range(32))
OTHER_SECRET = bytes(32)


class TestNormalise:
    def test_case_and_whitespace_do_not_matter(self) -> None:
        """Names differing only in case and spacing normalise to the same text."""
        assert normalise_name("  Elowyn\t QUORVEN ") == normalise_name("elowyn quorven")

    def test_identifier_includes_a_full_date_of_birth_only(self) -> None:
        """A YYYY-MM-DD date joins the identifier; an age band does not."""
        assert identifier("A B", "1990-01-02") == "name:a b|dob:1990-01-02"
        assert identifier("A B", "30-39") == "name:a b"


class TestSubjectKeys:
    def test_practitioners_are_not_subjects(self) -> None:
        """The referrer is staff: only victim, perpetrators and children are people of the case."""
        assert person_prefixes("marac_referral") == ("children[].", "perpetrators[].", "victim.")

    def test_every_person_in_a_marac_referral_has_a_key(self) -> None:
        """Victim, each perpetrator and each child yield one key each."""
        payload = generate_referral("marac_referral", random.Random(1))
        people = [payload["victim"], *payload["perpetrators"], *payload["children"]]
        expected = {subject_key(SECRET, identifier(p["name"], p["date_of_birth"])) for p in people}
        assert set(subject_keys(SECRET, "marac_referral", payload)) == expected

    def test_keys_reveal_no_name(self) -> None:
        """A key is 64 hex characters, and the name appears nowhere in it."""
        payload = generate_referral("police_concern", random.Random(2))
        keys = subject_keys(SECRET, "police_concern", payload)
        assert keys
        assert all(len(k) == 64 and int(k, 16) >= 0 for k in keys)
        assert payload["victim"]["name"].lower() not in " ".join(keys)

    def test_the_secret_changes_every_key(self) -> None:
        """Another agency's secret gives unrelated keys (no cross-agency linkage)."""
        payload = generate_referral("support_referral", random.Random(3))
        mine = set(subject_keys(SECRET, "support_referral", payload))
        theirs = set(subject_keys(OTHER_SECRET, "support_referral", payload))
        assert mine
        assert not mine & theirs

    def test_unknown_message_type_has_no_subjects(self) -> None:
        """A type the catalogue does not know yields no keys rather than an error."""
        assert subject_keys(SECRET, "no_such_type", {"victim": {"name": "X"}}) == ()


class TestSearchKeys:
    def test_search_matches_full_and_name_only_forms(self) -> None:
        """A search for name + dob yields the full key and the name-only key."""
        keys = search_keys(SECRET, "Elowyn Quorven", "1960-02-10")
        assert keys.full == subject_key(SECRET, "name:elowyn quorven|dob:1960-02-10")
        assert keys.name_only == subject_key(SECRET, "name:elowyn quorven")

    @pytest.mark.parametrize("dob", ["10/02/1960", "1960-2-10", ""])
    def test_a_malformed_date_is_refused(self, dob: str) -> None:
        """Only YYYY-MM-DD is a date of birth."""
        with pytest.raises(ValueError, match="YYYY-MM-DD"):
            search_keys(SECRET, "A B", dob)
