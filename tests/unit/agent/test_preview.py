"""Preview on the real service: a broken payload is refused before any ISA is looked up."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.actor import Caller
from agent.api_models import SubmitRequest
from agent.config import load_settings
from agent.runtime import Agent, open_agent
from broker.devfed import create_dev_federation
from federation.errors import PayloadInvalid
from federation.synth import generate_referral

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[Agent]:
    fed = create_dev_federation(
        tmp_path / "fed", policies=REPO / "policies", now=NOW,
        agencies=["police-scotland", "assist"], vhost="syn-unit-never-provisioned",
    )  # fmt: skip
    settings = load_settings(fed.agency("police-scotland").config, {})
    async with open_agent(settings, clock=lambda: NOW) as opened:
        yield opened


class TestPreview:
    async def test_preview_accepted_a_schema_violating_payload_under_an_unknown_isa(
        self, ctx: Agent
    ) -> None:
        """Unknown ISA and a payload that breaks its type: 422 (PayloadInvalid), not 200 DENY."""
        request = SubmitRequest.model_validate(
            {"to": "a0", "isa": "0", "purpose": "0", "type": "support_referral",
             "payload": {"referral_ref": None}}
        )  # fmt: skip
        with pytest.raises(PayloadInvalid) as caught:
            await ctx.service().preview(Caller.system("case-system"), request)
        assert "synthetic" in caught.value.errors

    async def test_a_valid_payload_under_an_unknown_isa_is_still_a_deny(self, ctx: Agent) -> None:
        """The documented answer stays: no agreement in force, so DENY and nothing shared."""
        payload = generate_referral("support_referral", random.Random(3), risk_level="standard")
        request = SubmitRequest.model_validate(
            {"to": "assist", "isa": "isa-unknown", "purpose": "x", "type": "support_referral",
             "payload": payload}
        )  # fmt: skip
        preview = await ctx.service().preview(Caller.system("case-system"), request)
        assert (preview.decision, preview.shared_fields) == ("DENY", [])
