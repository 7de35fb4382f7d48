"""Failures are named for what they are (issue 15.8): a submit the ISA permits but the
federation's trust cannot carry answers a named 503, is audited once per window and counted,
and is never a 403 ``denied``; health and readiness say the agent cannot send."""

from __future__ import annotations

import ast
import dataclasses
import random
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.actor import actor_headers
from agent.api import create_app
from agent.api_models import SubmitRequest
from agent.auth import ApiClient, hash_token
from agent.config import load_settings
from agent.errors import (
    Denied,
    RecipientCertificateExpired,
    RecipientKeyUnavailable,
    SenderCertificateExpired,
    SendRefused,
    TrustUnavailable,
)
from agent.openapi import build_openapi
from agent.runtime import Agent, open_agent
from agent.service import Service
from broker.devfed import DevFederation, create_dev_federation
from federation.canonical import b64url_encode
from federation.keys import KeyAnnouncement, announce
from federation.manifest import Manifest, TrustState
from federation.pki import certificate_to_der
from federation.synth import generate_referral
from tests.support.memory_store import MemoryStore
from tests.unit.agent.fakes import (
    CALLER,
    FED,
    MANIFEST,
    NOW,
    RECIPIENT,
    SENDER,
    FixedTrust,
    ListAudit,
    RecordingPublisher,
    request,
    service,
)

REPO = Path(__file__).resolve().parents[3]
TOKEN = "syn-token-send-0000000000000000000000000"
ACTOR = actor_headers("SYN-STAFF-0001", "case_worker", "SYNTHETIC unit test")


def _expired_cert(agency: str, serial: int) -> str:
    keys = FED.agencies[agency]
    cert = FED.issue(
        agency, keys.signing.verify_key, serial=serial,
        not_before=NOW - timedelta(days=366), not_after=NOW - timedelta(hours=1),
    )  # fmt: skip
    return b64url_encode(certificate_to_der(cert))


def _lapsed(agency: str) -> KeyAnnouncement:
    keys = FED.agencies[agency]
    return announce(
        keys.signing, agency=agency, public_key=keys.encryption.public,
        not_before=NOW - timedelta(days=31), not_after=NOW - timedelta(days=1),
    )  # fmt: skip


def _manifest(agency: str, **changes: Any) -> Manifest:
    entries = [FED.entry(a, **changes) if a == agency else FED.entry(a) for a in FED.agencies]
    return FED.manifest(FED.document(agencies=entries, isas=MANIFEST.document.isas))


#: cause -> (the manifest that causes it, the error, the problem type, Retry-After)
CASES: dict[str, tuple[Manifest, type[SendRefused], str, int | None]] = {
    "sender_certificate_expired": (
        _manifest(SENDER, certificate=_expired_cert(SENDER, 60)),
        SenderCertificateExpired, "sender-certificate-expired", None,
    ),
    "recipient_key_unavailable": (
        _manifest(RECIPIENT, announcements=[_lapsed(RECIPIENT)]),
        RecipientKeyUnavailable, "recipient-key-unavailable", 60,
    ),
    "recipient_certificate_expired": (
        _manifest(RECIPIENT, certificate=_expired_cert(RECIPIENT, 61)),
        RecipientCertificateExpired, "recipient-certificate-expired", 60,
    ),
}  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def _service(
    cause: str, store: MemoryStore, audit: ListAudit, clock: Clock | None = None
) -> Service:
    trust = FixedTrust(state=TrustState(CASES[cause][0]))
    agent = service(store, audit, trust=trust, publisher=RecordingPublisher())
    return dataclasses.replace(agent, clock=clock or (lambda: NOW))


