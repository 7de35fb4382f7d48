"""Assemble and run one agent: store, trust, keys, transport, API, relay, housekeeping.

Rules (HOUSE-STYLE §8):
1. Every resource is an async context manager closed on the way out, whatever happened.
2. All long-running work runs in one ``asyncio.TaskGroup``; ``stop`` (SIGTERM/SIGINT in
   ``isa-agent run``) cancels it: the consumer stops taking deliveries and lets in-flight ones
   finish, the API stops accepting, then the store closes. Cancellation is never swallowed.
3. The outbox and inbox are on disk, so a restart resumes exactly where the agent stopped.
4. On the way out, after the last in-flight work: the counted repeats are written to the audit
   log, then its final head is posted to the witness (``agent.audit.witness``), if any.
5. :func:`open_agent` is the one place that builds an :class:`Agent`: a frozen bundle of the
   opened resources and shared values, from which the service, receiver, outbox relay and
   housekeeper are wired, each with only the dependencies it uses. Nothing reassigns a field
   of it: the broker session attaches its transport to the :class:`LatePublisher`, key
   rotation replaces the keyring in its :class:`KeyringHolder`.
6. Operators get one actionable line, not a traceback: an API address already in use is
   :class:`ListenError`; a broker session that fails is retried with exponential backoff and
   jitter, one line per attempt; an agency the manifest lists as revoked (at start, at any
   manifest change, or checked again when the broker refuses our credentials) stops the agent
   with one line, after draining, and :func:`run_agent` raises :class:`AgencyRevoked`
   (``isa-agent run`` exits with ``EXIT_REVOKED``, 77, and systemd does not restart it). After
   draining it logs "stopped".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

import aiohttp
from aiohttp import web
from yarl import URL

from agent.actor import Actor, Caller
from agent.announcer import Announcer
from agent.api import create_app
from agent.api_models import InboxItem, StatusEventView
from agent.audit import (
    AuditLog,
    AuditSink,
    HeadPoster,
    ManifestAuditor,
    RepeatAudit,
    load_subject_secret,
    subject_key_path,
    witness_url,
)
from agent.auth import ApiClient
from agent.broker_session import BrokerSession
from agent.clock import Clock, utcnow
from agent.config import Settings
from agent.errors import StoreUnavailable
from agent.keyrotation import KeyringHolder, KeyRotator
from agent.keystore import load_keyring, load_store_key, read_signing_key, store_key_path
from agent.manifest_server import server_url
from agent.metrics import Metrics
from agent.private_files import private_dir
from agent.publisher import LatePublisher
from agent.receiver import Receiver
from agent.relay import Housekeeper, OutboxRelay
from agent.renewal import CertificateRenewer, renewal_url
from agent.retention import Retention
from agent.reviews import webhook_event
from agent.service import Service
from agent.store import DEFAULT_FILENAME as STORE_FILENAME
from agent.store import SqliteStore
from agent.transport import AmqpTransport
from agent.trust import Trust, TrustHolder
from agent.webhook import Backoff, WebhookPusher
from federation.errors import ConfigError, LocalError, PolicyError
from federation.isa import IsaRegistry, load_isa
from federation.keys import RotationPolicy, SigningKey

__all__ = [
    "EXIT_REVOKED",
    "AgencyRevoked",
    "Agent",
    "ListenError",
    "agent_store",
    "broker_urls",
    "load_registry",
    "open_agent",
    "private_dirs",
    "run_agent",
]

log = logging.getLogger(__name__)

#: the actor the audit log names for deliveries handed over by webhook push
WEBHOOK_ACTOR = "webhook"
#: The webhook pushes deliveries as the system (no person): ``Service.pushed_page``.
WEBHOOK_CALLER = Caller(
    WEBHOOK_ACTOR, replace(Actor.system(WEBHOOK_ACTOR), justification="[webhook] push")
)
#: ``isa-agent run``'s exit status when the manifest lists this agency as revoked (sysexits'
#: EX_NOPERM; ``deploy/systemd/isa-agent@.service`` does not restart on it)
EXIT_REVOKED = 77


class ListenError(ConfigError):
    """The API cannot listen on its configured address (in use, or not ours to bind)."""


class AgencyRevoked(LocalError):
    """The federation's manifest lists this agency as revoked: the agent stops for good."""

    title = "Agency revoked"


