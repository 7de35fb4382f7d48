"""``federation.isa_entries``: which version of an ISA governs, which a receiver accepts, and
which documents a manifest may carry (issue 15.5). Every time is fixed (``NOW``)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from federation.canonical import b64url_encode, format_time
from federation.errors import EnvelopeRejected, ManifestRejected
from federation.isa_entries import (
    IsaEntry,
    check_versions,
    cited_entry,
    in_force,
    load_documents,
    registry_at,
    semver,
)
from tests.unit.federation.isa_versions import (
    ACCEPT_UNTIL,
    NOW,
    RECIPIENT,
    SENDER,
    SWITCH,
    V1,
    V2,
    entry,
)

REPO = Path(__file__).resolve().parents[3]
OLD, NEW = entry(V1, superseded=SWITCH), entry(V2)
NEWEST = IsaEntry(**(NEW.model_dump() | {"version": "1.2.0"}))  # only the version is read
CHAIN = [OLD, NEW]
AGENCIES = [SENDER, RECIPIENT]


def refusal(version: str, sha256: str, *, sealed: timedelta, arrives: timedelta) -> str:
    with pytest.raises(EnvelopeRejected) as refused:
        cited_entry(CHAIN, version, sha256, sealed_at=NOW + sealed, now=NOW + arrives)
    return refused.value.reason


class TestVersionInForce:
    def test_the_replaced_version_governs_until_the_switch(self) -> None:
        """Before ``superseded_at`` a sender seals under 1.0.0, from it under 1.1.0."""
        assert in_force(CHAIN, SWITCH - timedelta(seconds=1)) == OLD
        assert in_force(CHAIN, SWITCH) == NEW

    def test_a_lone_current_version_is_in_force_at_any_time(self) -> None:
        """A format-1 manifest lists one entry per ISA: that one governs."""
        assert in_force([NEW], NOW - timedelta(days=400)) == NEW

    def test_three_versions_govern_in_turn(self) -> None:
        """1.0.0 until its switch, then 1.1.0 until its own, then 1.2.0."""
        later = SWITCH + timedelta(hours=1)
        chain = [OLD, entry(V2, superseded=later), NEWEST]
        assert [_version_at(chain, t) for t in (NOW, SWITCH, later)] == ["1.0.0", "1.1.0", "1.2.0"]


def _version_at(chain: list[IsaEntry], moment: datetime) -> str | None:
    found = in_force(chain, moment)
    return None if found is None else found.version


class TestCitedVersion:
    def test_the_current_version_is_accepted_whenever_sealed(self) -> None:
        """A message citing 1.1.0 is judged by 1.1.0, before or after the switch."""
        got = cited_entry(CHAIN, "1.1.0", V2.isa.sha256, sealed_at=NOW, now=NOW)
        assert got == NEW

    def test_the_replaced_version_is_accepted_within_its_grace(self) -> None:
        """Sealed under 1.0.0 before the switch, arriving a second before accept_until."""
        got = cited_entry(
            CHAIN, "1.0.0", V1.isa.sha256, sealed_at=SWITCH - timedelta(seconds=1),
            now=ACCEPT_UNTIL - timedelta(seconds=1),
        )  # fmt: skip
        assert got == OLD

    def test_the_replaced_version_arriving_after_its_grace_is_isa_superseded(self) -> None:
        """Sealed in time, but arriving at accept_until: refused with the named reason."""
        assert refusal("1.0.0", V1.isa.sha256, sealed=timedelta(0),
                       arrives=ACCEPT_UNTIL - NOW) == "isa_superseded"  # fmt: skip

    def test_the_replaced_version_sealed_after_the_switch_is_isa_superseded(self) -> None:
        """A sender still sealing under 1.0.0 at the switch is refused, never accepted."""
        assert refusal("1.0.0", V1.isa.sha256, sealed=SWITCH - NOW,
                       arrives=SWITCH - NOW) == "isa_superseded"  # fmt: skip

    def test_a_listed_version_with_other_bytes_is_isa_mismatch(self) -> None:
        """Same version, another sha256: a real disagreement about the text."""
        assert refusal("1.1.0", "0" * 64, sealed=timedelta(0), arrives=timedelta(0)) == (
            "isa_mismatch"
        )

    def test_an_unlisted_older_version_is_isa_superseded(self) -> None:
        """0.9.0 is older than the current 1.1.0: its grace is over (no longer listed)."""
        assert refusal("0.9.0", "1" * 64, sealed=timedelta(0), arrives=timedelta(0)) == (
            "isa_superseded"
        )

    @pytest.mark.parametrize("version", ["1.2.0", "2.0.0", "draft-7"])
    def test_an_unlisted_newer_version_is_isa_version_unknown(self, version: str) -> None:
        """Newer than our current one (or not comparable): our manifest may be behind."""
        assert refusal(version, "1" * 64, sealed=timedelta(0), arrives=timedelta(0)) == (
            "isa_version_unknown"
        )

    def test_the_refusal_detail_names_the_times_not_a_generic_reason(self) -> None:
        """The audit detail says when the version was superseded and until when it counted."""
        with pytest.raises(EnvelopeRejected) as refused:
            cited_entry(CHAIN, "1.0.0", V1.isa.sha256, sealed_at=SWITCH, now=SWITCH)
        assert format_time(SWITCH) in refused.value.detail
        assert format_time(ACCEPT_UNTIL) in refused.value.detail


class TestVersionChecks:
    def test_a_proper_chain_passes(self) -> None:
        """One current version, an older one superseded with a grace window."""
        check_versions(CHAIN)

    @pytest.mark.parametrize(
        ("entries", "reason"),
        [
            ([entry(V1), entry(V2)], "isa_versions"),  # two current
            ([entry(V1, superseded=SWITCH), entry(V2, superseded=SWITCH)], "isa_versions"),
            ([entry(V2, superseded=SWITCH), entry(V1)], "isa_versions"),  # newer superseded
            ([entry(V1), entry(V1)], "duplicate"),
            ([entry(V1, superseded=SWITCH, accept_until=format_time(SWITCH)), entry(V2)],
             "isa_versions"),  # no grace window
        ],
        ids=["two-current", "none-current", "newer-superseded", "same-version-twice",
             "empty-grace"],
    )  # fmt: skip
    def test_an_inconsistent_chain_is_refused(self, entries: list[IsaEntry], reason: str) -> None:
        """Rule 2: anything but one current version and older ones in order is refused."""
        with pytest.raises(ManifestRejected) as refused:
            check_versions(entries)
        assert refused.value.reason == reason

    def test_versions_superseded_out_of_order_are_refused(self) -> None:
        """1.0.0 superseded after 1.1.0 was: the chain cannot say which governed when."""
        first = entry(V1, superseded=SWITCH + timedelta(hours=1))
        chain = [first, entry(V2, superseded=SWITCH), NEWEST]
        with pytest.raises(ManifestRejected) as refused:
            check_versions(chain)
        assert refused.value.reason == "isa_versions"


class TestDocuments:
    def test_each_document_loads_to_the_isa_its_entry_pins(self) -> None:
        """Both versions load, keyed by sha256, each the ISA of its bytes."""
        loaded = load_documents(CHAIN, AGENCIES)
        assert {sha: isa.version for sha, isa in loaded.items()} == {
            V1.isa.sha256: "1.0.0",
            V2.isa.sha256: "1.1.0",
        }

    def test_a_document_that_does_not_hash_to_its_pin_is_refused(self) -> None:
        """One byte changed in the carried YAML: isa_document_mismatch naming the ISA."""
        tampered = V2.data.replace(b"advocacy", b"advocacz", 1)
        bad = entry(V2, document=b64url_encode(tampered))
        with pytest.raises(ManifestRejected) as refused:
            load_documents([OLD, bad], AGENCIES)
        assert refused.value.reason == "isa_document_mismatch"
        assert f"ISA {V2.isa.id} 1.1.0" in refused.value.message

    def test_an_entry_stating_other_parties_than_its_document_is_refused(self) -> None:
        """The entry lists a party the document does not: isa_document_mismatch."""
        bad = entry(V2, parties=[SENDER, RECIPIENT, "syn-council"])
        with pytest.raises(ManifestRejected) as refused:
            load_documents([bad], [*AGENCIES, "syn-council"])
        assert refused.value.reason == "isa_document_mismatch"
        assert "parties" in refused.value.message

    def test_a_document_failing_lint_is_refused(self) -> None:
        """A YAML that hashes right but fails lint: isa_document_invalid with file:line."""
        data = (REPO / "tests/fixtures/isa_defects/unknown_purpose.yaml").read_bytes()
        bad = entry(V2, document=b64url_encode(data), sha256=hashlib.sha256(data).hexdigest())
        with pytest.raises(ManifestRejected) as refused:
            load_documents([bad], AGENCIES)
        assert refused.value.reason == "isa_document_invalid"

    def test_a_document_naming_a_party_the_manifest_lacks_is_refused(self) -> None:
        """The manifest's agencies are what the document is linted against."""
        with pytest.raises(ManifestRejected) as refused:
            load_documents([NEW], [SENDER])
        assert refused.value.reason == "isa_document_invalid"

    def test_the_same_document_is_linted_once(self) -> None:
        """Rule 6: a second manifest carrying the same bytes for the same agencies reuses the
        loaded ISA (a re-signed manifest costs no second lint)."""
        first = load_documents([NEW], AGENCIES)[V2.isa.sha256]
        assert load_documents([NEW], AGENCIES)[V2.isa.sha256] is first
        assert load_documents([NEW], [*AGENCIES, "syn-council"])[V2.isa.sha256] is not first

    def test_entries_without_documents_load_nothing(self) -> None:
        """Format 1: no document, nothing to load (the agent reads its policies_dir)."""
        bare = IsaEntry(**(NEW.model_dump() | {"document": None}))
        assert load_documents([bare], AGENCIES) == {}


class TestRegistryAt:
    def test_the_version_in_force_answers_get_and_the_other_is_held_beside(self) -> None:
        """Before the switch ``get`` is 1.0.0; 1.1.0 is found by its sha256 (a receiver
        judging a message sealed under it)."""
        registry = registry_at(CHAIN, load_documents(CHAIN, AGENCIES), NOW)
        in_force_now, beside = registry.get(V1.isa.id), registry.version(V1.isa.id, V2.isa.sha256)
        assert (in_force_now and in_force_now.version, beside and beside.version) == (
            "1.0.0",
            "1.1.0",
        )
        assert registry.version("another-isa", V2.isa.sha256) is None


class TestSemver:
    @pytest.mark.parametrize(("text", "parsed"), [("1.10.0", (1, 10, 0)), ("1.0", None),
                                                   ("v1.0.0", None)])  # fmt: skip
    def test_only_major_minor_patch_parses(self, text: str, parsed: object) -> None:
        """1.10.0 sorts after 1.9.0; anything else is not comparable."""
        assert semver(text) == parsed
