"""The sending gate of ``agent.renewal`` rule 4: an agency whose own certificate has ended is
refused at submit, instead of being accepted and refused by every recipient (issue 15.3)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agent.errors import SenderCertificateExpired
from federation import pki
from federation.canonical import b64url_encode
from federation.manifest import TrustState
from tests.support.memory_store import MemoryStore
from tests.unit.agent.fakes import (
    CALLER,
    FED,
    MANIFEST,
    NOW,
    SENDER,
    FixedTrust,
    ListAudit,
    request,
    service,
)


def _manifest_with_sender_certificate_ending(delta: timedelta) -> TrustState:
    keys = FED.agencies[SENDER]
    cert = FED.issue(SENDER, keys.signing.verify_key, serial=77, not_after=NOW + delta)
    agencies = [
        e.model_copy(update={"certificate": b64url_encode(pki.certificate_to_der(cert))})
        if e.id == SENDER
        else e
        for e in MANIFEST.document.agencies
    ]
    document = MANIFEST.document.model_copy(update={"agencies": agencies})
    return TrustState(FED.manifest(document))


class TestOwnCertificateGate:
    async def test_submit_with_an_expired_own_certificate_is_refused_and_stores_nothing(
        self,
    ) -> None:
        """503 (TrustUnavailable) naming the certificate, and nothing queued."""
        store = MemoryStore()
        trust = FixedTrust(state=_manifest_with_sender_certificate_ending(-timedelta(hours=1)))
        with pytest.raises(SenderCertificateExpired, match="our agency certificate expired"):
            await service(store, ListAudit(), trust=trust).submit(CALLER, request())
        assert await store.outbox_depth() == 0

    async def test_submit_with_a_certificate_ending_later_is_queued(self) -> None:
        """A certificate still valid, even near its end, lets the referral through."""
        store = MemoryStore()
        trust = FixedTrust(state=_manifest_with_sender_certificate_ending(timedelta(hours=1)))
        answer = await service(store, ListAudit(), trust=trust).submit(CALLER, request())
        assert (answer.status, await store.outbox_depth()) == ("queued", 1)
