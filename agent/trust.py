"""The agent's hold on the federation manifest: load, verify, poll, fail closed.

Rules:
1. The root certificate must match the pinned fingerprint, or the agent does not start.
2. A manifest is accepted only through ``TrustState.accept`` (chain, signature, serial strictly
   higher, not expired); a refused one leaves the current manifest in force and the reason is
   kept for ``/healthz`` and ``isa-agent check``.
3. The accepted manifest is persisted under ``data_dir`` so rollback protection survives a
   restart; on start the persisted one is re-loaded (it may be expired: then we are fail-closed
   until a fresh one arrives).
4. Sources: a file (re-read each poll) or an HTTP URL (``isa-broker serve``; ETag honoured,
   remembered only once a whole body arrived; bodies over ``MAX_MANIFEST_BYTES`` are refused).
6. The service and the receiver read trust through the narrow :class:`Trust` protocol; only the
   holder itself moves its state. :func:`sendable_manifest` is the one fail-closed gate for
   sending.
5. Expiry alert (``manifest_alert``): within ``[trust] manifest_alert_hours`` (default 48) of the
   held manifest's expiry, the agent warns (``/healthz`` degraded, with the reason); past it, it
   says the manifest expired (and is fail-closed). Each stage is logged once per serial, checked
   after every poll and whenever health is asked; a newer serial clears it.
7. Root rotation: ``[trust] next_root_certificate`` / ``next_root_fingerprint`` pin a second
   root, checked like the first at start; manifests chaining to either are accepted
   (``federation.manifest`` rule 6) until the operator's procedure ends the overlap.
8. The ISAs in force (:meth:`TrustHolder.isas`) come from the held manifest when it carries them
   (format 2, ``federation.manifest`` rule 8), so a new ISA version is applied with the manifest
   that brings it, in the same assignment, without a restart; for a format-1 manifest they are
   the ``policies_dir`` files read at start (none without it). A refused manifest (an ISA
   document not matching its pin among the reasons) is logged and passed to the ``on_refused``
   listeners (the audit) once per distinct offer; the held manifest stays in force.
9. ``catch_up`` fetches the source at once for a receiver that met an ISA version its manifest
   does not list (``federation.receive`` rule 4): at most once per ``CATCH_UP_SECONDS`` whatever
   the number of callers, which share one fetch.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import aiohttp
from cryptography import x509

from agent.clock import Clock, utcnow
from agent.config import TrustSettings
from agent.errors import TrustUnavailable
from agent.expiry import agent_deadlines, expiry_gauges
from agent.private_files import write_private_atomically
from federation import pki
from federation.canonical import format_time
from federation.errors import ConfigError, ManifestRejected
from federation.isa import Isa, IsaRegistry
from federation.manifest import Anchor, Manifest, TrustState, diff_manifests, reload_manifest

__all__ = ["MAX_MANIFEST_BYTES", "Trust", "TrustHolder", "sendable_manifest"]

log = logging.getLogger(__name__)

Listener = Callable[[Manifest | None, Manifest], None]
#: called with the refusal's message and the serial held (0: none) (rule 8)
RefusalListener = Callable[[str, int], None]
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
CATCH_UP_SECONDS = 10.0


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, or ``ManifestRejected('too_large')`` past ``limit`` bytes."""
    if (response.content_length or 0) > limit:
        raise ManifestRejected("too_large", f"more than {limit} bytes")
    data = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        data += chunk
        if len(data) > limit:
            raise ManifestRejected("too_large", f"more than {limit} bytes")
    return bytes(data)


class Trust(Protocol):
    """What the agent's parts read of its trust in the federation (rule 6)."""

    @property
    def state(self) -> TrustState: ...

    @property
    def manifest(self) -> Manifest | None: ...

    @property
    def last_error(self) -> str | None: ...

    def manifest_alert(self, now: datetime) -> str | None: ...

    def expiry_gauges(self, agency: str, isas: IsaRegistry, now: datetime) -> dict[str, float]: ...

    def isas(self, now: datetime) -> IsaRegistry: ...

    async def catch_up(self, held: int) -> bool: ...


def sendable_manifest(trust: Trust, now: datetime, isa: Isa) -> Manifest:
    """The manifest to send under, or TrustUnavailable (fail closed): ``isa`` must be the
    version that manifest has in force at ``now``, so that sender and receiver agree."""
    manifest = trust.manifest
    if manifest is None or not trust.state.can_send(now):
        raise TrustUnavailable("no valid federation manifest: sending is stopped (fail closed)")
    entry = manifest.isa_in_force(isa.id, now)
    if entry is None or entry.sha256 != isa.sha256 or entry.version != isa.version:
        raise TrustUnavailable(
            f"the local copy of ISA {isa.id} differs from the one the federation publishes"
        )
    return manifest