def revocation(trust: Trust, agency: str) -> str | None:
    """Why ``agency`` is revoked by the manifest held, or None (absent from it is not revoked:
    an agency being onboarded is not listed yet)."""
    manifest = trust.manifest
    if manifest is None or manifest.agency(agency) is None or not manifest.is_revoked(agency):
        return None
    return f"the federation manifest (serial {manifest.serial}) lists agency {agency} as revoked"


def broker_urls(settings: Settings) -> list[str]:
    """The configured broker URLs with the agency's broker credentials filled in."""
    broker = settings.broker
    return [
        str(URL(url).with_user(broker.user).with_password(broker.password or None))
        for url in broker.urls
    ]


def load_registry(policies_dir: Path | None) -> IsaRegistry:
    """Every ISA file in ``policies_dir`` (none when unset: the manifest carries the ISAs,
    ``agent.trust`` rule 8); a broken file stops the agent (PolicyError)."""
    if policies_dir is None:
        return IsaRegistry()
    isas, problems = [], []
    for path in sorted(policies_dir.glob("*.yaml")):
        try:
            isas.append(load_isa(str(path), path.read_bytes()))
        except PolicyError as exc:
            problems += exc.problems
    if problems:
        raise PolicyError(problems)
    return IsaRegistry(isas)


@dataclass(frozen=True, slots=True, kw_only=True)
class Agent:
    """One agent's opened resources and shared values (rule 5); only :func:`open_agent` makes
    one. The parts it wires each take their own dependencies; none of them sees this bundle."""

    settings: Settings
    store: SqliteStore
    audit: AuditSink
    repeats: RepeatAudit
    trust: TrustHolder
    signing_key: SigningKey
    rotator: KeyRotator
    clock: Clock
    metrics: Metrics = field(default_factory=Metrics)
    publisher: LatePublisher = field(default_factory=LatePublisher)
    outbox_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    inbox_wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def agency(self) -> str:
        return self.settings.agency

    @property
    def keys(self) -> KeyringHolder:
        """The keyring holder, owned by key rotation."""
        return self.rotator.keys

    def service(self) -> Service:
        limits = self.settings.limits
        return Service(
            agency=self.agency, store=self.store, audit=self.audit, repeats=self.repeats,
            trust=self.trust, keys=self.keys,
            signing_key=self.signing_key, publisher=self.publisher, clock=self.clock,
            metrics=self.metrics, wake_relay=self.outbox_wakeup.set,
            ttl=timedelta(hours=limits.message_ttl_hours),
            send_version=self.settings.envelope.send_version,
            max_ciphertext=limits.max_ciphertext_bytes,
            retry_after=max(1, math.ceil(self.settings.trust.manifest_poll_seconds)),
            review_hold=timedelta(hours=limits.review_hold_hours),
        )  # fmt: skip

    def receiver(self) -> Receiver:
        limits = self.settings.limits
        return Receiver(
            agency=self.agency, store=self.store, audit=self.audit, repeats=self.repeats,
            trust=self.trust, keys=self.keys,
            signing_key=self.signing_key, publisher=self.publisher, clock=self.clock,
            metrics=self.metrics, on_stored=self.inbox_wakeup.set,
            max_skew=timedelta(seconds=limits.max_clock_skew_seconds),
            max_ciphertext=limits.max_ciphertext_bytes,
        )  # fmt: skip

    def relay(self) -> OutboxRelay:
        return OutboxRelay(
            store=self.store, publisher=self.publisher, audit=self.audit, clock=self.clock,
            metrics=self.metrics, wakeup=self.outbox_wakeup,
        )  # fmt: skip

    def housekeeper(
        self, *, interval: float = 30.0, audit_keep: timedelta | None = None
    ) -> Housekeeper:
        retention = Retention(
            self.store, self.audit, self.trust.isas, agency=self.agency, audit_keep=audit_keep
        )
        return Housekeeper(
            store=self.store, audit=self.audit, repeats=self.repeats, retention=retention,
            rotator=self.rotator, clock=self.clock, metrics=self.metrics, interval=interval,
        )  # fmt: skip


def _rotator(
    settings: Settings, signing_key: SigningKey, audit: AuditSink, trust: TrustHolder | None = None
) -> KeyRotator:
    """The key rotator over the agency's keyring directory; it owns the keyring holder. With
    ``trust``, a key of ours the held manifest revokes is rotated away from (issue 15.4)."""
    keys = settings.keys
    policy = RotationPolicy(
        rotate_every=timedelta(days=keys.rotate_every_days), grace=timedelta(days=keys.grace_days)
    )
    return KeyRotator(
        agency=settings.agency,
        encryption_dir=keys.encryption_dir,
        data_dir=settings.data_dir,
        signing_key=signing_key,
        keyring=load_keyring(keys.encryption_dir, policy, keys.passphrase),
        audit=audit,
        passphrase=keys.passphrase,
        revoked=(lambda: _revoked_kids(trust, settings.agency)) if trust is not None else tuple,
    )


