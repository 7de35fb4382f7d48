"""Specification of agent.retention: each ISA's retention enforced at the right moment under an
injected clock, every purge audited, and a purged payload unreadable."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.audit import AuditLog
from agent.retention import Retention, add_period
from agent.runtime import load_registry
from agent.store import InboxItem, PayloadPurged, SqliteStore
from federation.isa import IsaRegistry
from federation.keys import SigningKey

POLICIES = Path(__file__).resolve().parents[3] / "policies"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
HEADER = {
    "from": "police-scotland",
    "to": "assist",
    "type": "police_concern",
    "purpose": "advocacy_after_charge",
    "risk": "high",
    "isa": {"id": "isa-police-assist-advocacy", "version": "1.0.0"},
}


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


async def _receive(store: SqliteStore, envelope_id: str, at: datetime, **header: object) -> None:
    await store.accept_incoming(
        envelope_id=envelope_id, sender="police-scotland", header={**HEADER, **header},
        payload=b'{"synthetic": true}', now=at,
    )  # fmt: skip


class TestAddPeriod:
    @pytest.mark.parametrize(
        ("period", "expected"),
        [
            ("P3Y", datetime(2029, 3, 1, 9, 0, tzinfo=UTC)),
            ("P1M", datetime(2026, 4, 1, 9, 0, tzinfo=UTC)),
            ("P2W", datetime(2026, 3, 15, 9, 0, tzinfo=UTC)),
            ("P1Y2M3D", datetime(2027, 5, 4, 9, 0, tzinfo=UTC)),
        ],
    )
    def test_calendar_periods(self, period: str, expected: datetime) -> None:
        """Years and months are calendar ones; weeks and days are exact."""
        assert add_period(T0, period) == expected

    def test_month_end_is_clamped(self) -> None:
        """31 January plus one month is the last day of February."""
        assert add_period(datetime(2026, 1, 31, tzinfo=UTC), "P1M") == datetime(
            2026, 2, 28, tzinfo=UTC
        )

    def test_not_a_period_is_refused(self) -> None:
        """Anything but PnYnMnWnD is a ValueError."""
        with pytest.raises(ValueError, match="ISO 8601"):
            add_period(T0, "3 years")


class TestInboxRetention:
    async def test_payload_kept_until_the_isa_period_ends(
        self, parts: tuple[SqliteStore, AuditLog], registry: IsaRegistry
    ) -> None:
        """The police-to-ASSIST ISA keeps 3 years from receipt: one second before, nothing."""
        store, audit = parts
        await _receive(store, "env-1", T0)
        retention = Retention(store, audit, registry, agency="assist")
        report = await retention.run(add_period(T0, "P3Y") - timedelta(seconds=1))
        assert report.inbox_purged == []
        assert await store.read_inbox_payload("env-1") == b'{"synthetic": true}'

    async def test_payload_shredded_when_the_period_ends(
        self, parts: tuple[SqliteStore, AuditLog], registry: IsaRegistry
    ) -> None:
        """At exactly three years the payload is shredded and cannot be read again."""
        store, audit = parts
        await _receive(store, "env-1", T0)
        await _receive(store, "env-2", T0 + timedelta(days=10))
        retention = Retention(store, audit, registry, agency="assist")
        report = await retention.run(add_period(T0, "P3Y"))
        assert report.inbox_purged == ["env-1"]
        with pytest.raises(PayloadPurged):
            await store.read_inbox_payload("env-1")
        assert await store.read_inbox_payload("env-2") == b'{"synthetic": true}'

    async def test_each_purge_is_an_audit_entry(
        self, parts: tuple[SqliteStore, AuditLog], registry: IsaRegistry
    ) -> None:
        """The shredding is recorded with the message, its ISA and the reason."""
        store, audit = parts
        await _receive(store, "env-1", T0)
        await Retention(store, audit, registry, agency="assist").run(add_period(T0, "P3Y"))
        purges = [e for e in await audit.entries() if e.action == "purge"]
        assert [(e.message_id, e.outcome, e.isa_id) for e in purges] == [
            ("env-1", "payload_shredded", "isa-police-assist-advocacy")
        ]

    async def test_a_second_pass_purges_nothing_new(
        self, parts: tuple[SqliteStore, AuditLog], registry: IsaRegistry
    ) -> None:
        """Retention is idempotent: an already-shredded payload is not purged or audited again."""
        store, audit = parts
        await _receive(store, "env-1", T0)
        retention = Retention(store, audit, registry, agency="assist")
        await retention.run(add_period(T0, "P3Y"))
        again = await retention.run(add_period(T0, "P4Y"))
        assert again.inbox_purged == []
        assert len([e for e in await audit.entries() if e.action == "purge"]) == 1

    async def test_a_flow_without_retention_keeps_its_payload(
        self, parts: tuple[SqliteStore, AuditLog], registry: IsaRegistry
    ) -> None:
        """A delivery no flow matches has no obligation to enforce (unless a default is set)."""
        store, audit = parts
        await _receive(store, "env-1", T0, purpose="no_such_purpose")
        kept = await Retention(store, audit, registry, agency="assist").run(
            T0 + timedelta(days=9999)
        )
        assert kept.inbox_purged == []
        shredded = await Retention(
            store, audit, registry, agency="assist", default_period="P1Y"
        ).run(T0 + timedelta(days=366))
        assert shredded.inbox_purged == ["env-1"]


class TestAuditRetention:
    async def test_old_audit_entries_go_and_verify_still_passes(
        self, parts: tuple[SqliteStore, AuditLog], registry: IsaRegistry
    ) -> None:
        """Entries older than audit_keep are removed behind a signed anchor; verify holds."""
        store, audit = parts
        await _receive(store, "env-1", T0)
        await Retention(store, audit, registry, agency="assist").run(add_period(T0, "P3Y"))
        later = add_period(T0, "P9Y")
        report = await Retention(
            store, audit, registry, agency="assist", audit_keep=timedelta(days=365)
        ).run(later)
        assert report.audit_removed == 1
        assert await audit.verify() is None
        assert [e.outcome for e in await audit.entries()] == ["audit_entries_removed"]


class CountingStore:
    """The real store, noting where each inbox scan started."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.scans: list[int] = []

    async def inbox_page(
        self, after_cursor: int, limit: int, *, unacked_only: bool = False
    ) -> Sequence[InboxItem]:
        self.scans.append(after_cursor)
        return await self.store.inbox_page(after_cursor, limit, unacked_only=unacked_only)

    async def erase_inbox_payload(self, message_id: str, now: datetime) -> bool:
        return await self.store.erase_inbox_payload(message_id, now)

    async def purge_delivered_frames(self, now: datetime, limit: int = 64) -> Sequence[str]:
        return await self.store.purge_delivered_frames(now, limit)


class TestCheapPasses:
    async def test_a_pass_resumes_above_the_settled_floor(
        self, parts: tuple[SqliteStore, AuditLog], registry: IsaRegistry
    ) -> None:
        """Once the first two deliveries are shredded, the next pass starts after them."""
        store, audit = parts
        for n in range(3):
            await _receive(store, f"env-{n}", T0 + timedelta(days=400 * n))
        counting = CountingStore(store)
        retention = Retention(counting, audit, registry, agency="assist")
        first = await retention.run(add_period(T0 + timedelta(days=400), "P3Y"))
        assert first.inbox_purged == ["env-0", "env-1"]
        await retention.run(add_period(T0 + timedelta(days=400), "P3Y") + timedelta(days=1))
        assert counting.scans == [0, 2]