class TrustHolder:
    """Holds the current verified manifest; ``refresh`` fetches and applies a newer one."""

    def __init__(
        self,
        settings: TrustSettings,
        data_dir: Path,
        *,
        clock: Clock = utcnow,
        local_isas: IsaRegistry | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._local_isas = local_isas or IsaRegistry()  # rule 8: format 1 only
        self._refusal_listeners: list[RefusalListener] = []
        self._refused_offer: str | None = None  # digest of the last refused bytes (rule 8)
        self._catch_up_lock = asyncio.Lock()
        self._caught_up_at: datetime | None = None
        self._persisted = data_dir / "manifest.json"
        self.root = self._load_root(settings)
        self.also_trusted = self._load_next_root(settings)
        self.state = TrustState(None)
        self._refused: str | None = None  # why the last manifest offered was refused
        self._unreachable: str | None = None  # why the last fetch failed (cleared by a success)
        self._etag: str | None = None
        self._listeners: list[Listener] = []
        self._alerted: set[tuple[int, str]] = set()  # (serial, stage) already logged (rule 5)

    @staticmethod
    def _load_root(settings: TrustSettings) -> x509.Certificate:
        try:
            root = pki.certificate_from_bytes(settings.root_certificate.read_bytes())
        except FileNotFoundError:
            raise ConfigError(f"{settings.root_certificate}: root certificate not found") from None
        except ManifestRejected:
            raise ConfigError(f"{settings.root_certificate}: not a certificate") from None
        try:
            pki.verify_root(root, settings.root_fingerprint)
        except ManifestRejected:
            raise ConfigError(
                f"{settings.root_certificate}: does not match the pinned root_fingerprint"
            ) from None
        return root

    @classmethod
    def _load_next_root(cls, settings: TrustSettings) -> tuple[Anchor, ...]:
        """Rule 6: the second pinned root of a rotation, if one is configured."""
        path, pin = settings.next_root_certificate, settings.next_root_fingerprint
        if path is None or pin is None:
            return ()
        pinned = settings.model_copy(update={"root_certificate": path, "root_fingerprint": pin})
        return ((cls._load_root(pinned), pin),)

    @property
    def manifest(self) -> Manifest | None:
        return self.state.manifest

    @property
    def last_error(self) -> str | None:
        """Why the source is unreachable now, or why its manifest was refused; None when fine."""
        return self._unreachable or self._refused

    def on_change(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def on_refused(self, listener: RefusalListener) -> None:
        """Rule 8: ``listener(message, held serial)`` for each distinct refused manifest."""
        self._refusal_listeners.append(listener)

    def isas(self, now: datetime) -> IsaRegistry:
        """Rule 8: the ISAs in force at ``now``, one version per id (others held beside)."""
        manifest = self.manifest
        carried = manifest.isas_at(now) if manifest is not None else None
        return self._local_isas if carried is None else carried

    async def catch_up(self, held: int) -> bool:
        """Rule 9: fetch the source now unless fetched within ``CATCH_UP_SECONDS``; True when a
        manifest newer than serial ``held`` is in force afterwards."""
        async with self._catch_up_lock:
            now = self._clock()
            recent = self._caught_up_at is not None and (
                timedelta(0) <= now - self._caught_up_at < timedelta(seconds=CATCH_UP_SECONDS)
            )
            if not recent and (self.manifest is None or self.manifest.serial <= held):
                self._caught_up_at = now
                await self.refresh(now)
        return self.manifest is not None and self.manifest.serial > held

    def load_persisted(self) -> None:
        """Re-load the manifest accepted before a restart, if any."""
        try:
            data = self._persisted.read_bytes()
        except FileNotFoundError:
            return
        try:
            manifest = reload_manifest(
                data,
                root_cert=self.root,
                pinned_fingerprint=self._settings.root_fingerprint,
                also_trusted=self.also_trusted,
            )
        except ManifestRejected as exc:
            self._refused = f"persisted manifest refused: {exc.reason}"
            log.warning("persisted manifest refused: %s", exc.reason)
            return
        self.state = TrustState(manifest)

    async def refresh(self, now: datetime | None = None) -> bool:
        """Fetch the manifest source; apply it if newer. True when a new serial was applied."""
        now = now or self._clock()
        try:
            data = await self._fetch()
        except (OSError, aiohttp.ClientError, TimeoutError) as exc:
            self._unreachable = f"manifest source unreachable ({exc.__class__.__name__})"
            return False
        except ManifestRejected as exc:
            self._unreachable = None
            self._refused = f"manifest refused: {exc.message}"
            return False
        self._unreachable = None
        if data is None:  # 304: the source still serves what it served last time
            return False
        if self.manifest is not None and data == self.manifest.file_bytes:
            self._refused = None  # the source serves exactly what we hold
            return False
        return self.offer(data, now)

    def offer(self, data: bytes, now: datetime) -> bool:
        """Apply manifest bytes if they verify and are newer; keep the current one otherwise."""
        old = self.manifest
        try:
            self.state = self.state.accept(
                data,
                root_cert=self.root,
                pinned_fingerprint=self._settings.root_fingerprint,
                now=now,
                also_trusted=self.also_trusted,
            )
        except ManifestRejected as exc:
            self._refuse(data, exc)
            return False
        self._refused = None
        self._refused_offer = None
        new = self.state.manifest
        assert new is not None
        self._persist(data)
        changes = diff_manifests(old.document, new.document) if old else [f"serial {new.serial}"]
        log.info("manifest applied: %s", "; ".join(changes))
        for listener in self._listeners:
            listener(old, new)
        return True

    def _refuse(self, data: bytes, exc: ManifestRejected) -> None:
        """Rule 2 and 8: keep the held manifest, say why once per distinct offer."""
        self._refused = f"manifest refused: {exc.message}"
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._refused_offer:
            return
        self._refused_offer = digest
        held = self.manifest.serial if self.manifest is not None else 0
        kept = f"serial {held} stays in force" if held else "no manifest is held"
        log.warning("manifest refused (%s): %s", kept, exc.message)
        for listener in self._refusal_listeners:
            listener(exc.message, held)

    def _persist(self, data: bytes) -> None:
        write_private_atomically(self._persisted, data)

    async def _fetch(self) -> bytes | None:
        if self._settings.manifest_url:
            return await self._fetch_url(self._settings.manifest_url)
        if self._settings.manifest_file is None:
            raise ConfigError("trust: set manifest_file or manifest_url")
        path = self._settings.manifest_file
        return await asyncio.to_thread(path.read_bytes)

    async def _fetch_url(self, url: str) -> bytes | None:
        headers = {"If-None-Match": self._etag} if self._etag else {}
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, headers=headers) as response,
        ):
            if response.status == 304:
                return None
            response.raise_for_status()
            data = await _read_capped(response, MAX_MANIFEST_BYTES)
            self._etag = response.headers.get("ETag")  # only once the whole body has arrived
            return data

    def manifest_alert(self, now: datetime) -> str | None:
        """Rule 5: why the held manifest needs attention at ``now``, or None; logs each stage
        once per serial."""
        manifest = self.manifest
        if manifest is None:
            return None
        left, until = manifest.expires_at - now, format_time(manifest.expires_at)
        if left <= timedelta(0):
            stage, text = "expired", (
                f"the manifest (serial {manifest.serial}) expired at {until}: sending is stopped"
                " (fail closed) until a newer one arrives; is the operator's re-signing job"
                " running?"
            )
        elif left < timedelta(hours=self._settings.manifest_alert_hours):
            hours = int(left / timedelta(hours=1))
            stage, text = "expiring", (
                f"the manifest (serial {manifest.serial}) expires in {hours} h (at {until}):"
                " the operator's re-signing job is not running?"
            )
        else:
            return None
        if (manifest.serial, stage) not in self._alerted:
            self._alerted.add((manifest.serial, stage))
            log.warning("%s", text)
        return text

    def expiry_gauges(self, agency: str, isas: IsaRegistry, now: datetime) -> dict[str, float]:
        """Seconds left on everything this agency relies on (``agent.expiry``); none without a
        manifest."""
        manifest = self.manifest
        if manifest is None:
            return {}
        return expiry_gauges(agent_deadlines(manifest, self.root, agency, isas, now), now)

    async def poll(self) -> None:
        """Refresh every ``manifest_poll_seconds`` until cancelled; alert on expiry (rule 5)."""
        while True:
            await asyncio.sleep(self._settings.manifest_poll_seconds)
            await self.refresh()
            self.manifest_alert(self._clock())
