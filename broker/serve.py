"""``isa-broker serve``: the signed manifest over HTTP, for agents to poll (aiohttp).

Rules:
1. ``GET /manifest`` answers the exact bytes of ``DIR/manifest.json`` with ``ETag`` = the quoted
   hex SHA-256 of those bytes and ``Cache-Control: no-cache``; a matching ``If-None-Match``
   (a list, weak tags or ``*``) gets ``304`` with no body. ``X-Manifest-Serial`` names the serial.
2. The file is re-read whenever it changes (inode, size or mtime), checked on each request; so
   ``manifest build`` / ``agency add|revoke`` take effect without restarting the server.
3. Only a manifest that chains to the federation's own root and carries a good signature is
   served. If the file on disk stops verifying (or disappears), the last good one keeps being
   served and ``/healthz`` says why (``degraded``). Agents verify everything again themselves:
   this server is not trusted, it only saves the operator from publishing a broken file.
4. ``GET /healthz``: ``200 {"status": "ok"|"degraded", "serial", "expires_at", "etag", "error"}``;
   ``503`` with ``"status": "unavailable"`` or ``"expired"`` when nothing valid can be served.
5. No handler answers 500: the only I/O is reading one file (and the audit heads, rule 6), and
   their failures are reported.
6. The server is also the federation's audit WITNESS (``federation.audit_head``, docs/protocol.md
   section 12): ``POST /v1/audit-heads/{agency}`` takes an agency's signed audit head, verified
   against the agency's certificate in the manifest being served; a rollback or a fork is
   refused (409), a bad signature or an unknown or revoked agency 403, a malformed body 400.
   The latest head per agency is kept durably in ``DIR/audit-heads/{agency}.json`` (written to
   a temporary file, fsynced, renamed) and served by ``GET /v1/audit-heads/{agency}`` (404 when
   none). Reads, judgement and write of one offer happen under one lock.
7. With ``--resign-before HOURS`` (``Resigning``) the server also re-signs the manifest, the next
   serial, whenever the one on disk has less than that left (``broker.resign``), so a federation
   keeps a valid manifest with no one acting; the HTTP side then serves it by rule 2.
8. ``POST /v1/renewals/{agency}`` takes an agency's signed certificate renewal request, judged
   against the manifest being served (``federation.renewal`` rule 4; 400 malformed or stale,
   403 otherwise, every refusal audited) and kept pending for ``isa-broker agency renew
   --pending``: ``202 {"status": "pending"}``. With ``--issue-renewals`` (a dev federation,
   whose CA key is at hand) it is issued at once: ``200 {"status": "issued", "serial"}``
   (``broker.renewals``).
9. ``POST /v1/announcements/{agency}`` takes an agency's signed key announcement
   (``federation.key_offer``, docs/protocol.md section 3.1): judged against the agency's
   certificate in the manifest being served, stored in ``DIR/announcements/{agency}/`` and
   published in the next manifest serial (``broker.announcements``). ``201 {"status":
   "accepted", "agency", "kid", "serial"}``, or ``200`` with ``"unchanged"`` for the same
   announcement again; a refusal is its 4xx (400 malformed, 403 unknown/revoked agency or bad
   signature, 409 revoked kid, conflict or replayed older key, 422 window); 503 when no
   manifest is served or the next one cannot be published.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509

from broker.announcements import AnnouncementInbox
from broker.clock import Clock, utcnow
from broker.fedstate import FederationLayout, write_durably
from broker.renewals import RenewalDesk
from broker.resign import resign_loop
from federation import pki
from federation.audit_head import MAX_HEAD_BYTES, AuditHead, accept_head
from federation.errors import (
    AnnouncementRefused,
    AuditHeadRefused,
    ConfigError,
    IsaRelayError,
    ManifestRejected,
    RenewalRefused,
)
from federation.key_offer import MAX_ANNOUNCEMENT_BYTES, parse_offer
from federation.manifest import Manifest, reload_manifest
from federation.renewal import MAX_REQUEST_BYTES
from federation.topology import is_agency_id

__all__ = [
    "AuditHeads",
    "ManifestFile",
    "Resigning",
    "Served",
    "create_app",
    "etag_matches",
    "serve_manifest",
]

log = logging.getLogger(__name__)

CACHE_CONTROL = "no-cache"
_SOURCE: web.AppKey[ManifestFile] = web.AppKey("source")
_CLOCK: web.AppKey[Clock] = web.AppKey("clock")
_HEADS: web.AppKey[AuditHeads] = web.AppKey("heads")
_RENEWALS: web.AppKey[RenewalDesk] = web.AppKey("renewals")
_INBOX: web.AppKey[AnnouncementInbox] = web.AppKey("announcements")


@dataclass(frozen=True)
class Served:
    """A verified manifest file as served: its exact bytes, ETag and serial."""

    data: bytes
    etag: str
    serial: int
    expires_at: datetime
    manifest: Manifest | None = None


class ManifestFile:
    """``DIR/manifest.json``, re-read and re-verified whenever it changes (rules 2, 3)."""

    def __init__(self, layout: FederationLayout) -> None:
        self.path = layout.manifest
        self.root = self._load_root(layout)
        self.last_error: str | None = None
        self._served: Served | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._lock = threading.Lock()

    @staticmethod
    def _load_root(layout: FederationLayout) -> x509.Certificate:
        try:
            return pki.certificate_from_bytes(layout.root_cert.read_bytes())
        except (OSError, ManifestRejected) as exc:
            raise ConfigError(f"{layout.root_cert}: no usable root certificate") from exc

    def current(self) -> Served | None:
        """The manifest to serve now (blocking: call it from a thread in async code)."""
        with self._lock:
            try:
                info = os.stat(self.path)
            except OSError as exc:
                self._stamp = None
                self.last_error = f"{self.path.name}: cannot read ({exc.__class__.__name__})"
                return self._served
            stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
            if stamp != self._stamp:
                self._stamp = stamp
                self._reload()
            return self._served

    def _reload(self) -> None:
        try:
            data = self.path.read_bytes()
            manifest = reload_manifest(
                data, root_cert=self.root, pinned_fingerprint=pki.fingerprint(self.root)
            )
        except OSError as exc:
            self.last_error = f"{self.path.name}: cannot read ({exc.__class__.__name__})"
            return
        except ManifestRejected as exc:
            self.last_error = f"{self.path.name} refused, still serving the last good one: {exc}"
            log.warning("%s", self.last_error)
            return
        etag = '"' + hashlib.sha256(data).hexdigest() + '"'
        self._served = Served(data, etag, manifest.serial, manifest.expires_at, manifest)
        self.last_error = None
        log.info("serving manifest serial %d (%s)", manifest.serial, etag)


class AuditHeads:
    """The latest accepted audit head of each agency, one file each (rule 6)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()

    def _path(self, agency: str) -> Path:
        if not is_agency_id(agency):  # the id becomes a file name: only [a-z0-9-]
            raise AuditHeadRefused("malformed", "not an agency id")
        return self.directory / f"{agency}.json"

    def get(self, agency: str) -> bytes | None:
        """The held head's JSON (blocking: call it from a thread)."""
        try:
            return self._path(agency).read_bytes()
        except FileNotFoundError:
            return None

    def offer(self, head: AuditHead, manifest: Manifest) -> bool:
        """Judge ``head`` against the held one and keep it; True if it replaced it (blocking)."""
        with self._lock:
            raw = self.get(head.agency)
            held = None if raw is None else AuditHead.model_validate_json(raw)
            if not accept_head(held, head, manifest):
                return False
            write_durably(self._path(head.agency), head.model_dump_json().encode("utf-8"))
            return True


