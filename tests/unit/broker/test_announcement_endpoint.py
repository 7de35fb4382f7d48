"""Specification of ``POST /v1/announcements/{agency}`` on ``isa-broker serve`` (issue 15.2):
an agency's signed key announcement reaches the next manifest with no operator hand-off, and
only the agency's own signature counts."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from broker.agency import revoke_agency
from broker.devfed import create_dev_federation
from broker.fedstate import FederationLayout
from broker.serve import ManifestFile, create_app
from federation.canonical import canonical_json
from federation.keyfile import load_signing_key
from federation.keys import EncryptionKey, KeyAnnouncement, SigningKey, announce
from federation.manifest import unverified_document

REPO = Path(__file__).resolve().parents[3]
BUILT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
NOW = BUILT + timedelta(hours=1)
URL = "/v1/announcements/police-scotland"
Client = TestClient[web.Request, web.Application]


@pytest.fixture(scope="module")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("announce") / "fed"
    create_dev_federation(
        root, policies=REPO / "policies", now=BUILT,
        agencies=["police-scotland", "assist"], vhost="syn-unit-never-provisioned",
    )  # fmt: skip
    return root


@pytest.fixture
def layout(_template: Path, tmp_path: Path) -> FederationLayout:
    root = tmp_path / "fed"
    shutil.copytree(_template, root)
    return FederationLayout(root)


@pytest.fixture
async def client(layout: FederationLayout) -> AsyncIterator[Client]:
    app = create_app(ManifestFile(layout), clock=lambda: NOW)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def _key(layout: FederationLayout, agency: str) -> SigningKey:
    path = layout.agency_dir(agency) / "keys" / "signing.key"
    return load_signing_key(path.read_bytes(), mode=path.stat().st_mode)


def _note(
    key: SigningKey, agency: str = "police-scotland", start: datetime = NOW, days: int = 30
) -> KeyAnnouncement:
    public = EncryptionKey.generate().public
    end = start + timedelta(days=days)
    return announce(key, agency=agency, public_key=public, not_before=start, not_after=end)


async def _post(client: Client, body: KeyAnnouncement | bytes, url: str = URL) -> tuple[int, Any]:
    data = canonical_json(body.model_dump()) if isinstance(body, KeyAnnouncement) else body
    async with client.post(url, data=data) as response:
        return response.status, await response.json(content_type=None)


def _published(layout: FederationLayout, agency: str = "police-scotland") -> list[str]:
    document = unverified_document(layout.manifest.read_bytes())
    [entry] = [a for a in document.agencies if a.id == agency]
    return [a.kid for a in entry.announcements]


class TestAnnouncementEndpoint:
    async def test_a_signed_announcement_is_published_in_the_next_serial(
        self, layout: FederationLayout, client: Client
    ) -> None:
        """A good announcement is answered 201 with serial 2, and manifest 2 carries its kid."""
        note = _note(_key(layout, "police-scotland"))
        status, body = await _post(client, note)
        assert (status, body["status"], body["serial"]) == (201, "accepted", 2)
        assert note.kid in _published(layout)
        async with client.get("/manifest") as response:
            assert response.headers["X-Manifest-Serial"] == "2"

    async def test_the_same_announcement_again_changes_nothing(
        self, layout: FederationLayout, client: Client
    ) -> None:
        """A retry of an accepted announcement is 200 unchanged and publishes no new serial."""
        note = _note(_key(layout, "police-scotland"))
        await _post(client, note)
        status, body = await _post(client, note)
        assert (status, body["status"], body["serial"]) == (200, "unchanged", None)
        assert unverified_document(layout.manifest.read_bytes()).serial == 2

    async def test_a_tampered_announcement_is_refused_with_403(
        self, layout: FederationLayout, client: Client
    ) -> None:
        """An announcement whose not_after was moved after signing is 403 and not stored."""
        note = _note(_key(layout, "police-scotland"))
        forged = note.model_copy(update={"not_after": "2027-03-01T09:00:00Z"})
        status, body = await _post(client, forged)
        assert (status, "bad_signature" in body["detail"]) == (403, True)
        assert note.kid not in _published(layout)
        assert not (layout.announcements("police-scotland") / f"{note.kid}.json").exists()

    async def test_a_key_signed_by_another_agency_is_refused(
        self, layout: FederationLayout, client: Client
    ) -> None:
        """assist signing a key in police-scotland's name (an injection) is 403."""
        note = _note(_key(layout, "assist"), agency="police-scotland")
        assert (await _post(client, note))[0] == 403

    async def test_an_announcement_posted_for_another_agency_is_refused(
        self, layout: FederationLayout, client: Client
    ) -> None:
        """assist's own announcement posted under police-scotland's path is 400."""
        note = _note(_key(layout, "assist"), agency="assist")
        status, body = await _post(client, note)
        assert (status, "agency_mismatch" in body["detail"]) == (400, True)

    async def test_a_replayed_older_announcement_is_refused(
        self, layout: FederationLayout, client: Client
    ) -> None:
        """A key starting before the newest held key (a replay) is 409 stale."""
        key = _key(layout, "police-scotland")
        await _post(client, _note(key))
        status, body = await _post(client, _note(key, start=NOW - timedelta(minutes=30)))
        assert (status, "stale" in body["detail"]) == (409, True)

    async def test_a_lapsed_key_is_refused(self, layout: FederationLayout, client: Client) -> None:
        """A key whose not_after has passed is 422 (window)."""
        note = _note(_key(layout, "police-scotland"), start=NOW - timedelta(days=2), days=1)
        assert (await _post(client, note))[0] == 422

    @pytest.mark.parametrize("body", [b"", b"{", b'{"agency": "police-scotland"}', b"[]"])
    async def test_a_malformed_body_is_400(self, client: Client, body: bytes) -> None:
        """Bodies that are not an announcement are 400 problem documents, never 500."""
        status, problem = await _post(client, body)
        assert (status, problem["title"]) == (400, "Key announcement refused")

    async def test_an_oversized_body_is_413(self, client: Client) -> None:
        """A body over 4096 bytes is refused before it is parsed."""
        assert (await _post(client, b"x" * 5000))[0] == 413

    async def test_a_revoked_agency_cannot_announce(
        self, layout: FederationLayout, client: Client
    ) -> None:
        """Once the served manifest revokes police-scotland its announcements are 403."""
        revoke_agency(layout, agency_id="police-scotland", reason="SYN test", now=BUILT)
        status, body = await _post(client, _note(_key(layout, "police-scotland")))
        assert (status, "revoked" in body["detail"]) == (403, True)
