"""The audit log, subject access, retention and key rotation end to end on a real RabbitMQ.

Police Scotland sends ASSIST referrals about two different (synthetic) people. Afterwards:
``audit verify`` passes on both agents and names the first broken entry once one is tampered
with; ``audit search`` finds every message about one person across submit, send and receive and
nothing about the other; ``audit export`` holds no personal data; and the housekeeper, under an
injected clock, shreds a payload when the ISA's retention ends, after which no API returns it.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main as agent_main
from agent.runtime import agent_store, open_agent
from agent.store import PayloadPurged
from broker.agency import announce_key
from broker.devfed import DevFederation
from federation.synth import generate_referral
from tests.support.federation import agent_settings, running_agents

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

ISA = "isa-police-assist-advocacy"


def _referral(seed: int, name: str, dob: str) -> dict[str, Any]:
    payload = generate_referral("police_concern", random.Random(seed), risk_level="high")
    payload["victim"]["name"], payload["victim"]["date_of_birth"] = name, dob
    return {"to": "assist", "isa": ISA, "purpose": "advocacy_after_charge",
            "type": "police_concern", "payload": payload}  # fmt: skip


async def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run ``isa-agent ARGV`` as the operator would (its own event loop, in a thread)."""
    code = await asyncio.to_thread(agent_main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


async def _search(
    capsys: pytest.CaptureFixture[str], fed: DevFederation, agency: str, name: str, dob: str
) -> list[dict[str, Any]]:
    config = str(fed.agency(agency).config)
    code, out = await _cli(capsys, "audit", "search", "--config", config, "--subject-name", name,
                     "--subject-dob", dob, "--json")  # fmt: skip
    assert code == 0, out
    return [json.loads(line) for line in out.splitlines() if line]


class TestAuditEndToEnd:
    async def test_verify_search_export_and_retention(
        self, live_federation: DevFederation, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """One scenario, checked step by step (agents are costly to start)."""
        fed = live_federation
        alice = ("Ayla SYNTHWAITE", "1990-04-01")
        bryn = ("Bryn QUILLFEATHER", "1985-09-17")
        async with running_agents(fed, "police-scotland", "assist") as agents:
            police, assist = agents["police-scotland"], agents["assist"]
            ids = {}
            for seed, person in enumerate((alice, bryn, alice)):
                status, body = await police.post("/v1/messages", _referral(seed, *person))
                assert status == 202, body
                ids[seed] = body["id"]
            for message_id in ids.values():
                await police.wait_status(message_id, {"delivered"})
            await assist.drain_inbox(2)  # the third delivery stays unread for the retention step
        about_alice = {ids[0], ids[2]}

        # 1. Both logs verify (the agents signed a checkpoint on shutdown).
        for agency in ("police-scotland", "assist"):
            code, out = await _cli(
                capsys, "audit", "verify", "--config", str(fed.agency(agency).config)
            )
            assert code == 0, out
            assert "intact" in out

        # 2. Subject access at the sender: submit, decision, send and receipt, only Alice's.
        found = await _search(capsys, fed, "police-scotland", *alice)
        assert {e["message_id"] for e in found} == about_alice
        actions = {(e["message_id"], e["action"]) for e in found}
        for message_id in about_alice:
            assert {(message_id, a) for a in ("decision", "submit", "send", "receipt")} <= actions
        assert all(e["counterparty"] == "assist" and e["isa_id"] == ISA for e in found)
        assert all(e["purpose"] == "advocacy_after_charge" for e in found)

        config = str(fed.agency("police-scotland").config)
        code, table = await _cli(capsys, "audit", "search", "--config", config,
                                 "--subject-name", alice[0], "--subject-dob", alice[1])  # fmt: skip
        assert code == 0
        assert f"{len(found)} audit entries about this person" in table
        assert "shared: " in table
        assert "withheld: " in table
        assert "SYNTHWAITE" not in table

        # 3. ... and at the recipient: the receive of each of Alice's messages, none of Bryn's.
        received = await _search(capsys, fed, "assist", *alice)
        assert {e["message_id"] for e in received if e["action"] == "receive"} == about_alice
        assert {e["message_id"] for e in received} == about_alice
        bryn_found = await _search(capsys, fed, "assist", *bryn)
        assert {e["message_id"] for e in bryn_found} == {ids[1]}

        # 4. Export (JSON lines and CSV) carries paths and keyed hashes, no names.
        config = str(fed.agency("police-scotland").config)
        code, jsonl = await _cli(capsys, "audit", "export", "--config", config, "--format", "jsonl")
        assert code == 0
        entries = [json.loads(line) for line in jsonl.splitlines()]
        assert {"decision", "submit", "send", "receipt"} <= {e["action"] for e in entries}
        code, csv_text = await _cli(
            capsys, "audit", "export", "--config", config, "--format", "csv"
        )
        assert code == 0
        assert csv_text.startswith("seq,at,agency,action")
        for text in (jsonl, csv_text):
            assert "SYNTHWAITE" not in text
            assert "QUILLFEATHER" not in text

        # 5. Retention: three years after receipt the housekeeper shreds the payloads.
        settings = agent_settings(fed, "assist")
        async with open_agent(settings) as ctx:
            unread = ids[2]
            assert (await ctx.store.read_inbox_payload(unread)).startswith(b"{")
            received_at = (await ctx.store.inbox_page(0, 10))[0].received_at
            before = replace(ctx, clock=lambda: received_at + timedelta(days=3 * 365 - 2))
            await before.housekeeper().tick()
            assert (await ctx.store.read_inbox_payload(unread)).startswith(b"{")
            after = replace(ctx, clock=lambda: received_at + timedelta(days=3 * 365 + 2))
            await after.housekeeper().tick()
            with pytest.raises(PayloadPurged):
                await ctx.store.read_inbox_payload(unread)
        with sqlite3.connect(settings.data_dir / "agent-store.sqlite3") as conn:
            assert conn.execute("SELECT count(*) FROM data_keys").fetchone()[0] == 0
        async with running_agents(fed, "assist") as agents:
            status, page = await agents["assist"].get("/v1/inbox?after=0&limit=100")
        assert status == 200
        assert page["items"] == []
        code, jsonl = await _cli(
            capsys, "audit", "export", "--config", str(fed.agency("assist").config)
        )
        purges = [json.loads(x) for x in jsonl.splitlines() if '"action":"purge"' in x]
        assert {p["message_id"] for p in purges} == set(ids.values())

        # 6. Tampering with one entry is found and named.
        with sqlite3.connect(
            fed.layout.agency_dir("police-scotland") / "data" / "audit.sqlite"
        ) as conn:
            conn.execute(
                "UPDATE entries SET data = replace(data, 'assist', 'elsewhere') WHERE seq = 3"
            )
        code, out = await _cli(capsys, "audit", "verify", "--config", config)
        assert code == 1
        assert "BROKEN at entry 3" in out


def _operator_announces(fed: DevFederation, announcement: Path) -> datetime:
    """The operator's step: ``isa-broker agency announce`` publishes the next manifest.
    Returns when the announced key starts (a whole second, at most one ahead)."""
    note, _serial = announce_key(fed.layout, announcement.read_bytes(), datetime.now(UTC))
    return datetime.fromisoformat(note.not_before)


class TestKeyRotationEndToEnd:
    async def test_old_key_messages_open_in_grace_and_new_messages_use_the_new_key(
        self, live_federation: DevFederation, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A message sealed to ASSIST's old key while it was offline opens after its rotation;
        once the operator published the announcement, new messages are sealed to the new key."""
        fed = live_federation
        async with running_agents(fed, "police-scotland") as agents:
            status, body = await agents["police-scotland"].post(
                "/v1/messages", _referral(1, "Ayla SYNTHWAITE", "1990-04-01")
            )
            assert status == 202, body
            before = body["id"]
            await agents["police-scotland"].wait_status(before, {"sent"})

        config = str(fed.agency("assist").config)
        code, out = await _cli(capsys, "keys", "rotate", "--config", config)
        assert code == 0, out
        announcement = Path(out.split("signed announcement: ")[1].split()[0])
        new_kid = announcement.stem
        starts = await asyncio.to_thread(_operator_announces, fed, announcement)
        await asyncio.sleep(max(0.0, (starts - datetime.now(UTC)).total_seconds()))

        async with running_agents(fed, "police-scotland", "assist") as agents:
            police = agents["police-scotland"]
            await police.wait_status(before, {"delivered"})
            status, body = await police.post(
                "/v1/messages", _referral(2, "Bryn QUILLFEATHER", "1985-09-17")
            )
            assert status == 202, body
            after = body["id"]
            await police.wait_status(after, {"delivered"})

        async with agent_store(agent_settings(fed, "police-scotland")) as store:
            old_key = (await store.message_status(before)).header["recipient_key"]
            new_key = (await store.message_status(after)).header["recipient_key"]
        assert old_key != new_key
        assert new_key == new_kid
        code, out = await _cli(capsys, "audit", "export", "--config", config)
        rotations = [json.loads(x) for x in out.splitlines() if '"key_rotation"' in x]
        assert [r["outcome"] for r in rotations] == ["rotated"]
        assert new_kid in rotations[0]["detail"]
