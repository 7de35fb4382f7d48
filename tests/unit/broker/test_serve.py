"""``broker.serve``: the manifest over HTTP with ETag, re-read on change, last good kept."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from broker.agency import revoke_agency
from broker.fedstate import FederationLayout
from broker.serve import ManifestFile, create_app, etag_matches
from tests.unit.broker.conftest import NOW

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(layout: FederationLayout) -> AsyncIterator[Client]:
    """An HTTP client for a server over ``layout``'s manifest."""
    async with TestClient(
        TestServer(create_app(ManifestFile(layout), clock=lambda: NOW))
    ) as test_client:
        yield test_client


def quoted_sha256(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest() + '"'


class TestGetManifest:
    async def test_serves_the_exact_file_with_its_sha256_as_etag(
        self, layout: FederationLayout, client: Client
    ) -> None:
        """200, the file's bytes, ETag = quoted SHA-256, no-cache, the serial in a header."""
        response = await client.get("/manifest")
        data = layout.manifest.read_bytes()
        assert response.status == 200
        assert await response.read() == data
        assert response.headers["ETag"] == quoted_sha256(data)
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Manifest-Serial"] == "1"
        assert response.content_type == "application/json"

    async def test_answers_304_to_the_current_etag(
        self, layout: FederationLayout, client: Client
    ) -> None:
        """If-None-Match with the current ETag: 304, no body, the same ETag."""
        etag = quoted_sha256(layout.manifest.read_bytes())
        response = await client.get("/manifest", headers={"If-None-Match": etag})
        assert response.status == 304
        assert await response.read() == b""
        assert response.headers["ETag"] == etag

    async def test_answers_200_to_a_stale_etag(
        self, layout: FederationLayout, client: Client
    ) -> None:
        """An old ETag gets the whole new file."""
        response = await client.get("/manifest", headers={"If-None-Match": '"' + "0" * 64 + '"'})
        assert response.status == 200
        assert await response.read() == layout.manifest.read_bytes()

    async def test_picks_up_a_new_serial_without_restarting(
        self, layout: FederationLayout, client: Client
    ) -> None:
        """After a revocation publishes serial 2, the old ETag no longer matches."""
        old = quoted_sha256(layout.manifest.read_bytes())
        revoke_agency(layout, agency_id="assist", reason="SYN", now=NOW)
        response = await client.get("/manifest", headers={"If-None-Match": old})
        assert response.status == 200
        assert response.headers["X-Manifest-Serial"] == "2"
        assert response.headers["ETag"] == quoted_sha256(layout.manifest.read_bytes())

    async def test_keeps_serving_the_last_good_file_when_the_new_one_is_broken(
        self, layout: FederationLayout, client: Client
    ) -> None:
        """A corrupted file is not served; the verified one stays, /healthz says why."""
        good = layout.manifest.read_bytes()
        await client.get("/manifest")
        layout.manifest.write_bytes(good.replace(b'"serial":1', b'"serial":9'))
        response = await client.get("/manifest")
        health = await (await client.get("/healthz")).json()
        assert (response.status, await response.read()) == (200, good)
        assert (health["status"], health["serial"]) == ("degraded", 1)
        assert "bad_signature" in health["error"]

    async def test_is_503_when_there_never_was_a_manifest(self, layout: FederationLayout) -> None:
        """No file at start: a problem document, not an empty 200."""
        layout.manifest.unlink()
        async with TestClient(
            TestServer(create_app(ManifestFile(layout), clock=lambda: NOW))
        ) as fresh:
            response = await fresh.get("/manifest")
            problem = await response.json(content_type=None)
        assert response.status == 503
        assert response.content_type == "application/problem+json"
        assert "cannot read" in problem["detail"]


class TestHealthz:
    async def test_reports_the_serial_and_etag_served(
        self, layout: FederationLayout, client: Client
    ) -> None:
        """200 ok with serial, expiry and ETag."""
        response = await client.get("/healthz")
        body = await response.json()
        assert response.status == 200
        assert body == {
            "status": "ok",
            "serial": 1,
            "expires_at": "2026-12-01T12:00:00Z",
            "etag": quoted_sha256(layout.manifest.read_bytes()),
            "error": None,
        }

    async def test_is_503_when_the_file_disappeared_before_first_use(
        self, layout: FederationLayout
    ) -> None:
        """Nothing valid to serve: 503 unavailable with the reason."""
        os.remove(layout.manifest)
        async with TestClient(
            TestServer(create_app(ManifestFile(layout), clock=lambda: NOW))
        ) as fresh:
            response = await fresh.get("/healthz")
            body = await response.json()
        assert (response.status, body["status"], body["serial"]) == (503, "unavailable", None)

    async def test_is_503_expired_once_the_manifest_expired(self, layout: FederationLayout) -> None:
        """Past expires_at the server says so (agents would fail closed)."""
        later = NOW + timedelta(days=8)
        async with TestClient(
            TestServer(create_app(ManifestFile(layout), clock=lambda: later))
        ) as c:
            response = await c.get("/healthz")
            body = await response.json()
        assert (response.status, body["status"], body["serial"]) == (503, "expired", 1)


class TestEtagMatches:
    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            ('"abc"', True),
            ('W/"abc"', True),
            ('"x", "abc"', True),
            ("*", True),
            ('"abd"', False),
            ("abc", False),
            ("", False),
            (None, False),
        ],
    )
    def test_weak_comparison_over_a_list(self, header: str | None, expected: bool) -> None:
        """If-None-Match lists, weak tags and * are honoured (RFC 9110 13.1.2)."""
        assert etag_matches(header, '"abc"') is expected
