"""Specification of the agent's announcer (issue 15.2): a rotated key's signed announcement is
posted to the manifest server until accepted, and each outcome is audited once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from agent.announcer import Announcer
from agent.keyrotation import KeyringHolder
from broker.fedstate import FederationLayout
from broker.serve import ManifestFile, create_app
from federation import pki
from federation.canonical import canonical_json
from federation.keys import EncryptionKey, KeyAnnouncement, Keyring, announce
from federation.manifest import Manifest, reload_manifest
from tests.support.federation import free_port
from tests.unit.agent.fakes import ListAudit
from tests.unit.broker.test_announcement_endpoint import NOW, _key, _template, layout

__all__ = ["_template", "layout"]  # fixtures shared with the endpoint's specification


@dataclass
class HeldManifest:
    """What the agent's trust holder would hold (``agent.trust.Trust.manifest``)."""

    manifest: Manifest | None


def _manifest(layout: FederationLayout) -> Manifest:
    root = pki.certificate_from_bytes(layout.root_cert.read_bytes())
    data = layout.manifest.read_bytes()
    return reload_manifest(data, root_cert=root, pinned_fingerprint=pki.fingerprint(root))


def _rotated(layout: FederationLayout, data_dir: Path) -> tuple[KeyringHolder, KeyAnnouncement]:
    """A keyring holding one new key, and its announcement where the rotator writes it."""
    key, keyring = EncryptionKey.generate(), Keyring()
    keyring.add(key, NOW)
    note = announce(
        _key(layout, "police-scotland"), agency="police-scotland", public_key=key.public,
        not_before=NOW, not_after=NOW + keyring.policy.rotate_every,
    )  # fmt: skip
    (data_dir / "announcements").mkdir(parents=True)
    (data_dir / "announcements" / f"{note.kid}.json").write_bytes(canonical_json(note.model_dump()))
    return KeyringHolder(keyring, lambda: keyring), note


@pytest.fixture
async def server(layout: FederationLayout) -> AsyncIterator[str]:
    app = create_app(ManifestFile(layout), clock=lambda: NOW)
    async with TestServer(app) as test_server:
        yield str(test_server.make_url("/v1/announcements/police-scotland"))


async def _announcer(
    layout: FederationLayout, tmp_path: Path, url: str, audit: ListAudit
) -> tuple[Announcer, KeyAnnouncement, aiohttp.ClientSession]:
    keys, note = _rotated(layout, tmp_path / "data")
    session = aiohttp.ClientSession()
    announcer = Announcer(
        agency="police-scotland", data_dir=tmp_path / "data", keys=keys,
        trust=HeldManifest(_manifest(layout)), url=url, session=session, audit=audit,
        clock=lambda: NOW,
    )  # fmt: skip
    return announcer, note, session


class TestAnnouncer:
    async def test_a_rotated_key_is_posted_and_audited_once(
        self, layout: FederationLayout, tmp_path: Path, server: str
    ) -> None:
        """The first pass posts it (one 'announced' entry); the next pass posts nothing."""
        audit = ListAudit()
        announcer, note, session = await _announcer(layout, tmp_path, server, audit)
        async with session:
            assert await announcer.announce_pending() == [note.kid]
            assert await announcer.announce_pending() == []
        assert [(e.action, e.outcome) for e, _, _ in audit.entries] == [
            ("key_rotation", "announced")
        ]
        assert note.kid in {
            a.kid for a in _manifest(layout).agency("police-scotland").announcements
        }  # type: ignore[union-attr]

    async def test_an_unreachable_server_leaves_it_pending(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """Nothing listening: no audit entry, and the announcement is still pending."""
        audit = ListAudit()
        url = f"http://127.0.0.1:{free_port()}/v1/announcements/police-scotland"
        announcer, note, session = await _announcer(layout, tmp_path, url, audit)
        async with session:
            assert await announcer.announce_pending() == []
            assert [n.kid for n in await announcer.pending(NOW)] == [note.kid]
        assert audit.entries == []

    async def test_a_refused_announcement_is_audited_once_and_retried(
        self, layout: FederationLayout, tmp_path: Path, server: str
    ) -> None:
        """A tampered file is refused (403) at every pass but audited once."""
        audit = ListAudit()
        announcer, note, session = await _announcer(layout, tmp_path, server, audit)
        forged = note.model_copy(update={"not_after": "2027-01-01T00:00:00Z"})
        path = tmp_path / "data" / "announcements" / f"{note.kid}.json"
        path.write_bytes(canonical_json(forged.model_dump()))
        async with session:
            assert await announcer.announce_pending() == []
            assert await announcer.announce_pending() == []
        assert [e.outcome for e, _, _ in audit.entries] == ["announcement_refused"]
