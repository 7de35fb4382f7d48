"""The agent's side of the audit witness: post signed heads of its audit log off the host, and
read back the head the witness holds (``federation.audit_head``; docs/protocol.md section 12).

Rules:
1. The witness is the manifest server the agent already polls: for ``[trust] manifest_url =
   "http://host:port/manifest"`` it is ``http://host:port/v1/audit-heads/{agency}``. With a
   manifest FILE there is no witness: nothing is posted and ``audit verify`` says so.
2. Every ``[audit] witness_seconds`` (and once on shutdown, after the last entry) the agent signs
   a checkpoint of its log's end, signs the same ``(seq, entry_hash, at)`` as a head and posts it.
   Nothing is posted while the log has not moved since the last accepted head. A failure is
   logged and retried next time: the witness being down never stops the agent.
3. That interval bounds what can be cut without detection: the entries written since the last
   head the witness accepted.
4. aiohttp errors become :class:`agent.errors.WitnessUnavailable` here; nothing else escapes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime

import aiohttp
from pydantic import ValidationError

from agent.audit.log import AuditLog
from agent.config import TrustSettings
from agent.errors import StoreUnavailable, WitnessUnavailable
from agent.manifest_server import server_url
from federation.audit_head import MAX_HEAD_BYTES, AuditHead, sign_head
from federation.keys import SigningKey

__all__ = ["HeadPoster", "fetch_head", "post_head", "witness_url"]

log = logging.getLogger(__name__)
_TIMEOUT = aiohttp.ClientTimeout(total=10)


def witness_url(trust: TrustSettings, agency: str) -> str | None:
    """Rule 1: the witness URL for ``agency``, or None when the manifest comes from a file."""
    return server_url(trust, f"/v1/audit-heads/{agency}")


async def post_head(session: aiohttp.ClientSession, url: str, head: AuditHead) -> None:
    """POST ``head``; WitnessUnavailable if it cannot be delivered or is refused."""
    body = head.model_dump_json().encode("utf-8")
    try:
        async with session.post(
            url, data=body, headers={"Content-Type": "application/json"}, timeout=_TIMEOUT
        ) as response:
            if response.status >= 300:
                detail = (await response.text())[:500]
                raise WitnessUnavailable(f"the witness refused head {head.seq}: {detail}")
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise WitnessUnavailable(f"cannot reach the witness at {url}: {exc!r}") from None


async def fetch_head(session: aiohttp.ClientSession, url: str) -> AuditHead | None:
    """The head the witness holds, None if it holds none; WitnessUnavailable otherwise."""
    try:
        async with session.get(url, timeout=_TIMEOUT) as response:
            if response.status == 404:
                return None
            if response.status != 200:
                raise WitnessUnavailable(f"the witness at {url} answered {response.status}")
            data = await response.content.read(MAX_HEAD_BYTES + 1)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise WitnessUnavailable(f"cannot reach the witness at {url}: {exc!r}") from None
    try:
        return AuditHead.model_validate_json(data)
    except (ValidationError, json.JSONDecodeError):
        raise WitnessUnavailable(f"the witness at {url} sent no valid audit head") from None


class HeadPoster:
    """Posts the audit log's head to the witness (rules 2, 3)."""

    def __init__(
        self,
        audit: AuditLog,
        key: SigningKey,
        url: str,
        session: aiohttp.ClientSession,
        clock: Callable[[], datetime],
    ) -> None:
        self._audit, self._key, self._url = audit, key, url
        self._session, self._clock = session, clock
        self.posted = 0  # the seq of the last head the witness accepted

    async def run(self, interval: float) -> None:
        while True:
            await self.post_now()
            await asyncio.sleep(interval)

    async def post_now(self) -> AuditHead | None:
        """Sign and post the head now if the log moved; the head accepted, else None."""
        try:
            checkpoint = await self._audit.checkpoint(self._clock())
            if checkpoint is None or checkpoint.seq <= self.posted:
                return None
            head = sign_head(
                self._key, agency=checkpoint.agency, seq=checkpoint.seq,
                entry_hash=bytes.fromhex(checkpoint.entry_hash), at=self._clock(),
            )  # fmt: skip
            await post_head(self._session, self._url, head)
        except (WitnessUnavailable, StoreUnavailable) as exc:
            log.warning("audit head not posted (retried later): %s", exc.message)
            return None
        self.posted = head.seq
        return head