def _revoked_kids(trust: TrustHolder, agency: str) -> frozenset[str]:
    """The kids of ``agency`` that the manifest ``trust`` holds revokes."""
    manifest = trust.manifest
    if manifest is None:
        return frozenset()
    return frozenset(
        r.ref for r in manifest.document.revocations if r.kind == "key" and r.agency == agency
    )


@contextlib.asynccontextmanager
async def open_agent(settings: Settings, *, clock: Clock = utcnow) -> AsyncIterator[Agent]:
    """Load keys, ISAs and trust, open the store and the audit log; yields the :class:`Agent`
    (its publisher not connected until a broker session attaches a transport)."""
    private_dirs(settings)
    keys = settings.keys
    signing_key = read_signing_key(keys.signing_key, keys.passphrase)
    local_isas = load_registry(settings.trust.policies_dir)  # format-1 manifests only
    trust = TrustHolder(settings.trust, settings.data_dir, clock=clock, local_isas=local_isas)
    trust.load_persisted()
    subject_secret = load_subject_secret(subject_key_path(keys.encryption_dir))
    audit = AuditLog(
        settings.data_dir,
        agency=settings.agency,
        signing_key=signing_key,
        subject_secret=subject_secret,
        clock=clock,
        checkpoint_every=settings.audit.checkpoint_every,
    )
    rotator = _rotator(settings, signing_key, audit, trust)
    async with agent_store(settings) as store, audit:
        manifest_auditor = ManifestAuditor(audit, clock)
        trust.on_change(manifest_auditor)
        trust.on_refused(manifest_auditor.refused)
        await trust.refresh(clock())
        _say_where_isas_come_from(trust, settings, clock)
        agent = Agent(
            settings=settings, store=store, audit=audit, repeats=RepeatAudit(audit), trust=trust,
            signing_key=signing_key, rotator=rotator, clock=clock,
        )  # fmt: skip
        try:
            yield agent
        finally:
            await manifest_auditor.drain()
            with contextlib.suppress(StoreUnavailable):
                await agent.repeats.close(clock())  # nothing counted is lost on shutdown


def _say_where_isas_come_from(trust: TrustHolder, settings: Settings, clock: Clock) -> None:
    """One line at start: which source the ISAs in force come from (``agent.trust`` rule 8)."""
    manifest, folder = trust.manifest, settings.trust.policies_dir
    if manifest is not None and manifest.carries_isas:
        unused = f"; [trust] policies_dir {folder} is not used" if folder is not None else ""
        versions = ", ".join(f"{i.id} {i.version}" for i in trust.isas(clock()).in_force())
        log.info("ISAs in force from the manifest: %s%s", versions or "none", unused)
    elif folder is None:
        log.warning(
            "the manifest held carries no ISAs (format 1) and [trust] policies_dir is not set:"
            " no ISA is in force until a format-2 manifest arrives"
        )


def private_dirs(settings: Settings) -> None:
    """``data_dir`` and the key directories exist and are 0700 (``agent/private_files.py``)."""
    keys = settings.keys
    for directory in (settings.data_dir, keys.signing_key.parent, keys.encryption_dir.parent,
                      keys.encryption_dir):  # fmt: skip
        private_dir(directory)


def agent_store(settings: Settings) -> SqliteStore:
    """The agent's store as ``isa-agent run`` opens it: under its key-encryption key, made with
    a new store (``agent/keystore.py`` rule 4). Use ``async with``."""
    store_exists = (settings.data_dir / STORE_FILENAME).exists()
    kek = load_store_key(store_key_path(settings.keys.encryption_dir), store_exists=store_exists)
    if kek is None:
        log.warning(
            "this store was created without a key-encryption key: its inbox data keys are not "
            "wrapped (a copy of data_dir can open them); see agent/keystore.py rule 4"
        )
    return SqliteStore(settings.data_dir, key_encryption_key=kek)


