"""Who acted and why, end to end on a real RabbitMQ (issue 18 points 1-2, DPA 2018 s62).

Police Scotland previews and sends a MARAC referral (an ISA flow with ``log: dpa2018_s62``)
naming a synthetic officer and a reason, and an ASSIST referral naming nobody (the dev
federation records that as the system); the MARAC coordinator reads and acknowledges the
referral naming its own person, holds it, is refused its erasure while held, releases and
erases it. Afterwards each agent's exported log names the person and role
of every call, the generalised field as a path, the collection, disclosure and consultation
entries; an audit search is itself recorded; and ``audit verify`` reports every chain intact.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest

from agent.actor import actor_headers
from agent.cli import main as agent_main
from broker.devfed import DevFederation
from federation.synth import generate_referral
from tests.support.federation import running_agents

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

VICTIM = ("Morwen SYNTHCASTLE", "1988-11-02")
OFFICER = actor_headers("SYN-PS-4711", "police_officer", "SYNTHETIC MARAC: high risk, s115 CDA")
COORDINATOR = actor_headers("SYN-MC-0042", "marac_coordinator", "SYNTHETIC MARAC meeting prep")


def _marac_referral() -> dict[str, Any]:
    payload = generate_referral("marac_referral", random.Random(18), risk_level="high")
    payload["victim"]["name"], payload["victim"]["date_of_birth"] = VICTIM
    return {"to": "marac-coordinator", "isa": "isa-marac-referrals",
            "purpose": "marac_risk_management", "type": "marac_referral",
            "payload": payload}  # fmt: skip


def _assist_referral() -> dict[str, Any]:
    payload = generate_referral("police_concern", random.Random(19), risk_level="high")
    return {"to": "assist", "isa": "isa-police-assist-advocacy",
            "purpose": "advocacy_after_charge", "type": "police_concern",
            "payload": payload}  # fmt: skip


async def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = await asyncio.to_thread(agent_main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


async def _export(capsys: pytest.CaptureFixture[str], fed: DevFederation, agency: str) -> Any:
    code, out = await _cli(capsys, "audit", "export", "--config", str(fed.agency(agency).config),
                           "--actor-id", "SYN-DPO-1", "--actor-role", "dpo")  # fmt: skip
    assert code == 0, out
    return [json.loads(line) for line in out.splitlines() if line]


class TestAccountabilityEndToEnd:
    async def test_every_call_names_its_person_and_every_chain_verifies(
        self, live_federation: DevFederation, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """One scenario, checked step by step (agents are costly to start)."""
        fed = live_federation
        agencies = ("police-scotland", "marac-coordinator", "assist")
        async with running_agents(fed, *agencies) as agents:
            police, marac, assist = (agents[a] for a in agencies)
            police.actor = OFFICER
            status, preview = await police.post("/v1/messages/preview", _marac_referral())
            assert (status, preview["decision"]) == (200, "PERMIT")

            # 1. The s62 flow refuses a disclosure naming nobody, though the dev federation
            #    lets other calls name nobody.
            police.actor = {}
            status, problem = await police.post("/v1/messages", _marac_referral())
            assert (status, problem["type"]) == (400, "urn:isa-relay:problem:actor-required")
            status, system_sent = await police.post("/v1/messages", _assist_referral())
            assert status == 202, system_sent

            police.actor = OFFICER
            status, sent = await police.post("/v1/messages", _marac_referral())
            assert status == 202, sent
            for message_id in (sent["id"], system_sent["id"]):
                await police.wait_status(message_id, {"delivered"})

            # 2. Reading the s62 delivery needs the coordinator's person and reason.
            marac.actor = {}
            status, problem = await marac.get("/v1/inbox")
            assert (status, problem["type"]) == (400, "urn:isa-relay:problem:actor-required")
            marac.actor = COORDINATOR
            [delivery] = await marac.drain_inbox(1)
            assert delivery["id"] == sent["id"]
            assistant = await assist.drain_inbox(1)
            assert [d["id"] for d in assistant] == [system_sent["id"]]

            # 3. A legal hold stops an erasure on request (409, nothing changed) until released.
            hold = f"/v1/inbox/{sent['id']}/hold"
            async with marac.session.put(marac.url + hold, headers=marac.headers) as response:
                assert response.status == 204
            status, problem = await marac.post(f"/v1/inbox/{sent['id']}/erase", None)
            assert (status, problem["type"]) == (409, "urn:isa-relay:problem:legal-hold")
            async with marac.session.delete(marac.url + hold, headers=marac.headers) as response:
                assert response.status == 204
            assert (await marac.post(f"/v1/inbox/{sent['id']}/erase", None))[0] == 204

        # 4. A subject access search is itself a consultation (recorded after the read).
        config = str(fed.agency("police-scotland").config)
        code, out = await _cli(capsys, "audit", "search", "--config", config, "--subject-name",
                               VICTIM[0], "--subject-dob", VICTIM[1], "--json", "--actor-id",
                               "SYN-DPO-1", "--actor-role", "dpo", "--justification",
                               "SYNTHETIC SAR 2026-018")  # fmt: skip
        assert code == 0, out
        found = [json.loads(line) for line in out.splitlines()]
        assert {e["message_id"] for e in found} == {sent["id"], None}
        [previewed] = [e for e in found if e["message_id"] is None]  # the preview was about her
        assert (previewed["action"], previewed["outcome"]) == ("consult", "preview")

        # 5. The sender's log: the person, role and reason of each call about the referral.
        police_log = await _export(capsys, fed, "police-scotland")
        about = {e["action"]: e for e in police_log if e["message_id"] == sent["id"]}
        for action in ("decision", "alter", "submit", "send"):
            assert (about[action]["actor_id"], about[action]["actor_role"]) == (
                "SYN-PS-4711",
                "police_officer",
            ), action
            assert about[action]["justification"] == OFFICER["X-Actor-Justification"]
        assert about["send"]["counterparty"] == "marac-coordinator"
        assert {"path": "perpetrators[].date_of_birth", "how": "age_band"} in about["alter"][
            "fields_altered"
        ]
        consults = {(e["outcome"], e["actor_id"]) for e in police_log if e["action"] == "consult"}
        assert {("preview", "SYN-PS-4711"), ("message_status", "SYN-PS-4711"),
                ("audit_search", "SYN-DPO-1")} <= consults  # fmt: skip
        system = [e for e in police_log if e["message_id"] == system_sent["id"]]
        assert {e["actor_id"] for e in system if e["action"] in ("submit", "send")} == {
            "system:case-system"
        }
        assert all(e["v"] == 2 and e["actor_id"] and e["actor_role"] for e in police_log)
        assert VICTIM[0].split()[1] not in json.dumps(police_log)

        # 6. The recipient's log: collection by the agent, consultation by the coordinator.
        marac_log = await _export(capsys, fed, "marac-coordinator")
        at_marac = {e["action"]: e for e in marac_log if e["message_id"] == sent["id"]}
        assert (at_marac["receive"]["actor_id"], at_marac["receive"]["counterparty"]) == (
            "system:agent",
            "police-scotland",
        )
        for action in ("deliver", "ack", "hold", "purge"):
            assert at_marac[action]["actor_id"] == "SYN-MC-0042", action
        assert at_marac["purge"]["outcome"] == "erased_on_request"
        assert at_marac["deliver"]["justification"] == COORDINATOR["X-Actor-Justification"]

        # 7. After all of it (and the consultations the CLI appended) every chain verifies.
        for agency in agencies:
            code, out = await _cli(
                capsys, "audit", "verify", "--config", str(fed.agency(agency).config)
            )
            assert code == 0, out
            assert "intact" in out
