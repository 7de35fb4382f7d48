"""/healthz tells an operator why a manifest was refused, and keeps the one in force."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.metrics import COUNTERS, GAUGES
from broker.devfed import DevFederation
from tests.support.federation import AgentHandle, agent_settings, running_agents

pytestmark = [pytest.mark.rabbitmq]


class TestHealthReportsManifestRefusal:
    async def test_a_corrupted_manifest_is_refused_and_the_reason_shown(
        self, live_federation: DevFederation
    ) -> None:
        """Garbage in the manifest file: serial unchanged, status still ok, error explains."""
        settings = agent_settings(live_federation, "assist")
        settings = settings.model_copy(
            update={"trust": settings.trust.model_copy(update={"manifest_poll_seconds": 0.1})}
        )
        async with aiohttp.ClientSession() as session:
            agent = AgentHandle(settings, live_federation.agency("assist").api_token, session)
            await agent.start()
            try:
                _, before = await agent.get("/healthz")
                live_federation.layout.manifest.write_bytes(b'{"format": "not a manifest"}')
                for _ in range(100):
                    _, after = await agent.get("/healthz")
                    if after["manifest"]["error"]:
                        break
                    await asyncio.sleep(0.05)
            finally:
                await agent.shutdown()
        assert before["manifest"]["error"] is None
        assert after["manifest"]["serial"] == before["manifest"]["serial"] == 1
        assert after["manifest"]["valid"] is True
        assert "manifest refused" in after["manifest"]["error"]


class TestHealthWarnsBeforeManifestExpiry:
    async def test_within_the_alert_lead_time_healthz_is_degraded_with_200(
        self, live_federation: DevFederation
    ) -> None:
        """A lead time longer than the manifest's life: /healthz says degraded, why, and 200."""
        settings = agent_settings(live_federation, "assist")
        trust = settings.trust.model_copy(update={"manifest_alert_hours": 8760.0})
        settings = settings.model_copy(update={"trust": trust})
        async with aiohttp.ClientSession() as session:
            agent = AgentHandle(settings, live_federation.agency("assist").api_token, session)
            await agent.start()
            try:
                for _ in range(200):  # until the broker connection is up
                    status, body = await agent.get("/healthz")
                    if body["broker"]["connected"]:
                        break
                    await asyncio.sleep(0.05)
            finally:
                await agent.shutdown()
        assert (status, body["status"], body["manifest"]["valid"]) == (200, "degraded", True)
        assert "re-signing job is not running?" in body["manifest"]["warning"]


class TestIsaList:
    async def test_an_agency_sees_only_the_agreements_it_is_party_to(
        self, live_federation: DevFederation
    ) -> None:
        """Police Scotland's list omits the Caledonian ISA; each listed ISA names it as a party."""
        async with running_agents(live_federation, "police-scotland") as agents:
            status, isas = await agents["police-scotland"].get("/v1/isas")
        assert status == 200
        ids = {isa["id"] for isa in isas}
        assert "isa-caledonian-partner-contact" not in ids
        assert {"isa-police-assist-advocacy", "isa-marac-referrals"} <= ids
        assert all("police-scotland" in isa["parties"] for isa in isas)
        assert all(isa["active"] for isa in isas)


class TestMetricsExposition:
    async def test_metrics_parse_with_help_process_collectors_and_the_existing_names(
        self, live_federation: DevFederation
    ) -> None:
        """A running agent's /metrics parses; every family has HELP; process_* and names kept."""
        async with running_agents(live_federation, "assist") as agents:
            await agents["assist"].get("/v1/isas")  # one request for the HTTP layer to count
            status, text = await agents["assist"].get("/metrics")
        assert status == 200
        families = list(text_string_to_metric_families(text))
        assert [f.name for f in families if not f.documentation] == []
        samples = {s.name for f in families for s in f.samples}
        assert {"process_resident_memory_bytes", "process_cpu_seconds_total"} <= samples
        assert {"python_info", "python_gc_objects_collected_total"} <= samples
        assert {*COUNTERS, *GAUGES, "isa_api_requests_total"} <= samples
