"""Repeated events through the agent's real receive path and service (review issue 13, points 3
and 7): a replayed envelope and a repeated acknowledgement are visible in the audit log, in a
bounded number of entries that count them."""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.actor import Caller
from agent.api_models import SubmitRequest
from agent.config import load_settings
from agent.runtime import Agent, open_agent
from agent.transport import Delivery, Outcome
from broker.devfed import DevFederation, create_dev_federation
from federation.audit_chain import AuditEntry
from federation.synth import generate_referral

REPO = Path(__file__).resolve().parents[4]
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
N = 50


class FakeTransport:
    """Takes the receipts the receiver publishes (the transport itself is tested on RabbitMQ)."""

    consuming = connected = True

    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []

    async def publish(self, to: str, frame: bytes, *, message_id: str, kind: str) -> None:
        self.published.append((to, kind))


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def fed(tmp_path: Path) -> DevFederation:
    return create_dev_federation(
        tmp_path / "fed", policies=REPO / "policies", now=NOW,
        agencies=["police-scotland", "assist"], vhost="syn-unit-never-provisioned",
        user_prefix="",  # never provisioned: the deliveries below carry the bare agency id
    )  # fmt: skip


@pytest.fixture
async def agents(fed: DevFederation) -> AsyncIterator[tuple[Agent, Agent, Clock]]:
    clock = Clock()
    async with AsyncExitStack() as stack:
        police, assist = [
            await stack.enter_async_context(
                open_agent(load_settings(fed.agency(a).config, {}), clock=clock)
            )
            for a in ("police-scotland", "assist")
        ]
        stack.enter_context(assist.publisher.attached(FakeTransport()))
        yield police, assist, clock


async def _sent_frame(police: Agent) -> tuple[str, bytes]:
    payload = generate_referral("police_concern", random.Random(7), risk_level="high")
    request = SubmitRequest.model_validate(
        {
            "to": "assist",
            "isa": "isa-police-assist-advocacy",
            "purpose": "advocacy_after_charge",
            "type": "police_concern",
            "payload": payload,
        }
    )
    message_id = (await police.service().submit(Caller.system("case-system"), request)).id
    [due] = await police.store.due_outgoing(police.clock(), 10)
    assert due.id == message_id
    return message_id, due.frame


def _delivery(message_id: str, frame: bytes, kind: str = "envelope") -> Delivery:
    return Delivery(body=frame, message_id=message_id, kind=kind, user_id="police-scotland",
                    redelivered=False, delivery_count=0)  # fmt: skip


async def _entries(ctx: Agent) -> list[AuditEntry]:
    return await ctx.audit.entries()  # type: ignore[attr-defined,no-any-return]


def _counted(entry: AuditEntry) -> int:
    match = re.match(r"(\d+) more ", entry.detail)
    assert match is not None, entry.detail
    return int(match.group(1))


class TestReplayedFramesAreAudited:
    async def test_replayed_envelope_flood_leaves_one_entry_and_a_counted_summary(
        self, agents: tuple[Agent, Agent, Clock]
    ) -> None:
        """N deliveries of one frame: one receive, one replay entry, one summary counting N-2."""
        police, assist, clock = agents
        message_id, frame = await _sent_frame(police)
        receiver = assist.receiver()
        outcomes = {await receiver(_delivery(message_id, frame)) for _ in range(N)}
        clock.now += timedelta(minutes=11)
        await assist.housekeeper().tick()
        entries = await _entries(assist)
        replays = [e for e in entries if (e.action, e.outcome) == ("reject", "replay")]
        summaries = [e for e in entries if e.action == "repeat"]
        assert outcomes == {Outcome.ACK}
        assert [e.action for e in entries].count("receive") == 1
        assert [(e.counterparty, e.message_id) for e in replays] == [
            ("police-scotland", message_id)
        ]
        assert [(e.outcome, _counted(e)) for e in summaries] == [("replay", N - 2)]
        assert len(entries) <= 8  # receive + replay + summary (+ the manifest entry)

    async def test_wrong_type_frames_leave_one_entry_and_a_counted_summary(
        self, agents: tuple[Agent, Agent, Clock]
    ) -> None:
        """N frames of an unknown kind: one reject entry, counted into one summary on close."""
        _, assist, clock = agents
        for n in range(N):
            assert (
                await assist.receiver()(_delivery(f"m{n}", b"junk", kind="bogus")) is Outcome.REJECT
            )
        await assist.repeats.close(clock())
        entries = await _entries(assist)
        rejects = [e for e in entries if (e.action, e.outcome) == ("reject", "unknown_kind")]
        summaries = [e for e in entries if e.action == "repeat"]
        assert len(rejects) == 1
        assert [(e.outcome, _counted(e)) for e in summaries] == [("unknown_kind", N - 1)]

    async def test_forged_envelope_flood_leaves_one_entry_and_a_counted_summary(
        self, agents: tuple[Agent, Agent, Clock]
    ) -> None:
        """N unauthenticated envelopes (bad frames): one reject entry, N-1 counted."""
        _, assist, clock = agents
        for n in range(N):
            outcome = await assist.receiver()(_delivery(f"m{n}", b"IRL1 forged"))
            assert outcome is Outcome.REJECT
        await assist.repeats.close(clock())
        entries = await _entries(assist)
        rejects = [e for e in entries if (e.action, e.outcome) == ("reject", "bad_frame")]
        summaries = [e for e in entries if e.action == "repeat"]
        assert len(rejects) == 1
        assert [(e.outcome, _counted(e)) for e in summaries] == [("bad_frame", N - 1)]


class TestRepeatedAcknowledgements:
    async def test_acking_fifty_times_writes_one_ack_entry_and_counts_the_rest(
        self, agents: tuple[Agent, Agent, Clock]
    ) -> None:
        """50 acks of one delivery: exactly one ack entry; 49 repeats counted and summarised."""
        police, assist, clock = agents
        message_id, frame = await _sent_frame(police)
        await assist.receiver()(_delivery(message_id, frame))
        service = assist.service()
        before = len(await _entries(assist))
        for _ in range(50):
            await service.ack(Caller.system("case-system"), message_id)
        assert len(await _entries(assist)) == before + 1
        await assist.repeats.close(clock())
        entries = await _entries(assist)
        assert [e.action for e in entries].count("ack") == 1
        assert [_counted(e) for e in entries if e.action == "repeat"] == [49]
        assert assist.metrics.counts["isa_agent_repeated_acks_total"] == 49

    async def test_rereading_the_inbox_writes_one_deliver_entry_per_window(
        self, agents: tuple[Agent, Agent, Clock]
    ) -> None:
        """20 reads of one unacknowledged delivery: one deliver entry, 19 reads counted."""
        police, assist, clock = agents
        message_id, frame = await _sent_frame(police)
        await assist.receiver()(_delivery(message_id, frame))
        service = assist.service()
        pages = [await service.inbox(Caller.system("case-system"), 0, 10) for _ in range(20)]
        assert [e.action for e in await _entries(assist)].count("deliver") == 1
        await assist.repeats.close(clock())
        entries = await _entries(assist)
        assert all([i.id for i in page.items] == [message_id] for page in pages)
        assert [_counted(e) for e in entries if e.action == "repeat"] == [19]
