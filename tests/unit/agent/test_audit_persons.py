"""Audit entries of version 2 name the person accountable; version 1 entries written before
still verify, in the same chain (``federation.audit_chain`` rule 1, ``agent.audit.log`` rule 3).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.actor import Actor
from agent.audit import AuditEvent, AuditLog, Flow, message_event
from federation.audit_chain import GENESIS, AuditEntry, chain_hash, entry_bytes, sign_checkpoint
from federation.keys import SigningKey

KEY = SigningKey(bytes(range(32)))
RELEASE = Path(__file__).resolve().parents[2] / "fixtures" / "release-48272d7"
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
FLOW = Flow(isa_id="SYN-ISA", isa_version="1", purpose="marac", message_type="marac_referral",
            risk="high", lawful_basis={})  # fmt: skip
OFFICER = Actor("SYN-4711", "case_worker", "SYNTHETIC high-risk MARAC referral")


def _log(data_dir: Path) -> AuditLog:
    return AuditLog(data_dir, agency="syn-police", signing_key=KEY, subject_secret=bytes(32),
                    clock=lambda: NOW, checkpoint_on_close=True)  # fmt: skip


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[AuditLog]:
    async with _log(tmp_path) as opened:
        yield opened


def _version_1_log(data_dir: Path) -> None:
    """Three entries as release 48272d7 (before the person was recorded) wrote them, signed."""
    conn = sqlite3.connect(data_dir / "audit.sqlite")
    conn.executescript((RELEASE / "audit_schema.sql").read_text())
    prev = GENESIS
    for seq in (1, 2, 3):
        at = NOW + timedelta(seconds=seq)
        entry = AuditEntry(seq=seq, at=at.strftime("%Y-%m-%dT%H:%M:%SZ"), agency="syn-police",
                           action="submit", actor="case-system", message_id=f"m-{seq}")  # fmt: skip
        data = entry_bytes(entry)
        assert b"actor_id" not in data
        prev = chain_hash(prev, data)
        us = int((at - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1_000_000)
        conn.execute(
            "INSERT INTO entries VALUES (?, ?, ?, ?, ?)", (seq, us, f"m-{seq}", data, prev)
        )
    checkpoint = sign_checkpoint(KEY, agency="syn-police", seq=3, entry_hash=prev, at=NOW)
    conn.execute("INSERT INTO checkpoints VALUES (3, ?)", (checkpoint.model_dump_json().encode(),))
    conn.commit()
    conn.close()


class TestEntryVersions:
    def test_a_version_2_entry_must_name_its_person(self) -> None:
        """v2 without actor_id / actor_role is not a valid entry."""
        with pytest.raises(ValidationError, match="names its actor_id"):
            AuditEntry(v=2, seq=1, at="2026-03-01T09:00:00Z", agency="a", action="x", actor="y")

    def test_a_version_1_entry_cannot_carry_a_person(self) -> None:
        """A v1 entry with a v2 field is not valid (a later edit would be caught)."""
        with pytest.raises(ValidationError, match="version 1 entry has no"):
            AuditEntry(seq=1, at="2026-03-01T09:00:00Z", agency="a", action="x", actor="y",
                       actor_id="SYN-1")  # fmt: skip


class TestMixedChain:
    async def test_old_entries_verify_and_new_ones_name_the_person(self, tmp_path: Path) -> None:
        """A v1 log upgraded: its entries verify unchanged, new entries are v2 with the person,
        and the whole chain verifies."""
        _version_1_log(tmp_path)
        async with _log(tmp_path) as log:
            await log.record(message_event("ack", "case-system", "m-4", person=OFFICER), NOW)
            assert await log.verify() is None
            found = await log.entries()
        assert [(e.v, e.actor_id) for e in found] == [
            (1, None), (1, None), (1, None), (2, "SYN-4711")
        ]  # fmt: skip

    async def test_rewriting_the_person_of_an_entry_is_found(self, tmp_path: Path) -> None:
        """Changing who acted in a v2 entry breaks the chain at that entry."""
        async with _log(tmp_path) as log:
            await log.record(message_event("ack", "case-system", "m-1", person=OFFICER), NOW)
            await log.record(message_event("ack", "case-system", "m-2", person=OFFICER), NOW)
        with sqlite3.connect(tmp_path / "audit.sqlite") as conn:
            conn.execute("UPDATE entries SET data = replace(data, 'SYN-4711', 'SYN-0000')"
                         " WHERE seq = 1")  # fmt: skip
        async with _log(tmp_path) as log:
            broken = await log.verify()
        assert broken is not None
        assert broken.seq == 1

    async def test_adding_a_person_to_an_old_entry_is_found(self, tmp_path: Path) -> None:
        """An actor_id slipped into a v1 entry makes it invalid: verify names it."""
        _version_1_log(tmp_path)
        with sqlite3.connect(tmp_path / "audit.sqlite") as conn:
            before, after = '"actor":"case-system"', '"actor":"case-system","actor_id":"SYN-1"'
            conn.execute("UPDATE entries SET data = replace(data, ?, ?) WHERE seq = 2",
                         (before, after))  # fmt: skip
        async with _log(tmp_path) as log:
            broken = await log.verify()
        assert broken is not None
        assert (broken.seq, broken.problem) == (2, "entry is not a valid audit entry")


class TestWhoIsRecorded:
    async def test_an_event_naming_nobody_records_its_system(self, log: AuditLog) -> None:
        """No person: actor_id ``system:<actor>``, role ``system``."""
        await log.record(AuditEvent("purge", "agent", outcome="payload_shredded"), NOW)
        [entry] = await log.entries()
        assert (entry.actor_id, entry.actor_role, entry.justification) == (
            "system:agent", "system", None
        )  # fmt: skip

    async def test_a_send_names_the_person_who_submitted(self, log: AuditLog) -> None:
        """The agent sends on its own; the disclosure's person is the submitter, with their
        reason. A later receipt (the agent's own) stays the system's."""
        await log.record(message_event("submit", "case-system", "m-1", "syn-marac", FLOW,
                                       outcome="queued", person=OFFICER), NOW)  # fmt: skip
        await log.record(message_event("send", "agent", "m-1", outcome="sent"), NOW)
        await log.record(message_event("receipt", "agent", "m-1", outcome="delivered"), NOW)
        submit, send, receipt = await log.entries()
        assert (send.actor, send.actor_id, send.actor_role, send.justification) == (
            "agent", "SYN-4711", "case_worker", OFFICER.justification
        )  # fmt: skip
        assert send.counterparty == submit.counterparty == "syn-marac"
        assert receipt.actor_id == "system:agent"

    async def test_a_send_after_a_submit_naming_nobody_names_the_client(
        self, log: AuditLog
    ) -> None:
        """Submitted as the system: the send names ``system:<client>``, not the agent."""
        await log.record(message_event("submit", "case-system", "m-1", "syn-marac", FLOW,
                                       outcome="queued"), NOW)  # fmt: skip
        await log.record(message_event("send", "agent", "m-1", outcome="sent"), NOW)
        _, send = await log.entries()
        assert (send.actor_id, send.actor_role) == ("system:case-system", "system")

    async def test_generalised_paths_are_recorded_as_paths(self, log: AuditLog) -> None:
        """``fields_altered`` holds (path, how) pairs, nothing else."""
        altered = (("perpetrators[].date_of_birth", "age_band"),)
        await log.record(message_event("alter", "case-system", "m-1", "syn-marac", FLOW,
                                       outcome="generalised", fields_altered=altered,
                                       person=OFFICER), NOW)  # fmt: skip
        [entry] = await log.entries()
        assert [(a.path, a.how) for a in entry.fields_altered] == list(altered)
