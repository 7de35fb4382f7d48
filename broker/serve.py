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
5. No handler answers 500: the only I/O is reading one file, and its failures are reported.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from cryptography import x509

from broker.clock import Clock, utcnow
from broker.fedstate import FederationLayout
from federation import pki
from federation.errors import ConfigError, ManifestRejected
from federation.manifest import reload_manifest

__all__ = ["ManifestFile", "Served", "create_app", "etag_matches", "serve_manifest"]

log = logging.getLogger(__name__)

CACHE_CONTROL = "no-cache"
_SOURCE: web.AppKey[ManifestFile] = web.AppKey("source")
_CLOCK: web.AppKey[Clock] = web.AppKey("clock")


@dataclass(frozen=True)
class Served:
    """A verified manifest file as served: its exact bytes, ETag and serial."""

    data: bytes
    etag: str
    serial: int
    expires_at: datetime


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
        self._served = Served(data, etag, manifest.serial, manifest.expires_at)
        self.last_error = None
        log.info("serving manifest serial %d (%s)", manifest.serial, etag)


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


def create_app(source: ManifestFile, *, clock: Clock = utcnow) -> web.Application:
    """The aiohttp application serving ``source`` (rules 1-5); ``clock`` judges expiry."""
    app = web.Application()
    app[_SOURCE] = source
    app[_CLOCK] = clock
    app.router.add_get("/manifest", _manifest)
    app.router.add_get("/healthz", _healthz, allow_head=False)
    return app


async def serve_manifest(
    layout: FederationLayout,
    host: str,
    port: int,
    *,
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
) -> None:
    """Serve ``layout``'s manifest on ``host:port`` until ``stop`` is set."""
    source = ManifestFile(layout)
    runner = web.AppRunner(create_app(source), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        await runner.cleanup()
