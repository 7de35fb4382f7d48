"""Certificate renewal on the operator's side (issue 15.3, ``broker.renewals``): requests posted to
``isa-broker serve``, issued by the scheduled job or at once, reissue after expiry, the signer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509

from broker.cli import main
from broker.fedstate import FederationLayout, load_state
from broker.renewals import RenewalDesk, audit_file, pending_requests
from broker.serve import ManifestFile, create_app
from federation import pki
from federation.errors import ManifestRejected
from federation.keyfile import load_signing_key
from federation.keys import SigningKey
from federation.manifest import TrustState, reload_manifest, verify_manifest
from federation.renewal import sign_renewal
from tests.unit.broker.conftest import NOW

Client = TestClient[web.Request, web.Application]
POLICE, ASSIST = "police-scotland", "assist"
DUE = NOW + timedelta(days=320)  # the 365-day certificates end within a 60-day lead


def _key(layout: FederationLayout, agency: str) -> SigningKey:
    path = layout.agency_dir(agency) / "keys" / "signing.key"
    return load_signing_key(path.read_bytes(), mode=path.stat().st_mode)


def _cert(layout: FederationLayout, agency: str) -> x509.Certificate:
    return pki.certificate_from_bytes(layout.agency_cert(agency).read_bytes())


def _audit(layout: FederationLayout) -> list[dict[str, Any]]:
    lines = audit_file(layout).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _held(layout: FederationLayout) -> TrustState:
    root = pki.certificate_from_bytes(layout.root_cert.read_bytes())
    data = layout.manifest.read_bytes()
    pin = pki.fingerprint(root)
    return TrustState(reload_manifest(data, root_cert=root, pinned_fingerprint=pin))


def _accept(layout: FederationLayout, held: TrustState, now: datetime) -> TrustState:
    """What an agent holding ``held`` does with the manifest now on disk, at ``now``."""
    root = pki.certificate_from_bytes(layout.root_cert.read_bytes())
    return held.accept(layout.manifest.read_bytes(), root_cert=root,
                       pinned_fingerprint=pki.fingerprint(root), now=now)  # fmt: skip


def _cli(layout: FederationLayout, now: datetime, *argv: str) -> int:
    return main([*argv, "--federation", str(layout.root)], clock=lambda: now)


@pytest.fixture
def make_client(
    layout: FederationLayout,
) -> Callable[..., Any]:
    async def make(*, issue: bool) -> Client:
        desk = RenewalDesk(layout, issue=issue)
        app = create_app(ManifestFile(layout), clock=lambda: DUE, renewals=desk)
        client = TestClient(TestServer(app))
        await client.start_server()
        return client

    return make


@pytest.fixture
async def pending_client(make_client: Callable[..., Any]) -> AsyncIterator[Client]:
    client = await make_client(issue=False)
    yield client
    await client.close()


@pytest.fixture
async def issuing_client(make_client: Callable[..., Any]) -> AsyncIterator[Client]:
    client = await make_client(issue=True)
    yield client
    await client.close()


async def _post(client: Client, key: SigningKey, agency: str, url_agency: str) -> Any:
    body = sign_renewal(key, agency=agency, at=DUE).model_dump(mode="json")
    async with client.post(f"/v1/renewals/{url_agency}", json=body) as response:
        return response.status, await response.json(content_type=None)


class TestRenewalEndpoint:
    async def test_a_request_by_the_current_key_is_kept_pending(
        self, layout: FederationLayout, pending_client: Client
    ) -> None:
        """Without the CA key at hand the request waits for the scheduled job (202)."""
        status, body = await _post(pending_client, _key(layout, POLICE), POLICE, POLICE)
        assert (status, body["status"]) == (202, "pending")
        assert [r.agency for r in pending_requests(layout)] == [POLICE]

    async def test_a_request_for_another_agency_is_refused_and_audited(
        self, layout: FederationLayout, pending_client: Client
    ) -> None:
        """Police's request posted for assist gets 403, is not kept, and is audited."""
        status, _ = await _post(pending_client, _key(layout, POLICE), POLICE, ASSIST)
        assert (status, pending_requests(layout)) == (403, [])
        assert [(e["agency"], e["event"], e["reason"]) for e in _audit(layout)] == [
            (ASSIST, "refused", "wrong_agency")
        ]

    async def test_a_request_signed_by_a_key_that_is_not_the_agencys_is_refused(
        self, layout: FederationLayout, pending_client: Client
    ) -> None:
        """A request naming police but signed by assist's key gets 403 and is audited."""
        status, _ = await _post(pending_client, _key(layout, ASSIST), POLICE, POLICE)
        assert (status, pending_requests(layout)) == (403, [])
        assert [e["reason"] for e in _audit(layout)] == ["bad_signature"]

    async def test_a_dev_server_issues_the_renewal_at_once(
        self, layout: FederationLayout, issuing_client: Client
    ) -> None:
        """With ``--issue-renewals`` the answer names the manifest serial carrying it."""
        before = _cert(layout, POLICE)
        status, body = await _post(issuing_client, _key(layout, POLICE), POLICE, POLICE)
        after = _cert(layout, POLICE)
        assert (status, body["status"], body["serial"]) == (200, "issued", 2)
        assert after.not_valid_after_utc == DUE + timedelta(days=365)
        assert after.not_valid_before_utc == before.not_valid_before_utc

    async def test_a_renewal_that_cannot_be_issued_stays_pending(
        self, layout: FederationLayout, issuing_client: Client
    ) -> None:
        """Without the CA key the dev server answers 202 and keeps the request, never a 500."""
        layout.root_key.unlink()
        status, body = await _post(issuing_client, _key(layout, POLICE), POLICE, POLICE)
        assert (status, body["status"]) == (202, "pending")
        assert [r.agency for r in pending_requests(layout)] == [POLICE]


