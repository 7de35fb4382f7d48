"""The agent's side of certificate renewal: ask before the certificate ends, install the answer.

Rules:
1. The manifest is where the agent's certificate lives: when the certificate the manifest
   carries for this agency ends within ``[trust] renew_certificate_days`` (``renewal_due``), the
   agent signs a renewal request with its current signing key (``federation.renewal``) and
   posts it to the manifest server: for ``[trust] manifest_url = "http://host:port/manifest"``
   it is ``http://host:port/v1/renewals/{agency}``. With a manifest FILE there is no server:
   nothing is posted and the operator renews by hand (``isa-broker agency reissue``).
2. The renewal re-certifies the same key, so installing it is accepting the next manifest (the
   manifest poll does that; after an ``issued`` answer the agent polls at once): no restart,
   no key file touched.
3. A request the server took (``issued``, or ``pending``: the CA key is offline and a scheduled
   job issues it) is not posted again for ``REPEAT_AFTER``, so even a lead time longer than the
   certificate's validity renews at most twice a day; a refused or failed one is retried at the
   next check. Failures are logged: renewal being impossible never stops the agent.
4. :func:`require_own_certificate` is the sending gate: while the manifest's certificate of
   this agency is not valid now, a submit is refused (503, nothing stored) instead of being
   accepted and then refused by every recipient as ``sender_key_expired``.
5. aiohttp errors become :class:`agent.errors.RenewalUnavailable` here; nothing else escapes.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

import aiohttp
from yarl import URL

from agent.clock import Clock
from agent.config import TrustSettings
from agent.errors import RenewalUnavailable, TrustUnavailable
from agent.trust import TrustHolder
from federation.canonical import format_time
from federation.keys import SigningKey
from federation.manifest import Manifest
from federation.renewal import renewal_due, sign_renewal

__all__ = ["REPEAT_AFTER", "CertificateRenewer", "renewal_url", "require_own_certificate"]

log = logging.getLogger(__name__)
REPEAT_AFTER = timedelta(hours=12)
_TIMEOUT = aiohttp.ClientTimeout(total=10)


def renewal_url(trust: TrustSettings, agency: str) -> str | None:
    """Rule 1: where renewal requests go, or None when the manifest comes from a file."""
    if not trust.manifest_url:
        return None
    return str(URL(trust.manifest_url).with_path(f"/v1/renewals/{agency}").with_query(None))


def require_own_certificate(manifest: Manifest, agency: str, now: datetime) -> None:
    """Rule 4: TrustUnavailable unless this agency's certificate is valid at ``now``."""
    own = manifest.signing_key_of(agency)
    if own is None or own.revoked or not own.valid_at(now):
        end = "" if own is None else f" (valid {format_time(own.not_before)} .. "
        end += "" if own is None else f"{format_time(own.not_after)})"
        raise TrustUnavailable(
            f"this agency's signing certificate is not valid now{end}: recipients would refuse "
            "the referral (sender_key_expired); sending is stopped until it is renewed"
        )


async def post_request(session: aiohttp.ClientSession, url: str, body: bytes) -> str:
    """POST a signed request; the server's ``status`` (issued|pending) or RenewalUnavailable."""
    try:
        async with session.post(
            url, data=body, headers={"Content-Type": "application/json"}, timeout=_TIMEOUT
        ) as response:
            if response.status not in (200, 202):
                detail = (await response.text())[:500]
                raise RenewalUnavailable(f"the renewal was refused ({response.status}): {detail}")
            answer = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        raise RenewalUnavailable(f"cannot reach the renewal endpoint {url}: {exc!r}") from None
    status = answer.get("status") if isinstance(answer, dict) else None
    return status if status in ("issued", "pending") else "pending"


class CertificateRenewer:
    """Asks for this agency's certificate to be renewed when it is due (rules 1-3)."""

    def __init__(
        self,
        trust: TrustHolder,
        key: SigningKey,
        *,
        agency: str,
        url: str,
        session: aiohttp.ClientSession,
        clock: Clock,
        lead: timedelta,
    ) -> None:
        self._trust, self._key, self._agency, self._url = trust, key, agency, url
        self._session, self._clock, self._lead = session, clock, lead
        self._asked: datetime | None = None  # when the server last took a request

    async def run(self, interval: float) -> None:
        while True:
            await self.renew_if_due()
            await asyncio.sleep(interval)

    async def renew_if_due(self) -> str | None:
        """Post a request if one is due now; the server's answer, or None (nothing posted)."""
        now = self._clock()
        manifest = self._trust.manifest
        if manifest is None or not renewal_due(manifest, self._agency, now, self._lead):
            return None
        if self._asked is not None and now - self._asked < REPEAT_AFTER:
            return None
        request = sign_renewal(self._key, agency=self._agency, at=now)
        try:
            status = await post_request(
                self._session, self._url, request.model_dump_json().encode("utf-8")
            )
        except RenewalUnavailable as exc:
            log.warning("certificate renewal not requested (retried later): %s", exc.message)
            return None
        log.info("certificate renewal requested: %s", status)
        self._asked = now
        if status == "issued":
            await self._trust.refresh(now)
        return status
