"""Liveness and readiness of a real agent service (real store and trust, injected clock)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.config import load_settings
from agent.errors import StoreUnavailable
from agent.probes import ReadinessFacts, judge_readiness
from agent.runtime import Agent, open_agent
from broker.devfed import DevFederation, create_dev_federation

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


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
    )  # fmt: skip


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def ctx(fed: DevFederation, clock: Clock) -> AsyncIterator[Agent]:
    settings = load_settings(fed.agency("police-scotland").config, {})
    async with open_agent(settings, clock=clock) as opened:
        yield opened


class TestReadinessOfTheRealService:
    async def test_without_a_broker_the_agent_is_ready_but_degraded(
        self, ctx: Agent
    ) -> None:
        """Valid manifest, store open, no transport: degraded (submits still queue), not 503."""
        readiness = await ctx.service().readiness()
        assert (readiness.status, readiness.missing) == ("degraded", [])
        assert [d.check for d in readiness.degraded] == ["broker"]

    async def test_readiness_is_not_ready_once_the_manifest_expires(
        self, ctx: Agent, clock: Clock
    ) -> None:
        """Past the manifest's expiry (same clock), trust fails closed: not_ready, manifest."""
        assert ctx.trust.manifest is not None
        clock.now = ctx.trust.manifest.expires_at + timedelta(seconds=1)
        readiness = await ctx.service().readiness()
        assert (readiness.status, [m.check for m in readiness.missing]) == (
            "not_ready",
            ["manifest"],
        )
        assert "fail closed" in readiness.missing[0].detail

    async def test_liveness_holds_when_the_manifest_has_expired(
        self, ctx: Agent, clock: Clock
    ) -> None:
        """Fail-closed trust does not make the process unlive: a restart would not help."""
        assert ctx.trust.manifest is not None
        clock.now = ctx.trust.manifest.expires_at + timedelta(days=1)
        assert (await ctx.service().liveness()).status == "alive"

    async def test_a_closed_store_is_missing_and_fails_liveness(self, ctx: Agent) -> None:
        """Once the store cannot be read, readiness names it and liveness raises (503)."""
        await ctx.store.close()
        readiness = await ctx.service().readiness()
        assert [m.check for m in readiness.missing] == ["store"]
        with pytest.raises(StoreUnavailable):
            await ctx.service().liveness()


class TestJudgeReadiness:
    def test_all_well_is_ready(self) -> None:
        """Valid trust, store, broker and announced key: ready, nothing listed."""
        judged = judge_readiness(ReadinessFacts("valid", True, True, True))
        assert (judged.status, judged.missing, judged.degraded) == ("ready", [], [])

    def test_no_manifest_at_all_is_not_ready(self) -> None:
        """No verified manifest held yet: not ready (fail closed), with its own detail."""
        judged = judge_readiness(ReadinessFacts("none", True, True, True))
        assert judged.status == "not_ready"
        assert "no verified federation manifest" in judged.missing[0].detail

    def test_an_unannounced_key_only_degrades(self) -> None:
        """A current key not yet in the manifest: degraded (peers seal to the previous one)."""
        judged = judge_readiness(ReadinessFacts("valid", True, True, False))
        assert (judged.status, [d.check for d in judged.degraded]) == ("degraded", ["keys"])
