"""``agent.renewal``: the agent asks for its certificate's renewal when it is due and installs the
answer by polling the manifest, with no operator hand-off and no restart (issue 15.3)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from agent.config import TrustSettings
from agent.renewal import CertificateRenewer, renewal_url
from agent.trust import TrustHolder
from broker.fedstate import FederationLayout
from broker.renewals import RenewalDesk, audit_file
from broker.serve import ManifestFile, create_app
from federation import pki
from federation.keyfile import load_signing_key
from tests.unit.broker.conftest import NOW, _template, layout

__all__ = ["_template", "layout"]  # the broker tests' dev federation, copied per test

AGENCY = "police-scotland"
DUE = NOW + timedelta(days=320)  # its 365-day certificate ends within the 60-day lead
LEAD = timedelta(days=60)


def _settings(layout: FederationLayout, url: str) -> TrustSettings:
    root = pki.certificate_from_bytes(layout.root_cert.read_bytes())
    return TrustSettings(
        root_certificate=layout.root_cert, root_fingerprint=pki.fingerprint(root),
        manifest_url=url, policies_dir=layout.policies,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def _renewer(
    layout: FederationLayout, tmp_path: Path, now: datetime, *, issue: bool
) -> AsyncIterator[tuple[CertificateRenewer, TrustHolder]]:
    """A renewer for police over the real manifest server, its holder at serial 1."""
    app = create_app(ManifestFile(layout), clock=lambda: now,
                     renewals=RenewalDesk(layout, issue=issue))  # fmt: skip
    path = layout.agency_dir(AGENCY) / "keys" / "signing.key"
    key = load_signing_key(path.read_bytes(), mode=path.stat().st_mode)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        settings = _settings(layout, str(server.make_url("/manifest")))
        holder = TrustHolder(settings, tmp_path / "data", clock=lambda: now)
        assert await holder.refresh(NOW)
        url = renewal_url(settings, AGENCY)
        assert url is not None
        yield CertificateRenewer(holder, key, agency=AGENCY, url=url, session=session,
                                 clock=lambda: now, lead=LEAD), holder  # fmt: skip


def _events(layout: FederationLayout) -> list[str]:
    path = audit_file(layout)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return [json.loads(line)["event"] for line in lines]


class TestCertificateRenewer:
    async def test_a_due_certificate_is_renewed_and_installed_without_a_restart(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """Within the lead the agent asks, the dev server issues, the holder applies it."""
        async with _renewer(layout, tmp_path, DUE, issue=True) as (renewer, holder):
            assert await renewer.renew_if_due() == "issued"
        identity = holder.manifest.signing_key_of(AGENCY) if holder.manifest else None
        assert holder.manifest is not None
        assert holder.manifest.serial == 2
        assert identity is not None
        assert identity.not_after == DUE + timedelta(days=365)

    async def test_a_certificate_not_due_is_not_asked_for(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """Outside the lead time nothing is posted."""
        async with _renewer(layout, tmp_path, NOW, issue=True) as (renewer, _holder):
            assert await renewer.renew_if_due() is None
        assert _events(layout) == []

    async def test_a_pending_request_is_not_posted_again_at_once(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """While the offline CA has not issued it, the request is not repeated every poll."""
        async with _renewer(layout, tmp_path, DUE, issue=False) as (renewer, _holder):
            answers = [await renewer.renew_if_due(), await renewer.renew_if_due()]
        assert (answers, _events(layout)) == (["pending", None], ["requested"])


class TestRenewalUrl:
    def test_the_renewal_endpoint_sits_beside_the_manifest(self, layout: FederationLayout) -> None:
        """``http://h:p/manifest`` -> ``http://h:p/v1/renewals/<agency>``."""
        url = renewal_url(_settings(layout, "http://127.0.0.1:8440/manifest?x=1"), AGENCY)
        assert url == f"http://127.0.0.1:8440/v1/renewals/{AGENCY}"

    def test_a_manifest_file_has_no_renewal_endpoint(self, layout: FederationLayout) -> None:
        """With a file source nothing is posted: the operator reissues by hand."""
        settings = _settings(layout, "http://x/manifest").model_copy(
            update={"manifest_url": None, "manifest_file": layout.manifest}
        )
        assert renewal_url(settings, AGENCY) is None


class TestNextRootSetting:
    def test_a_next_root_without_its_fingerprint_is_a_config_error(
        self, layout: FederationLayout
    ) -> None:
        """The second pin comes as a pair, or not at all."""
        with pytest.raises(ValueError, match="together"):
            TrustSettings.model_validate(
                _settings(layout, "http://x/manifest").model_dump()
                | {"next_root_certificate": layout.root_cert}
            )
