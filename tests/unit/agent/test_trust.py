"""``agent.trust.TrustHolder``: apply newer manifests; otherwise keep the current one, say why."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import agent.trust as trust_module
from agent.config import TrustSettings
from agent.trust import TrustHolder
from broker.agency import revoke_agency
from broker.fedstate import FederationLayout, read_private
from federation import pki
from federation.keys import SigningKey
from federation.manifest import Manifest, build_manifest, unverified_document
from tests.unit.broker.conftest import NOW, _template, layout

__all__ = ["_template", "layout"]  # the broker tests' dev federation, copied per test

SOON = NOW + timedelta(minutes=1)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def settings(layout: FederationLayout, source: Path | str, poll: float = 60.0) -> TrustSettings:
    root = pki.certificate_from_bytes(layout.root_cert.read_bytes())
    location = {"manifest_url": source} if isinstance(source, str) else {"manifest_file": source}
    return TrustSettings(
        root_certificate=layout.root_cert,
        root_fingerprint=pki.fingerprint(root),
        manifest_poll_seconds=poll,
        policies_dir=layout.policies,
        **location,
    )


def holder_at_serial_2(layout: FederationLayout, tmp_path: Path) -> tuple[TrustHolder, bytes]:
    """A holder that accepted serial 2 (a revocation); returns it and the serial-1 bytes."""
    serial_1 = layout.manifest.read_bytes()
    revoke_agency(layout, agency_id="assist", reason="SYN", now=NOW)
    holder = TrustHolder(settings(layout, layout.manifest), tmp_path / "data")
    assert holder.offer(layout.manifest.read_bytes(), SOON)
    return holder, serial_1


def next_serial_signed_by(
    layout: FederationLayout, key: SigningKey, cert_bytes: bytes | None = None
) -> bytes:
    """The current manifest's content as the next serial, signed by ``key`` (and its cert)."""
    document = unverified_document(layout.manifest.read_bytes())
    document = document.model_copy(update={"serial": document.serial + 1})
    if cert_bytes is None:
        other_root = pki.make_root(
            key, name="SYN rogue root", not_before=NOW, not_after=NOW + timedelta(days=30)
        )
        cert = pki.issue_certificate(
            root_key=key, root_cert=other_root, subject="manifest-signer",
            public_key=key.verify_key, role=pki.CertificateRole.MANIFEST_SIGNER, not_before=NOW,
            not_after=NOW + timedelta(days=30), serial=7,
        )  # fmt: skip
    else:
        cert = pki.certificate_from_bytes(cert_bytes)
    return build_manifest(document, signer_key=key, signer_cert=cert)