class TestIssuePending:
    async def test_the_scheduled_job_issues_pending_requests_in_one_serial(
        self, layout: FederationLayout, pending_client: Client
    ) -> None:
        """``agency renew --pending`` renews both waiting agencies in the next serial."""
        for agency in (POLICE, ASSIST):
            await _post(pending_client, _key(layout, agency), agency, agency)
        assert _cli(layout, DUE, "agency", "renew", "--pending") == 0
        ends = {a: _cert(layout, a).not_valid_after_utc for a in (POLICE, ASSIST)}
        assert ends == {POLICE: DUE + timedelta(days=365), ASSIST: DUE + timedelta(days=365)}
        assert (load_state(layout).serial, pending_requests(layout)) == (2, [])

    def test_the_scheduled_job_with_nothing_pending_publishes_nothing(
        self, layout: FederationLayout
    ) -> None:
        """No request, no new serial: the job can run every hour."""
        assert _cli(layout, DUE, "agency", "renew", "--pending") == 0
        assert load_state(layout).serial == 1

    async def test_an_agent_holding_the_old_manifest_accepts_the_renewal(
        self, layout: FederationLayout, pending_client: Client
    ) -> None:
        """The next serial, carrying the renewed certificate, verifies for an agent."""
        held = _held(layout)
        await _post(pending_client, _key(layout, POLICE), POLICE, POLICE)
        _cli(layout, DUE, "agency", "renew", "--pending")
        state = _accept(layout, held, DUE)
        identity = state.manifest.signing_key_of(POLICE) if state.manifest else None
        assert identity is not None
        assert identity.valid_at(NOW + timedelta(days=400))


EXPIRED = NOW + timedelta(days=366)  # every 365-day certificate (agencies, signer) has ended


class TestRecoveryAfterExpiry:
    def test_after_expiry_the_manifest_can_no_longer_be_built(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The fault: past the signer certificate's end ``manifest build`` is refused."""
        assert _cli(layout, EXPIRED, "manifest", "build") == 1
        assert "signer_untrusted" in capsys.readouterr().err

    def test_renewing_the_signer_then_reissuing_recovers_the_federation(
        self, layout: FederationLayout
    ) -> None:
        """``manifest renew-signer`` then ``agency reissue`` publish a manifest agents accept."""
        assert _cli(layout, EXPIRED, "manifest", "renew-signer") == 0
        reason = "certificate lapsed; the renewal job was not installed"
        assert _cli(layout, EXPIRED, "agency", "reissue", "--id", POLICE, "--reason", reason) == 0
        root = pki.certificate_from_bytes(layout.root_cert.read_bytes())
        manifest = verify_manifest(
            layout.manifest.read_bytes(), root_cert=root, pinned_fingerprint=pki.fingerprint(root),
            now=EXPIRED, current_serial=1,
        )  # fmt: skip
        identity = manifest.signing_key_of(POLICE)
        assert identity is not None
        assert identity.valid_at(EXPIRED)

    def test_a_reissue_records_the_operators_reason(self, layout: FederationLayout) -> None:
        """The operator's decision is in the renewal audit, with the new end."""
        _cli(layout, EXPIRED, "manifest", "renew-signer")
        _cli(layout, EXPIRED, "agency", "reissue", "--id", POLICE, "--reason", "lapsed")
        reissued = [e for e in _audit(layout) if e["event"] == "reissued"]
        assert [(e["agency"], e["reason"]) for e in reissued] == [(POLICE, "lapsed")]

    def test_a_revoked_agency_is_never_reissued(self, layout: FederationLayout) -> None:
        """Reissue refuses a revoked agency (exit 1) and publishes nothing."""
        _cli(layout, NOW, "agency", "revoke", "--id", POLICE, "--reason", "left")
        assert _cli(layout, NOW, "agency", "reissue", "--id", POLICE, "--reason", "x") == 1
        assert load_state(layout).serial == 2


class TestSignerRenewal:
    def test_a_signer_not_due_is_left_alone(self, layout: FederationLayout) -> None:
        """With a 60-day lead a signer ending in 365 days is not renewed."""
        assert _cli(layout, NOW, "manifest", "renew-signer", "--within-days", "60") == 0
        assert load_state(layout).serial == 1

    def test_agents_accept_the_next_serial_past_the_old_signer_end(
        self, layout: FederationLayout
    ) -> None:
        """Renewed within the lead, the next manifest verifies after the old signer ended."""
        held = _held(layout)
        _cli(layout, NOW + timedelta(days=360), "manifest", "renew-signer", "--within-days", "60")
        state = _accept(layout, held, NOW + timedelta(days=366))
        assert state.manifest is not None
        assert state.manifest.serial == 2

    def test_without_renewal_that_manifest_would_be_refused(self, layout: FederationLayout) -> None:
        """The fault pinned: a manifest signed under the old signer is refused after its end."""
        held = _held(layout)
        _cli(layout, NOW + timedelta(days=360), "manifest", "build")
        with pytest.raises(ManifestRejected) as info:
            _accept(layout, held, NOW + timedelta(days=366))
        assert info.value.reason == "signer_untrusted"
