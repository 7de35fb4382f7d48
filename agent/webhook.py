"""Optional webhook push of inbox deliveries and status events to the case system, signed and
retried, never dropped.

Rules:
1. A delivery stays pending until the webhook answers 2xx: only then is ``mark_delivered(id)``
   called. Every other outcome (3xx, 4xx, 5xx, timeout, refused connection) is retried with
   exponential backoff capped at ``Backoff.maximum``, forever. Nothing is dropped.
2. Deliveries go out one at a time in the order ``fetch_pending`` returns them (oldest first);
   a failing delivery holds back the ones after it, so the case system sees them in order.
3. Delivery is at-least-once (a crash between the 2xx and ``mark_delivered`` pushes it again):
   the case system de-duplicates by the ``X-ISA-Relay-Delivery`` header (the delivery id).
4. Each POST carries ``X-ISA-Relay-Signature: sha256=<hex HMAC-SHA256 of the body bytes with the
   shared secret>`` and ``X-ISA-Relay-Timestamp``. The timestamp is also inside the signed body
   (``sent_at``), so a receiver can refuse stale replays; :func:`verify_signature` is the
   receiver's check.
5. Redirects are not followed (personal data goes only to the configured URL). Logs name the
   delivery id and the outcome, never the payload, the secret or the URL's query.
6. Time and sleeping come in through ``clock`` and ``sleep`` so tests never wait.
7. One pusher pushes one kind: deliveries (body ``{"event": "delivery", "delivery": ...}``) or
   status events (``{"event": "status", "status": ...}``, ``agent.reviews``), each its own task
   with its own order and retries, so a case system refusing one kind never holds up the other.
   ``X-ISA-Relay-Delivery`` is the delivery's or the event's id.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import aiohttp
from pydantic import BaseModel

from agent.api_models import InboxItem, StatusEventView, WebhookDelivery, WebhookStatusEvent
from agent.clock import Clock, utcnow
from federation.canonical import canonical_json, format_time
from federation.errors import ConfigError, IsaRelayError

__all__ = [
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Backoff",
    "FetchPending",
    "MarkDelivered",
    "Pushed",
    "WebhookPusher",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER: Final = "X-ISA-Relay-Signature"
TIMESTAMP_HEADER: Final = "X-ISA-Relay-Timestamp"
DELIVERY_HEADER: Final = "X-ISA-Relay-Delivery"

Pushed = InboxItem | StatusEventView
"""What a pusher pushes: a delivery, or a status event (rule 7)."""
FetchPending = Callable[[int], Awaitable[Sequence[Pushed]]]
"""``fetch_pending(limit)``: deliveries (or status events) not yet pushed, oldest first."""
MarkDelivered = Callable[[str], Awaitable[None]]
"""``mark_delivered(id)``: the webhook took this delivery or event (answered 2xx)."""

_log = logging.getLogger("agent.webhook")


def sign(secret: str, body: bytes) -> str:
    """The signature header value: ``sha256=`` + hex HMAC-SHA256 of ``body`` under ``secret``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    """The receiver's check of ``X-ISA-Relay-Signature`` (constant-time)."""
    return hmac.compare_digest(sign(secret, body).encode(), header.encode("utf-8", "replace"))


@dataclass(frozen=True)
class Backoff:
    """Delay before retry ``n`` (1-based): ``initial * factor**(n-1)``, at most ``maximum``."""

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 300.0

    def delay(self, attempt: int) -> float:
        exponent = min(attempt - 1, 64)  # beyond this the cap applies anyway
        return float(min(self.maximum, self.initial * self.factor**exponent))


class WebhookPusher:
    """Pushes pending deliveries to one URL; run it as one task in the agent's TaskGroup."""

    def __init__(
        self,
        url: str,
        secret: str,
        session: aiohttp.ClientSession,
        fetch_pending: FetchPending,
        mark_delivered: MarkDelivered,
        *,
        backoff: Backoff = Backoff(),
        clock: Clock = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        timeout_seconds: float = 10.0,
        poll_seconds: float = 5.0,
        batch: int = 50,
    ) -> None:
        if not secret:
            raise ConfigError("webhook: a shared secret is required to sign deliveries")
        self._url = url
        self._secret = secret
        self._session = session
        self._fetch_pending = fetch_pending
        self._mark_delivered = mark_delivered
        self._backoff = backoff
        self._clock = clock
        self._sleep = sleep
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._poll_seconds = poll_seconds
        self._batch = batch
        self._wake = asyncio.Event()

    def __repr__(self) -> str:
        return "WebhookPusher(<url and secret hidden>)"

    def notify(self) -> None:
        """A new delivery is in the inbox: push now instead of at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Push forever; cancel the task to stop (an in-flight POST is simply retried later)."""
        failures = 0
        while True:
            self._wake.clear()
            try:
                pushed = await self.run_once()
                failures = 0
            except IsaRelayError as exc:  # the store could not list or mark: try again later
                failures += 1
                _log.warning("webhook: %s; retrying", type(exc).__name__)
                await self._sleep(self._backoff.delay(failures))
                continue
            if pushed == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_seconds)

    async def run_once(self) -> int:
        """Push every delivery pending now (each until it succeeds); return how many."""
        items = await self._fetch_pending(self._batch)
        for item in items:
            await self.deliver(item)
        return len(items)

    async def deliver(self, item: Pushed) -> int:
        """POST one delivery until a 2xx, then mark it delivered; return the attempts made."""
        attempt = 1
        while not await self.attempt(item):
            delay = self._backoff.delay(attempt)
            _log.info(
                "webhook: delivery %s attempt %d failed; retry in %.1fs", item.id, attempt, delay
            )
            await self._sleep(delay)
            attempt += 1
        await self._mark_delivered(item.id)
        return attempt

    async def attempt(self, item: Pushed) -> bool:
        """One signed POST; True only for a 2xx answer."""
        sent_at = format_time(self._clock())
        body = canonical_json(_body(item, sent_at).model_dump(mode="json"))
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, body),
            TIMESTAMP_HEADER: sent_at,
            DELIVERY_HEADER: item.id,
        }
        try:
            async with self._session.post(
                self._url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as response:
                await response.read()
                ok = 200 <= response.status < 300
                if not ok:
                    _log.warning("webhook: delivery %s answered %d", item.id, response.status)
                return ok
        except (aiohttp.ClientError, TimeoutError) as exc:
            _log.warning("webhook: delivery %s not sent (%s)", item.id, type(exc).__name__)
            return False


def _body(item: Pushed, sent_at: str) -> BaseModel:
    """Rule 7: the signed body for a delivery or a status event."""
    if isinstance(item, InboxItem):
        return WebhookDelivery(sent_at=sent_at, delivery=item)
    return WebhookStatusEvent(sent_at=sent_at, status=item)