class TestOffer:
    def test_applies_a_newer_serial_and_tells_listeners(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """Serial 1 then 2: both applied; the listener sees (1, 2); no error remains."""
        holder = TrustHolder(settings(layout, layout.manifest), tmp_path / "data")
        seen: list[tuple[int | None, int]] = []
        holder.on_change(lambda old, new: seen.append((old.serial if old else None, new.serial)))
        assert holder.offer(layout.manifest.read_bytes(), SOON)
        revoke_agency(layout, agency_id="assist", reason="SYN", now=NOW)
        assert holder.offer(layout.manifest.read_bytes(), SOON)
        assert seen == [(None, 1), (1, 2)]
        assert holder.last_error is None
        assert (tmp_path / "data" / "manifest.json").read_bytes() == layout.manifest.read_bytes()

    def test_keeps_the_current_manifest_when_fed_an_older_serial(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """Rollback: serial 1 after 2 is refused; serial 2 stays; last_error says why."""
        holder, serial_1 = holder_at_serial_2(layout, tmp_path)
        assert holder.offer(serial_1, SOON) is False
        assert holder.manifest is not None
        assert holder.manifest.serial == 2
        assert holder.last_error == "manifest refused: manifest rejected: rollback (serial 1 <= 2)"

    def test_keeps_the_current_manifest_when_the_signer_is_not_certified(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """A higher serial signed by a key the federation root never certified is refused."""
        holder, _ = holder_at_serial_2(layout, tmp_path)
        forged = next_serial_signed_by(layout, SigningKey.generate())
        assert holder.offer(forged, SOON) is False
        assert holder.manifest is not None
        assert holder.manifest.serial == 2
        assert holder.last_error is not None
        assert "signer_untrusted" in holder.last_error

    def test_refuses_a_manifest_signed_with_an_agency_certificate(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """An agency's certified key is not a manifest signer (wrong certificate usage)."""
        holder, _ = holder_at_serial_2(layout, tmp_path)
        agency_key = read_private(layout.agency_dir("police-scotland") / "keys" / "signing.key")
        cert = layout.agency_cert("police-scotland").read_bytes()
        forged = next_serial_signed_by(layout, agency_key, cert)
        assert holder.offer(forged, SOON) is False
        assert holder.last_error is not None
        assert "signer_untrusted (certificate_usage)" in holder.last_error

    def test_refuses_an_expired_manifest(self, layout: FederationLayout, tmp_path: Path) -> None:
        """Offered after its expiry, even a first manifest is refused."""
        holder = TrustHolder(settings(layout, layout.manifest), tmp_path / "data")
        assert holder.offer(layout.manifest.read_bytes(), NOW + timedelta(days=8)) is False
        assert holder.manifest is None
        assert holder.last_error is not None
        assert "expired" in holder.last_error

    def test_refuses_bytes_that_are_not_a_manifest(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """Garbage is refused as malformed, never an exception."""
        holder, _ = holder_at_serial_2(layout, tmp_path)
        assert holder.offer(b"<html>proxy error</html>", SOON) is False
        assert holder.last_error is not None
        assert "malformed" in holder.last_error


class TestPersistence:
    def test_a_restarted_holder_keeps_its_serial_and_still_refuses_rollback(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """The accepted manifest survives a restart, and so does rollback protection."""
        _, serial_1 = holder_at_serial_2(layout, tmp_path)
        restarted = TrustHolder(settings(layout, layout.manifest), tmp_path / "data")
        restarted.load_persisted()
        assert restarted.manifest is not None
        assert restarted.manifest.serial == 2
        assert restarted.offer(serial_1, SOON) is False

    def test_a_tampered_persisted_manifest_is_reported_not_loaded(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """A persisted file that no longer verifies is refused with a reason."""
        holder_at_serial_2(layout, tmp_path)
        persisted = tmp_path / "data" / "manifest.json"
        persisted.write_bytes(persisted.read_bytes().replace(b'"serial":2', b'"serial":3'))
        restarted = TrustHolder(settings(layout, layout.manifest), tmp_path / "data")
        restarted.load_persisted()
        assert restarted.manifest is None
        assert restarted.last_error == "persisted manifest refused: bad_signature"


class TestRefreshFromFile:
    async def test_applies_a_changed_file_and_ignores_an_unchanged_one(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """The file is re-read each refresh; same bytes are not re-verified or reported."""
        holder = TrustHolder(settings(layout, layout.manifest), tmp_path / "data")
        assert await holder.refresh(SOON) is True
        assert await holder.refresh(SOON) is False
        revoke_agency(layout, agency_id="assist", reason="SYN", now=NOW)
        assert await holder.refresh(SOON) is True
        assert holder.manifest is not None
        assert holder.manifest.serial == 2

    async def test_a_missing_file_keeps_the_manifest_and_says_so(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """An unreadable source is reported; the held manifest stays."""
        copy = tmp_path / "manifest-copy.json"
        shutil.copy(layout.manifest, copy)
        holder = TrustHolder(settings(layout, copy), tmp_path / "data")
        await holder.refresh(SOON)
        copy.unlink()
        assert await holder.refresh(SOON) is False
        assert holder.manifest is not None
        assert holder.last_error == "manifest source unreachable (FileNotFoundError)"


class ManifestEndpoint:
    """A stand-in for ``isa-broker serve``: serves ``data`` with an ETag, records requests."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.requests: list[tuple[str | None, int]] = []
        self.down = False

    async def handle(self, request: web.Request) -> web.Response:
        if self.down:
            self.requests.append((request.headers.get("If-None-Match"), 503))
            return web.Response(status=503)
        etag = f'"{len(self.data)}-{hash(self.data) & 0xFFFF}"'
        status = 304 if request.headers.get("If-None-Match") == etag else 200
        self.requests.append((request.headers.get("If-None-Match"), status))
        body = None if status == 304 else self.data
        return web.Response(status=status, body=body, headers={"ETag": etag})


@contextlib.asynccontextmanager
async def endpoint(data: bytes) -> AsyncIterator[tuple[ManifestEndpoint, str]]:
    served = ManifestEndpoint(data)
    app = web.Application()
    app.router.add_get("/manifest", served.handle)
    async with TestServer(app) as server:
        yield served, str(server.make_url("/manifest"))


class TestRefreshFromUrl:
    async def test_sends_the_etag_back_and_treats_304_as_unchanged(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """First poll 200 (applied), second poll If-None-Match -> 304 (nothing to do)."""
        async with endpoint(layout.manifest.read_bytes()) as (served, url):
            holder = TrustHolder(settings(layout, url), tmp_path / "data")
            assert await holder.refresh(SOON) is True
            assert await holder.refresh(SOON) is False
        etag = served.requests[0]
        assert etag[0] is None
        assert served.requests[1][1] == 304
        assert served.requests[1][0] is not None

    async def test_applies_a_new_serial_served_later(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """When the served file changes, the next refresh applies its serial."""
        async with endpoint(layout.manifest.read_bytes()) as (served, url):
            holder = TrustHolder(settings(layout, url), tmp_path / "data")
            await holder.refresh(SOON)
            revoke_agency(layout, agency_id="assist", reason="SYN", now=NOW)
            served.data = layout.manifest.read_bytes()
            assert await holder.refresh(SOON) is True
        assert holder.manifest is not None
        assert holder.manifest.serial == 2

    async def test_an_error_status_keeps_the_manifest_and_says_so(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """A 503 from the server is reported as unreachable; the manifest stays."""
        async with endpoint(layout.manifest.read_bytes()) as (served, url):
            holder = TrustHolder(settings(layout, url), tmp_path / "data")
            await holder.refresh(SOON)
            served.down = True
            assert await holder.refresh(SOON) is False
        assert holder.manifest is not None
        assert holder.last_error == "manifest source unreachable (ClientResponseError)"

    async def test_recovering_source_clears_the_unreachable_error(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """Regression: a 304 after an outage must not leave 'unreachable' reported forever."""
        async with endpoint(layout.manifest.read_bytes()) as (served, url):
            holder = TrustHolder(settings(layout, url), tmp_path / "data")
            await holder.refresh(SOON)
            served.down = True
            await holder.refresh(SOON)
            served.down = False
            assert await holder.refresh(SOON) is False
        assert served.requests[-1][1] == 304
        assert holder.last_error is None

    async def test_a_refused_manifest_stays_reported_while_it_is_served(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """A refused file answered again with 304 keeps its refusal reason."""
        holder, serial_1 = holder_at_serial_2(layout, tmp_path)
        async with endpoint(serial_1) as (served, url):
            holder = TrustHolder(settings(layout, url), tmp_path / "data")
            holder.load_persisted()
            await holder.refresh(SOON)
            await holder.refresh(SOON)
        assert served.requests[-1][1] == 304
        assert holder.last_error is not None
        assert "rollback" in holder.last_error

    async def test_serving_the_held_manifest_again_clears_a_refusal(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """After a refused rollback, a source back on the held serial reports no error."""
        holder, serial_1 = holder_at_serial_2(layout, tmp_path)
        current = layout.manifest.read_bytes()
        async with endpoint(serial_1) as (served, url):
            holder = TrustHolder(settings(layout, url), tmp_path / "data")
            holder.load_persisted()
            await holder.refresh(SOON)
            assert holder.last_error is not None
            served.data = current
            await holder.refresh(SOON)
        assert holder.last_error is None


@contextlib.asynccontextmanager
async def raw_endpoint(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/manifest", handler)
    async with TestServer(app) as server:
        yield str(server.make_url("/manifest"))


class TestRefreshFromUrlFaults:
    async def test_a_body_cut_short_is_fetched_again_unconditionally(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """Regression: the ETag of a body that never fully arrived must not be kept (else 304s)."""
        data = layout.manifest.read_bytes()
        conditions: list[str | None] = []

        async def handler(request: web.Request) -> web.StreamResponse:
            conditions.append(request.headers.get("If-None-Match"))
            if len(conditions) > 1:
                return web.Response(body=data, headers={"ETag": '"whole"'})
            response = web.StreamResponse(headers={"ETag": '"whole"'})
            response.content_length = len(data)
            await response.prepare(request)
            await response.write(data[:100])
            assert request.transport is not None
            request.transport.close()
            return response

        async with raw_endpoint(handler) as url:
            holder = TrustHolder(settings(layout, url), tmp_path / "data")
            assert await holder.refresh(SOON) is False
            assert holder.last_error is not None
            assert holder.last_error.startswith("manifest source unreachable")
            assert await holder.refresh(SOON) is True
        assert conditions == [None, None]

    async def test_an_oversized_body_is_refused_not_buffered(
        self, layout: FederationLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A source answering more than MAX_MANIFEST_BYTES is refused; the manifest stays."""
        monkeypatch.setattr(trust_module, "MAX_MANIFEST_BYTES", 1024)
        served = {"data": layout.manifest.read_bytes()}

        async def handler(_request: web.Request) -> web.StreamResponse:
            return web.Response(body=served["data"])

        async with raw_endpoint(handler) as url:
            holder = TrustHolder(settings(layout, url), tmp_path / "data")
            holder.offer(layout.manifest.read_bytes(), SOON)
            served["data"] = b" " * 4096
            assert await holder.refresh(SOON) is False
        assert holder.manifest is not None
        assert (
            holder.last_error
            == "manifest refused: manifest rejected: too_large (more than 1024 bytes)"
        )


class TestPoll:
    async def test_applies_a_newer_serial_within_the_poll_interval(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """poll() keeps refreshing: a new serial is picked up without a restart."""
        holder = TrustHolder(
            settings(layout, layout.manifest, poll=0.05), tmp_path / "data", clock=lambda: SOON
        )
        await holder.refresh(SOON)
        applied = asyncio.Event()
        holder.on_change(lambda _old, _new: applied.set())
        task = asyncio.create_task(holder.poll())
        try:
            revoke_agency(layout, agency_id="assist", reason="SYN", now=NOW)
            await asyncio.wait_for(applied.wait(), timeout=10)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        manifest: Manifest | None = holder.manifest
        assert manifest is not None
        assert manifest.is_revoked("assist")