async def run_agent(
    settings: Settings,
    *,
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
    clock: Clock = utcnow,
) -> None:
    """Run until ``stop`` is set; then drain and close everything.

    The API starts even when no broker is reachable: submissions are stored durably in the
    outbox, and the broker session keeps reconnecting in the background.
    """
    revoked: list[str] = []
    async with open_agent(settings, clock=clock) as ctx, aiohttp.ClientSession() as session:
        poster = _head_poster(ctx, session)
        announcer = _announcer(ctx, session)
        clients = [ApiClient.from_settings(c) for c in settings.api.clients]
        service = ctx.service()
        app = create_app(service, clients, max_body_bytes=settings.api.max_body_bytes,
                         require_actor=settings.api.require_actor)  # fmt: skip
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await _listen(runner, settings)
            log.info("agent %s listening on %s", settings.agency, settings.api.listen)
            await _supervise(
                ctx, service, _StopOnRevocation(ctx, stop, revoked), ready, poster, announcer
            )
        finally:
            await runner.cleanup()
            await _final_audit(ctx, poster)
    log.info("agent %s stopped", settings.agency)
    if revoked:
        raise AgencyRevoked(f"{revoked[0]}: the agent stopped and will not retry")


async def _listen(runner: web.AppRunner, settings: Settings) -> None:
    """Start the API on its address; an address in use is one line (rule 6), not a traceback."""
    try:
        await web.TCPSite(runner, settings.api.host, settings.api.port).start()
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
        raise ListenError(
            f"the API cannot listen on {settings.api.listen}: {reason}; another program (or "
            "another isa-agent) holds it: stop that, or set [api] listen in agent.toml "
            "(or ISA_AGENT__API__LISTEN)"
        ) from None


class _StopOnRevocation:
    """``stop``, also set (with the reason kept) once the manifest lists the agency as revoked:
    checked now, at every manifest change, and by :meth:`check` (rule 6)."""

    def __init__(self, ctx: Agent, stop: asyncio.Event, reasons: list[str]) -> None:
        self.event, self._ctx, self._reasons = stop, ctx, reasons
        ctx.trust.on_change(self._manifest_changed)
        self.check()

    def _manifest_changed(self, _old: object, _new: object) -> None:
        self.check()

    def check(self) -> bool:
        reason = revocation(self._ctx.trust, self._ctx.agency)
        if reason is not None and not self._reasons:
            log.error("%s: stopping, not retrying (exit status %d)", reason, EXIT_REVOKED)
            self._reasons.append(reason)
            self.event.set()
        return reason is not None


def _head_poster(ctx: Agent, session: aiohttp.ClientSession) -> HeadPoster | None:
    """The audit-head poster, or None when the manifest comes from a file (no witness)."""
    url = witness_url(ctx.settings.trust, ctx.agency)
    if url is None or not isinstance(ctx.audit, AuditLog):
        return None
    return HeadPoster(ctx.audit, ctx.signing_key, url, session, ctx.clock)


async def _renewer(ctx: Agent, stack: contextlib.AsyncExitStack) -> CertificateRenewer | None:
    """The certificate renewer (``agent.renewal``), or None: a manifest file, or lead time 0."""
    url = renewal_url(ctx.settings.trust, ctx.agency)
    days = ctx.settings.trust.renew_certificate_days
    if url is None or days == 0:
        return None
    session = await stack.enter_async_context(aiohttp.ClientSession())
    return CertificateRenewer(
        ctx.trust, ctx.signing_key, agency=ctx.agency, url=url, session=session,
        clock=ctx.clock, lead=timedelta(days=days),
    )  # fmt: skip


def _announcer(ctx: Agent, session: aiohttp.ClientSession) -> Announcer | None:
    """The key-announcement poster, or None when the manifest comes from a file (no server)."""
    url = server_url(ctx.settings.trust, f"/v1/announcements/{ctx.agency}")
    if url is None:
        return None
    return Announcer(
        agency=ctx.agency, data_dir=ctx.settings.data_dir, keys=ctx.keys, trust=ctx.trust,
        url=url, session=session, audit=ctx.audit, clock=ctx.clock,
    )  # fmt: skip


async def _final_audit(ctx: Agent, poster: HeadPoster | None) -> None:
    """On the way out: write the counted repeats, then anchor the final head at the witness."""
    with contextlib.suppress(StoreUnavailable):
        await ctx.repeats.close(ctx.clock())
    if poster is not None:
        await poster.post_now()


