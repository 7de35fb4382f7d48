"""Specification of ManifestAuditor: each manifest change the trust holder applies is audited."""

from __future__ import annotations

from datetime import datetime

from agent.audit import AuditEvent, ManifestAuditor
from tests.unit.federation.helpers import NOW, Federation

FED = Federation()


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[tuple[AuditEvent, datetime]] = []

    async def record(self, event: AuditEvent, at: datetime) -> None:
        self.events.append((event, at))


class TestManifestAuditor:
    async def test_first_and_later_manifests_are_recorded_with_their_changes(self) -> None:
        """The first manifest is 'initial'; a newer one records the diff (serial 5 -> 6)."""
        sink = RecordingSink()
        auditor = ManifestAuditor(sink, lambda: NOW)
        first, second = FED.manifest(FED.document(serial=5)), FED.manifest(FED.document(serial=6))
        auditor(None, first)
        auditor(first, second)
        await auditor.drain()
        assert [(e.action, e.outcome) for e, _ in sink.events] == [
            ("manifest_change", "serial 5"),
            ("manifest_change", "serial 6"),
        ]
        assert sink.events[0][0].detail == "initial manifest"
        assert "serial 5 -> 6" in sink.events[1][0].detail
        assert all(at == NOW for _, at in sink.events)