@pytest.fixture(params=sorted(CASES))
def cause(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class TestRefusedSubmits:
    async def test_a_trust_refusal_is_its_own_503_never_a_403(self, cause: str) -> None:
        """Each cause raises its own 503 error, with Retry-After only where retrying can cure."""
        _, error, _, retry = CASES[cause]
        with pytest.raises(SendRefused) as raised:
            await _service(cause, MemoryStore(), ListAudit()).submit(CALLER, request())
        assert (type(raised.value), raised.value.http_status) == (error, 503)
        assert not isinstance(raised.value, Denied)
        assert raised.value.retry_after == retry

    async def test_a_refused_submit_stores_nothing(self, cause: str) -> None:
        """Nothing is sealed into the outbox: no 202 for an envelope bound to be rejected."""
        store = MemoryStore()
        with pytest.raises(SendRefused):
            await _service(cause, store, ListAudit()).submit(CALLER, request())
        assert await store.outbox_depth() == 0

    async def test_a_refused_submit_is_audited_with_its_cause(self, cause: str) -> None:
        """One submit entry, to the recipient, whose outcome is the cause."""
        audit = ListAudit()
        with pytest.raises(SendRefused):
            await _service(cause, MemoryStore(), audit).submit(CALLER, request())
        assert [(e.action, e.counterparty, e.outcome) for e, _, _ in audit.entries] == [
            ("submit", RECIPIENT, cause)
        ]

    async def test_a_refused_submit_is_counted_by_its_cause(self, cause: str) -> None:
        """isa_agent_send_refused_total{cause} counts it; the denied counter does not."""
        agent = _service(cause, MemoryStore(), ListAudit())
        with pytest.raises(SendRefused):
            await agent.submit(CALLER, request())
        assert agent.metrics.refusals[cause] == 1
        assert agent.metrics.counts["isa_agent_denied_total"] == 0

    async def test_a_retry_loop_writes_one_entry_per_window_and_counts_the_rest(self) -> None:
        """50 refused retries: one submit entry now, one repeat entry counting 49 at the window."""
        audit, clock = ListAudit(), Clock()
        agent = _service("recipient_key_unavailable", MemoryStore(), audit, clock)
        for _ in range(50):
            with pytest.raises(RecipientKeyUnavailable):
                await agent.submit(CALLER, request())
        assert audit.actions() == ["submit"]
        clock.now += timedelta(minutes=11)
        await agent.repeats.flush(clock.now)
        [(summary, _, _)] = audit.entries[1:]
        assert (summary.action, summary.outcome) == ("repeat", "recipient_key_unavailable")
        assert summary.detail.startswith("49 more submit (recipient_key_unavailable)")

    async def test_no_valid_manifest_is_audited_and_says_when_to_retry(self) -> None:
        """trust-unavailable is audited as a submit entry and carries Retry-After."""
        audit = ListAudit()
        agent = service(MemoryStore(), audit, trust=FixedTrust(state=TrustState(None)))
        with pytest.raises(TrustUnavailable) as raised:
            await agent.submit(CALLER, request())
        assert raised.value.retry_after == 60
        assert [(e.action, e.outcome) for e, _, _ in audit.entries] == [
            ("submit", "trust_unavailable")
        ]


class TestProblemOnTheWire:
    async def test_the_problem_names_its_type_and_retry_after(self, cause: str) -> None:
        """Over HTTP: status 503, type urn:isa-relay:problem:<cause>, Retry-After as decided."""
        _, _, kind, retry = CASES[cause]
        client = ApiClient(name="case-system", token_sha256=hash_token(TOKEN),
                           scopes=frozenset({"send"}))  # fmt: skip
        app = create_app(_service(cause, MemoryStore(), ListAudit()), [client])
        async with TestClient(TestServer(app)) as http:
            body = request().model_dump(mode="json", by_alias=True, exclude_none=True)
            response = await http.post(
                "/v1/messages", json=body, headers={"Authorization": f"Bearer {TOKEN}", **ACTOR}
            )
            problem = await response.json(content_type="application/problem+json")
        assert (response.status, problem["type"]) == (503, f"urn:isa-relay:problem:{kind}")
        assert response.headers.get("Retry-After") == (None if retry is None else str(retry))


class TestDocumentedAndExposed:
    def test_openapi_lists_every_refusal_type_on_submit(self) -> None:
        """The submit 503 names each problem type a trust refusal can carry, with an example."""
        answer = build_openapi(max_body_bytes=4096)["paths"]["/v1/messages"]["post"]
        examples = answer["responses"]["503"]["content"]["application/problem+json"]["examples"]
        kinds = {"trust-unavailable", *(kind for _, _, kind, _ in CASES.values())}
        assert kinds <= set(examples)
        assert all(f"urn:isa-relay:problem:{k}" in answer["responses"]["503"]["description"]
                   for k in kinds)  # fmt: skip

    async def test_metrics_expose_refusals_by_cause(self) -> None:
        """/metrics shows isa_agent_send_refused_total with the cause of the refusal counted."""
        agent = _service("recipient_certificate_expired", MemoryStore(), ListAudit())
        with pytest.raises(RecipientCertificateExpired):
            await agent.submit(CALLER, request())
        text = await agent.metrics_text(CALLER)
        assert 'isa_agent_send_refused_total{cause="recipient_certificate_expired"} 1.0' in text
        assert 'isa_agent_send_refused_total{cause="recipient_key_unavailable"} 0.0' in text


def _denied_raise_sites() -> list[str]:
    """Each ``raise Denied(...)`` in agent/ and federation/ as "<file>:<function>:<guard>"."""
    sites = []
    for path in sorted([*REPO.glob("agent/**/*.py"), *REPO.glob("federation/**/*.py")]):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for func in (
            n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        ):
            for guard, node in _raises_under(func.body, ""):
                call = node.exc
                if isinstance(call, ast.Call) and ast.unparse(call.func) == "Denied":
                    sites.append(f"{path.relative_to(REPO)}:{func.name}:{guard}")
    return sites


def _raises_under(body: list[ast.stmt], guard: str) -> Iterator[tuple[str, ast.Raise]]:
    for stmt in body:
        if isinstance(stmt, ast.Raise):
            yield guard, stmt
        elif isinstance(stmt, ast.If):
            yield from _raises_under(stmt.body, ast.unparse(stmt.test))
            yield from _raises_under(stmt.orelse, f"not ({ast.unparse(stmt.test)})")


class TestDeniedIsOnlyTheIsa:
    def test_denied_is_raised_only_where_the_isa_decides(self) -> None:
        """The only 403 denied raises: no ISA in force, the decision's DENY, and the ISA
        deciding again at a review's approval that the referral may no longer leave."""
        assert _denied_raise_sites() == [
            "agent/service.py:_isa:isa is None",
            "agent/service.py:submit:prepared.spec is None",
            "agent/service.py:_approval_refused:",
        ]


class TestHealthNamesWhyItCannotSend:
    async def test_our_expired_certificate_fails_health_closed(self) -> None:
        """Our certificate expired: /healthz fail_closed with the certificate named invalid."""
        health = await _service("sender_certificate_expired", MemoryStore(), ListAudit()).health()
        assert (health.status, health.certificate.valid) == ("fail_closed", False)
        assert "expired at" in health.certificate.detail

    async def test_our_expired_certificate_makes_the_agent_not_ready(self) -> None:
        """Our certificate expired: /readyz not_ready, missing check certificate."""
        ready = await _service("sender_certificate_expired", MemoryStore(), ListAudit()).readiness()
        assert (ready.status, [m.check for m in ready.missing]) == ("not_ready", ["certificate"])

    async def test_a_recipient_without_a_key_is_listed_and_degrades_health(self) -> None:
        """The recipient's key lapsed: degraded, the recipient listed with its cause."""
        health = await _service("recipient_key_unavailable", MemoryStore(), ListAudit()).health()
        assert health.status == "degraded"
        assert [(r.agency, r.cause) for r in health.unreachable_recipients] == [
            (RECIPIENT, "recipient_key_unavailable")
        ]

    async def test_a_recipient_without_a_key_degrades_readiness_by_name(self) -> None:
        """The recipient's key lapsed: /readyz degraded (200), check recipients naming it."""
        ready = await _service("recipient_key_unavailable", MemoryStore(), ListAudit()).readiness()
        assert (ready.status, ready.missing) == ("degraded", [])
        [finding] = [d for d in ready.degraded if d.check == "recipients"]
        assert finding.detail.endswith(RECIPIENT)

    async def test_a_sound_manifest_lists_no_unreachable_recipient(self) -> None:
        """With the shipped fake manifest: ok, our certificate valid, nobody unreachable."""
        health = await service(MemoryStore(), ListAudit()).health()
        assert (health.status, health.certificate.valid, health.unreachable_recipients) == (
            "ok",
            True,
            [],
        )


@pytest.fixture
def devfed(tmp_path: Path) -> DevFederation:
    """police-scotland and assist, keys announced for 30 days, a manifest valid for 40."""
    return create_dev_federation(
        tmp_path / "fed", policies=REPO / "policies", now=NOW, manifest_validity=timedelta(days=40),
        agencies=["police-scotland", "assist"], vhost="syn-unit-never-provisioned",
    )  # fmt: skip


@pytest.fixture
async def police(devfed: DevFederation) -> AsyncIterator[tuple[Agent, Clock]]:
    clock = Clock()
    async with open_agent(load_settings(devfed.agency("police-scotland").config, {}),
                          clock=clock) as opened:  # fmt: skip
        yield opened, clock


def _police_concern() -> SubmitRequest:
    payload = generate_referral("police_concern", random.Random(7), risk_level="high")
    return SubmitRequest.model_validate(
        {"to": "assist", "isa": "isa-police-assist-advocacy", "purpose": "advocacy_after_charge",
         "type": "police_concern", "payload": payload}
    )  # fmt: skip


class TestOverADevFederation:
    async def test_a_lapsed_announcement_is_refused_by_name_and_audited_once(
        self, police: tuple[Agent, Clock]
    ) -> None:
        """Day 31, assist's only announcement lapsed: 503 recipient-key-unavailable, one entry."""
        agent, clock = police
        clock.now = NOW + timedelta(days=31)
        service = agent.service()
        for _ in range(3):
            with pytest.raises(RecipientKeyUnavailable, match="assist has no current"):
                await service.submit(CALLER, _police_concern())
        entries = await agent.audit.entries()  # type: ignore[attr-defined]
        refused = [e for e in entries if e.outcome == "recipient_key_unavailable"]
        assert [(e.action, e.counterparty) for e in refused] == [("submit", "assist")]
        assert await agent.store.outbox_depth() == 0

    async def test_a_lapsed_announcement_degrades_readiness_naming_the_recipient(
        self, police: tuple[Agent, Clock]
    ) -> None:
        """Day 31: /readyz is degraded (200) with check recipients naming assist."""
        agent, clock = police
        clock.now = NOW + timedelta(days=31)
        ready = await agent.service().readiness()
        assert (ready.status, ready.missing) == ("degraded", [])
        [finding] = [d for d in ready.degraded if d.check == "recipients"]
        assert finding.detail == "no envelope can be sealed now for: assist"
