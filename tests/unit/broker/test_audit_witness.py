"""Specification of the audit witness in ``isa-broker serve`` (review issue 13, point 6): it
keeps the latest signed audit head per agency and refuses forged, foreign, rolled-back and
forked heads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from broker.devfed import DevFederation, create_dev_federation
from broker.serve import AuditHeads, ManifestFile, create_app
from federation.audit_head import AuditHead, sign_head
from federation.keyfile import load_signing_key
from federation.keys import SigningKey

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
URL = "/v1/audit-heads/police-scotland"
Client = TestClient[web.Request, web.Application]


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> DevFederation:
    return create_dev_federation(
        tmp_path_factory.mktemp("witness") / "fed", policies=REPO / "policies", now=NOW,
        agencies=["police-scotland", "assist"], vhost="syn-unit-never-provisioned",
    )  # fmt: skip


def _key(fed: DevFederation, agency: str) -> SigningKey:
    path = fed.agency(agency).config.parent / "keys" / "signing.key"
    return load_signing_key(path.read_bytes(), mode=path.stat().st_mode)


def _head(key: SigningKey, seq: int, digest: int = 1, agency: str = "police-scotland") -> AuditHead:
    entry_hash = bytes([digest]) * 32
    return sign_head(key, agency=agency, seq=seq, entry_hash=entry_hash, at=NOW)


@pytest.fixture
async def client(fed: DevFederation, tmp_path: Path) -> AsyncIterator[Client]:
    app = create_app(ManifestFile(fed.layout), clock=lambda: NOW, heads=AuditHeads(tmp_path))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def _post(client: Client, head: AuditHead | dict[str, Any], url: str = URL) -> int:
    body = head.model_dump(mode="json") if isinstance(head, AuditHead) else head
    async with client.post(url, json=body) as response:
        return response.status


async def _held(client: Client) -> Any:
    async with client.get(URL) as response:
        return response.status, await response.json(content_type=None)


class TestAuditWitness:
    async def test_a_signed_head_is_kept_and_served_back(
        self, fed: DevFederation, client: Client
    ) -> None:
        """A good head is accepted and GET answers it exactly."""
        head = _head(_key(fed, "police-scotland"), 23)
        assert await _post(client, head) == 200
        assert await _held(client) == (200, head.model_dump(mode="json"))

    async def test_no_head_held_is_404(self, client: Client) -> None:
        """An agency that never posted has no head: 404, not an empty 200."""
        assert (await _held(client))[0] == 404

    async def test_a_head_with_a_bad_signature_is_refused(
        self, fed: DevFederation, client: Client
    ) -> None:
        """A head altered after signing (seq raised) is refused with 403 and not kept."""
        forged = _head(_key(fed, "police-scotland"), 23).model_dump(mode="json") | {"seq": 99}
        assert await _post(client, forged) == 403
        assert (await _held(client))[0] == 404

    async def test_another_agencys_head_is_refused(
        self, fed: DevFederation, client: Client
    ) -> None:
        """assist's key cannot set police-scotland's head (403), nor post its own under it (400)."""
        assist = _key(fed, "assist")
        assert await _post(client, _head(assist, 5, agency="police-scotland")) == 403
        assert await _post(client, _head(assist, 5, agency="assist")) == 400
        assert (await _held(client))[0] == 404

    async def test_a_rollback_is_refused_and_the_held_head_kept(
        self, fed: DevFederation, client: Client
    ) -> None:
        """A lower seq than the held one is refused with 409."""
        key = _key(fed, "police-scotland")
        assert await _post(client, _head(key, 23)) == 200
        assert await _post(client, _head(key, 19)) == 409
        assert (await _held(client))[1]["seq"] == 23

    async def test_a_fork_at_the_held_seq_is_refused(
        self, fed: DevFederation, client: Client
    ) -> None:
        """Another entry hash at the held seq is refused with 409; the same head is a no-op."""
        key = _key(fed, "police-scotland")
        assert await _post(client, _head(key, 23, digest=1)) == 200
        assert await _post(client, _head(key, 23, digest=2)) == 409
        assert await _post(client, _head(key, 23, digest=1)) == 200
        assert (await _held(client))[1]["entry_hash"] == "01" * 32

    async def test_a_malformed_body_is_a_clear_400(self, client: Client) -> None:
        """Junk, a wrong type or an unknown field gets 400 problem+json, never a 500."""
        for body in ({"seq": "x"}, {"junk": 1}, []):
            async with client.post(URL, json=body) as response:
                assert (response.status, response.content_type) == (400, "application/problem+json")

    async def test_an_oversized_body_is_refused(self, client: Client) -> None:
        """A body over the head size limit is refused, not read."""
        async with client.post(URL, data=b"{" + b" " * 10_000 + b"}") as response:
            assert response.status == 413

    async def test_the_held_head_survives_a_restart(
        self, fed: DevFederation, tmp_path: Path
    ) -> None:
        """The head is on disk: a new server over the same directory serves it."""
        head = _head(_key(fed, "police-scotland"), 7)
        for expected in (200, 409):
            app = create_app(ManifestFile(fed.layout), heads=AuditHeads(tmp_path / "heads"))
            async with TestClient(TestServer(app)) as client:
                if expected == 200:
                    assert await _post(client, head) == 200
                else:
                    assert await _post(client, _head(_key(fed, "police-scotland"), 6)) == 409
                    assert (await _held(client))[1] == head.model_dump(mode="json")