async def _broker_session(ctx: Agent, connected: asyncio.Event, stop: _StopOnRevocation) -> None:
    """The broker session (``agent.broker_session``): reconnected with exponential backoff and
    jitter, one line per attempt; refused credentials re-read the manifest, which may say we
    are revoked (rule 6). While a session is up its transport is attached to the agent's
    publisher (rule 5) and consumes our inbox."""
    settings, receiver = ctx.settings, ctx.receiver()

    def make(urls: Sequence[str]) -> AmqpTransport:
        return AmqpTransport(
            urls, broker_user=settings.broker.user, agency=settings.agency,
            prefetch=settings.broker.prefetch,
        )  # fmt: skip

    async def body(transport: AmqpTransport) -> None:
        with ctx.publisher.attached(transport):
            connected.set()
            ctx.outbox_wakeup.set()
            await transport.consume(receiver)

    async def refused() -> bool:
        await ctx.trust.refresh(ctx.clock())
        return stop.check()

    await BrokerSession(broker_urls(settings), make).run(body, refused)


async def _supervise(
    ctx: Agent,
    service: Service,
    stopping: _StopOnRevocation,
    ready: asyncio.Event | None,
    poster: HeadPoster | None = None,
    announcer: Announcer | None = None,
) -> None:
    connected, stop = asyncio.Event(), stopping.event
    async with contextlib.AsyncExitStack() as stack, asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(_broker_session(ctx, connected, stopping), name="broker-session"),
            group.create_task(ctx.relay().run(), name="outbox-relay"),
            group.create_task(
                ctx.housekeeper(
                    interval=ctx.settings.limits.housekeeping_seconds,
                    audit_keep=_days(ctx.settings.audit.keep_days),
                ).run(),
                name="housekeeping",
            ),
            group.create_task(ctx.trust.poll(), name="manifest-poll"),
        ]
        if poster is not None:
            interval = ctx.settings.audit.witness_seconds
            tasks.append(group.create_task(poster.run(interval), name="audit-witness"))
        renewer = await _renewer(ctx, stack)
        if renewer is not None:
            interval = ctx.settings.trust.manifest_poll_seconds
            tasks.append(group.create_task(renewer.run(interval), name="certificate-renewal"))
        if announcer is not None:  # a rotated key reaches the manifest by itself (15.2)
            interval = ctx.settings.limits.housekeeping_seconds
            tasks.append(group.create_task(announcer.run(interval), name="key-announcer"))
        webhook = ctx.settings.webhook
        if webhook is not None:
            session = await stack.enter_async_context(aiohttp.ClientSession())
            pusher = WebhookPusher(
                webhook.url,
                webhook.secret,
                session,
                fetch_pending=lambda limit: _pending(service, limit),
                mark_delivered=lambda delivery_id: service.ack(WEBHOOK_CALLER, delivery_id),
                backoff=Backoff(maximum=webhook.max_backoff_seconds),
            )
            tasks.append(group.create_task(pusher.run(), name="webhook"))
            tasks.append(group.create_task(_forward(ctx.inbox_wakeup, pusher), name="wake"))
            if webhook.status_events:
                events = _event_pusher(ctx, session)
                tasks.append(group.create_task(events.run(), name="webhook-status-events"))
        if ready is not None:
            await _first(connected, stop)  # ready once the broker session is up (or stopping)
            ready.set()
        await stop.wait()
        log.info("agent %s stopping: draining in-flight work", ctx.agency)
        for task in tasks:
            task.cancel()


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _days(days: float | None) -> timedelta | None:
    return None if days is None else timedelta(days=days)


async def _pending(service: Service, limit: int) -> list[InboxItem]:
    """Deliveries the webhook has not yet handed over (unacknowledged, oldest first)."""
    return (await service.pushed_page(WEBHOOK_CALLER, limit)).items


def _event_pusher(ctx: Agent, session: aiohttp.ClientSession) -> WebhookPusher:
    """Status events to the same webhook (``agent.webhook`` rule 7), polled every second."""
    webhook, store = ctx.settings.webhook, ctx.store
    assert webhook is not None

    async def pending(limit: int) -> list[StatusEventView]:
        return [webhook_event(e) for e in await store.unpushed_events(limit)]

    async def pushed(event_id: str) -> None:
        await store.mark_event_pushed(event_id, ctx.clock())

    return WebhookPusher(
        webhook.url, webhook.secret, session, fetch_pending=pending, mark_delivered=pushed,
        backoff=Backoff(maximum=webhook.max_backoff_seconds), clock=ctx.clock, poll_seconds=1.0,
    )  # fmt: skip


async def _forward(event: asyncio.Event, pusher: WebhookPusher) -> None:
    while True:
        await event.wait()
        event.clear()
        pusher.notify()