def etag_matches(header: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header matches ``etag`` (weak comparison, RFC 9110)."""
    if not header:
        return False
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


def _problem(status: int, title: str, detail: str) -> web.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/problem+json"
    )


async def _manifest(request: web.Request) -> web.StreamResponse:
    source = request.app[_SOURCE]
    served = await asyncio.to_thread(source.current)
    if served is None:
        return _problem(503, "No manifest to serve", source.last_error or "no manifest yet")
    headers = {
        "ETag": served.etag,
        "Cache-Control": CACHE_CONTROL,
        "X-Manifest-Serial": str(served.serial),
    }
    if etag_matches(request.headers.get("If-None-Match"), served.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=served.data, headers=headers, content_type="application/json")


async def _healthz(request: web.Request) -> web.StreamResponse:
    source = request.app[_SOURCE]
    served = await asyncio.to_thread(source.current)
    body: dict[str, Any] = {"status": "unavailable", "serial": None, "expires_at": None}
    body |= {"etag": None, "error": source.last_error}
    if served is not None:
        expired = request.app[_CLOCK]() >= served.expires_at
        status = "expired" if expired else "degraded" if source.last_error else "ok"
        body |= {"status": status, "serial": served.serial, "etag": served.etag}
        body["expires_at"] = served.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    code = 200 if body["status"] in ("ok", "degraded") else 503
    return web.json_response(body, status=code, headers={"Cache-Control": CACHE_CONTROL})


async def _get_head(request: web.Request) -> web.StreamResponse:
    agency = request.match_info["agency"]
    try:
        data = await asyncio.to_thread(request.app[_HEADS].get, agency)
    except AuditHeadRefused:
        data = None
    except OSError as exc:
        return _problem(503, "Audit heads unavailable", f"cannot read ({exc.__class__.__name__})")
    if data is None:
        return _problem(404, "No audit head", f"no audit head is held for {agency!r}")
    headers = {"Cache-Control": CACHE_CONTROL}
    return web.Response(body=data, headers=headers, content_type="application/json")


async def _post_head(request: web.Request) -> web.StreamResponse:
    if (request.content_length or 0) > MAX_HEAD_BYTES:
        return _problem(413, "Too large", f"an audit head is at most {MAX_HEAD_BYTES} bytes")
    body = await request.content.read(MAX_HEAD_BYTES + 1)
    try:
        if len(body) > MAX_HEAD_BYTES:
            raise AuditHeadRefused("malformed", f"more than {MAX_HEAD_BYTES} bytes")
        head = _parse_head(body, request.match_info["agency"])
        served = await asyncio.to_thread(request.app[_SOURCE].current)
        if served is None or served.manifest is None:
            return _problem(503, "No manifest", "no verified manifest to check the head against")
        replaced = await asyncio.to_thread(request.app[_HEADS].offer, head, served.manifest)
    except AuditHeadRefused as exc:
        return _problem(exc.status, exc.title, exc.message)
    except OSError as exc:
        return _problem(503, "Audit heads unavailable", f"cannot store ({exc.__class__.__name__})")
    status = "accepted" if replaced else "unchanged"
    return web.json_response({"status": status, "agency": head.agency, "seq": head.seq})


def _parse_head(body: bytes, agency: str) -> AuditHead:
    try:
        head = AuditHead.model_validate_json(body)
    except ValueError:
        raise AuditHeadRefused("malformed", "the body is not a signed audit head") from None
    if head.agency != agency:
        raise AuditHeadRefused("malformed", f"a head of {head.agency} posted for {agency}")
    return head


async def _post_renewal(request: web.Request) -> web.StreamResponse:
    """Rule 7: judge a renewal request; keep it pending, or issue it (``--issue-renewals``)."""
    if (request.content_length or 0) > MAX_REQUEST_BYTES:
        return _problem(413, "Too large", f"a renewal request is at most {MAX_REQUEST_BYTES} bytes")
    body = await request.content.read(MAX_REQUEST_BYTES + 1)
    served = await asyncio.to_thread(request.app[_SOURCE].current)
    if served is None or served.manifest is None:
        return _problem(503, "No manifest", "no verified manifest to check the request against")
    desk, agency = request.app[_RENEWALS], request.match_info["agency"]
    try:
        done = await asyncio.to_thread(
            desk.receive, body, agency=agency, manifest=served.manifest, now=request.app[_CLOCK]()
        )
    except RenewalRefused as exc:
        return _problem(exc.status, exc.title, exc.message)
    except (OSError, IsaRelayError) as exc:
        log.warning("renewal of %s not stored: %s", agency, exc)
        return _problem(503, "Renewals unavailable", "the request could not be stored")
    if done is None:
        return web.json_response({"status": "pending", "agency": agency}, status=202)
    return web.json_response({"status": "issued", "agency": agency, "serial": done.serial})


async def _post_announcement(request: web.Request) -> web.StreamResponse:
    """Rule 9: judge, store and publish an agency's posted key announcement."""
    if (request.content_length or 0) > MAX_ANNOUNCEMENT_BYTES:
        return _problem(413, "Too large", f"at most {MAX_ANNOUNCEMENT_BYTES} bytes")
    body = await request.content.read(MAX_ANNOUNCEMENT_BYTES + 1)
    try:
        note = parse_offer(body, request.match_info["agency"])
        served = await asyncio.to_thread(request.app[_SOURCE].current)
        if served is None or served.manifest is None:
            return _problem(503, "No manifest", "no verified manifest to judge the key against")
        inbox, now = request.app[_INBOX], request.app[_CLOCK]()
        offered = await asyncio.to_thread(inbox.offer, note, served.manifest, now)
    except AnnouncementRefused as exc:
        return _problem(exc.status, exc.title, exc.message)
    except (IsaRelayError, OSError) as exc:
        detail = exc.message if isinstance(exc, IsaRelayError) else exc.__class__.__name__
        log.error("announcement of %s not published: %s", note.kid, detail)
        return _problem(503, "Cannot publish", "the next manifest could not be published")
    log.info("key %s of %s %s (serial %s)", note.kid, note.agency, offered.status, offered.serial)
    reply = {"status": offered.status, "agency": note.agency, "kid": note.kid}
    return web.json_response(reply | {"serial": offered.serial}, status=_CREATED[offered.status])


_CREATED = {"accepted": 201, "unchanged": 200}


def create_app(
    source: ManifestFile,
    *,
    clock: Clock = utcnow,
    heads: AuditHeads | None = None,
    renewals: RenewalDesk | None = None,
    announcements: AnnouncementInbox | None = None,
) -> web.Application:
    """The aiohttp application serving ``source`` (rules 1-9); ``clock`` judges expiry and key
    windows; audit heads are kept in ``heads`` (default: ``audit-heads/`` beside the manifest
    file), posted announcements in ``announcements`` (default: the manifest's directory)."""
    app = web.Application(
        client_max_size=max(MAX_HEAD_BYTES, MAX_ANNOUNCEMENT_BYTES, MAX_REQUEST_BYTES)
    )
    app[_SOURCE] = source
    app[_CLOCK] = clock
    app[_HEADS] = heads or AuditHeads(source.path.parent / "audit-heads")
    app[_RENEWALS] = renewals or RenewalDesk(FederationLayout(source.path.parent))
    app[_INBOX] = announcements or AnnouncementInbox(FederationLayout(source.path.parent))
    app.router.add_post("/v1/announcements/{agency}", _post_announcement)
    app.router.add_get("/manifest", _manifest)
    app.router.add_get("/healthz", _healthz, allow_head=False)
    app.router.add_get("/v1/audit-heads/{agency}", _get_head, allow_head=False)
    app.router.add_post("/v1/audit-heads/{agency}", _post_head)
    app.router.add_post("/v1/renewals/{agency}", _post_renewal)
    return app


@dataclass(frozen=True)
class Resigning:
    """Rule 7: re-sign when less than ``before`` is left, checking every ``interval`` seconds."""

    before: timedelta
    interval: float = 300.0


async def serve_manifest(
    layout: FederationLayout,
    host: str,
    port: int,
    *,
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
    clock: Clock = utcnow,
    resigning: Resigning | None = None,
    issue_renewals: bool = False,
) -> None:
    """Serve ``layout``'s manifest on ``host:port`` until ``stop`` is set; with ``resigning``,
    also keep it re-signed (rule 7); with ``issue_renewals`` renewal requests are issued at once
    (rule 8, dev federations)."""
    source = ManifestFile(layout)
    desk = RenewalDesk(layout, issue=issue_renewals)
    runner = web.AppRunner(create_app(source, clock=clock, renewals=desk), access_log=None)
    await runner.setup()
    resigner = None
    if resigning is not None:
        loop = resign_loop(layout, clock, before=resigning.before, interval=resigning.interval)
        resigner = asyncio.create_task(loop, name="manifest-resign")
    try:
        await web.TCPSite(runner, host, port).start()
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        if resigner is not None:
            resigner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await resigner
        await runner.cleanup()
