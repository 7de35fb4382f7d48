"""Retention from the ISA's event, legal holds and erasure on request (issue 18 point 5).

The ISA's rule (how long, from which event) decides when a payload is shredded: from receipt,
or from the case closure or last activity the case system reports. A legal hold suspends every
shredding, checked in the shredding transaction itself. Erasure on request shreds at once,
never under a hold. Every shredding is audited. All data is synthetic.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.audit import AuditLog
from agent.errors import LegalHold, NotFound
from agent.retention import Retention, add_period, counted_from
from agent.runtime import load_registry
from agent.store import InboxItem, PayloadPurged, SqliteStore, Store
from federation.isa import IsaRegistry, Retain
from federation.keys import SigningKey
from tests.unit.agent.conftest import header

POLICIES = Path(__file__).resolve().parents[3] / "policies"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
PAYLOAD = b'{"synthetic": true}'
#: police-to-assist: P3Y from case_closed; womens-aid-to-police: P6Y from last_activity
TO_ASSIST = {"from": "police-scotland", "to": "assist", "type": "police_concern",
             "purpose": "advocacy_after_charge", "risk": "high",
             "isa": {"id": "isa-police-assist-advocacy", "version": "1.0.0"}}  # fmt: skip


@pytest.fixture(scope="module")
def registry() -> IsaRegistry:
    return load_registry(POLICIES)


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, AuditLog]]:
    audit = AuditLog(
        tmp_path, agency="assist", signing_key=SigningKey(bytes(32)),
        subject_secret=bytes(32), clock=lambda: T0,
    )  # fmt: skip
    async with SqliteStore(tmp_path) as store, audit:
        yield store, audit


async def _receive(store: Store, envelope_id: str, at: datetime = T0) -> None:
    await store.accept_incoming(envelope_id=envelope_id, sender="police-scotland",
                                header=TO_ASSIST, payload=PAYLOAD, now=at)  # fmt: skip


async def _item(store: Store, envelope_id: str) -> InboxItem:
    [item] = [i for i in await store.inbox_page(0, 100) if i.id == envelope_id]
    return item


class TestStoreHoldsAndCaseEvents:
    """Both stores (the contract): the ``store`` fixture is the SQLite store and the fake."""

    async def test_a_held_payload_cannot_be_erased_and_stays_readable(self, store: Store) -> None:
        """erase_inbox_payload under a hold: LegalHold, and nothing changed."""
        await _receive(store, "e-1")
        assert await store.set_legal_hold("e-1", True, T0) is True
        with pytest.raises(LegalHold):
            await store.erase_inbox_payload("e-1", T0)
        assert await store.read_inbox_payload("e-1") == PAYLOAD
        assert (await _item(store, "e-1")).held

    async def test_released_it_is_erased_once(self, store: Store) -> None:
        """After the release: True (shredded now), then False (already)."""
        await _receive(store, "e-1")
        await store.set_legal_hold("e-1", True, T0)
        assert await store.set_legal_hold("e-1", False, T0) is True
        assert await store.set_legal_hold("e-1", False, T0) is False
        assert await store.erase_inbox_payload("e-1", T0) is True
        assert await store.erase_inbox_payload("e-1", T0) is False
        with pytest.raises(PayloadPurged):
            await store.read_inbox_payload("e-1")

    async def test_case_events_keep_the_latest_time(self, store: Store) -> None:
        """A closure and activities reported on a delivery: the latest of each is kept."""
        await _receive(store, "e-1")
        await store.record_case_event("e-1", "activity", T0 + timedelta(days=1))
        await store.record_case_event("e-1", "activity", T0 + timedelta(days=5))
        await store.record_case_event("e-1", "case_closed", T0 + timedelta(days=9))
        item = await _item(store, "e-1")
        assert (item.last_activity_at, item.case_closed_at, item.held) == (
            T0 + timedelta(days=5), T0 + timedelta(days=9), False
        )  # fmt: skip

    async def test_unknown_deliveries_are_not_found(self, store: Store) -> None:
        """Every call about a delivery that is not there: NotFound."""
        with pytest.raises(NotFound):
            await store.set_legal_hold("nope", True, T0)
        with pytest.raises(NotFound):
            await store.record_case_event("nope", "case_closed", T0)
        with pytest.raises(NotFound):
            await store.erase_inbox_payload("nope", T0)

    async def test_the_bulk_purge_passes_over_a_held_payload(self, store: Store) -> None:
        """purge_received_before shreds the old ones, not one under hold."""
        await _receive(store, "e-1", T0)
        await _receive(store, "e-2", T0)
        await store.set_legal_hold("e-2", True, T0)
        assert await store.purge_received_before(T0 + timedelta(days=1), T0) == ["e-1"]
        assert await store.read_inbox_payload("e-2") == PAYLOAD

    async def test_a_delivery_of_a_release_without_holds_is_not_held(self, store: Store) -> None:
        """No row of retention facts: not held, nothing reported (what migration 2 means for
        the deliveries already stored)."""
        await store.accept_incoming(envelope_id="e-9", sender="syn-police", header=header("e-9"),
                                    payload=PAYLOAD, now=T0)  # fmt: skip
        item = await _item(store, "e-9")
        assert (item.held, item.case_closed_at, item.last_activity_at) == (False, None, None)


class TestCountedFrom:
    def _item(self, **facts: datetime) -> InboxItem:
        return InboxItem(cursor=1, id="e-1", sender="s", header={}, received_at=T0,
                         acked_at=None, purged=False, **facts)  # fmt: skip

    @pytest.mark.parametrize(
        ("start", "facts", "expected"),
        [
            ("received", {"case_closed_at": T0 + timedelta(days=9)}, T0),
            ("case_closed", {}, T0),
            ("case_closed", {"case_closed_at": T0 + timedelta(days=9)}, T0 + timedelta(days=9)),
            ("last_activity", {"case_closed_at": T0 + timedelta(days=9)}, T0),
            ("last_activity", {"last_activity_at": T0 + timedelta(days=4)},
             T0 + timedelta(days=4)),
            ("case_closed", {"case_closed_at": T0 - timedelta(days=1)}, T0),
        ],
    )  # fmt: skip
    def test_the_period_starts_at_the_event_the_isa_names(
        self, start: str, facts: dict[str, datetime], expected: datetime
    ) -> None:
        """From the reported event the ISA names; from receipt until it is reported (or when
        it reports a time before receipt)."""
        retain = Retain.model_validate({"period": "P1Y", "from": start})
        assert counted_from(self._item(**facts), retain)[0] == expected


class TestRetentionFromTheIsa:
    async def test_a_reported_case_closure_starts_the_period(
        self, parts: tuple[SqliteStore, AuditLog], registry: IsaRegistry
    ) -> None:
        """police-to-ASSIST keeps 3 years from case closure: closed a year after receipt, the
        payload stays at receipt + 3 years and goes at closure + 3 years, audited as such."""
        store, audit = parts
        await _receive(store, "env-1")
        closed = T0 + timedelta(days=365)
        await store.record_case_event("env-1", "case_closed", closed)
        retention = Retention(store, audit, registry, agency="assist")
        assert (await retention.run(add_period(T0, "P3Y") + timedelta(days=1))).inbox_purged == []
        assert await store.read_inbox_payload("env-1") == PAYLOAD
        report = await retention.run(add_period(closed, "P3Y"))
        assert report.inbox_purged == ["env-1"]
        [purge] = [e for e in await audit.entries() if e.action == "purge"]
        assert "counted from the case closure reported at 2027-03-01T09:00:00Z" in purge.detail
        assert (purge.outcome, purge.actor_id) == ("payload_shredded", "system:agent")

    async def test_without_a_report_the_period_counts_from_receipt(
        self, parts: tuple[SqliteStore, AuditLog], registry: IsaRegistry
    ) -> None:
        """Nothing reported: receipt + 3 years (never later than the ISA allows)."""
        store, audit = parts
        await _receive(store, "env-1")
        retention = Retention(store, audit, registry, agency="assist")
        assert (await retention.run(add_period(T0, "P3Y"))).inbox_purged == ["env-1"]
        [purge] = [e for e in await audit.entries() if e.action == "purge"]
        assert purge.detail.endswith("(counted from receipt)")


class TestLegalHoldInRetention:
    async def test_a_held_payload_outlives_its_retention_until_released(
        self, parts: tuple[SqliteStore, AuditLog], registry: IsaRegistry
    ) -> None:
        """Held: years overdue and still readable, not audited as purged; released: the next
        pass shreds it (the held delivery kept the scan's floor below it)."""
        store, audit = parts
        await _receive(store, "env-1")
        await _receive(store, "env-2")
        await store.set_legal_hold("env-1", True, T0)
        retention = Retention(store, audit, registry, agency="assist")
        overdue = add_period(T0, "P5Y")
        assert (await retention.run(overdue)).inbox_purged == ["env-2"]
        assert await store.read_inbox_payload("env-1") == PAYLOAD
        await store.set_legal_hold("env-1", False, overdue)
        assert (await retention.run(overdue + timedelta(days=1))).inbox_purged == ["env-1"]
        purged = [e.message_id for e in await audit.entries() if e.action == "purge"]
        assert purged == ["env-2", "env-1"]
