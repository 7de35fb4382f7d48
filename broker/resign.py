"""Re-sign the federation manifest before it expires, so no one has to remember a date.

Rules:
1. The manifest is re-signed (the next serial, same content, a fresh validity) once the one on
   disk has less than ``before`` left (:func:`resign_due`, pure); not a moment earlier, so the
   serial does not churn.
2. The check and the publication happen under ``broker.fedstate.federation_lock``: a concurrent
   ``agency add|announce|revoke`` or ``manifest build`` either lands before (and the fresh
   manifest is then no longer due) or after. The serial only ever goes up.
3. Each re-sign is logged and appended as one JSON line to ``DIR/resign-log.jsonl`` (time, old
   and new serial, new expiry): no personal data, no key material.
4. ``isa-broker serve --resign-before HOURS`` runs :func:`resign_loop` beside the HTTP server
   (the default, so nothing else needs installing); ``deploy/systemd/isa-broker-resign.timer``
   runs ``isa-broker manifest resign`` for operators who prefer a timer. Time comes from the
   ``clock`` passed in.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta

from broker.clock import Clock
from broker.fedstate import FederationLayout, federation_lock, publish_manifest
from broker.keys_report import load_manifest
from federation.canonical import format_time
from federation.errors import IsaRelayError

__all__ = ["RESIGN_LOG", "resign_due", "resign_if_due", "resign_loop"]

log = logging.getLogger(__name__)

RESIGN_LOG = "resign-log.jsonl"


def resign_due(expires_at: datetime, now: datetime, before: timedelta) -> bool:
    """Whether a manifest expiring at ``expires_at`` must be re-signed at ``now`` (rule 1)."""
    return now >= expires_at - before


def resign_if_due(layout: FederationLayout, now: datetime, before: timedelta) -> int | None:
    """Publish the next serial if the manifest on disk is due (rules 1-3); the new serial or
    None when it was not due."""
    with federation_lock(layout):
        held = load_manifest(layout)
        if not resign_due(held.expires_at, now, before):
            return None
        serial, _ = publish_manifest(layout, now)
        fresh = load_manifest(layout)
        record = {
            "at": format_time(now),
            "previous_serial": held.serial,
            "serial": serial,
            "previous_expires_at": format_time(held.expires_at),
            "expires_at": format_time(fresh.expires_at),
        }
        with open(layout.root / RESIGN_LOG, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
    log.info(
        "manifest re-signed: serial %d -> %d, expires %s (was %s)",
        held.serial, serial, record["expires_at"], record["previous_expires_at"],
    )  # fmt: skip
    return serial


async def resign_loop(
    layout: FederationLayout, clock: Clock, *, before: timedelta, interval: float
) -> None:
    """Check every ``interval`` seconds and re-sign when due, until cancelled (rule 4). A
    failure (a key file gone, a policy that no longer loads) is logged and retried."""
    while True:
        try:
            await asyncio.to_thread(resign_if_due, layout, clock(), before)
        except (IsaRelayError, OSError) as exc:
            log.error("manifest re-signing failed, will retry: %s", exc)
        await asyncio.sleep(interval)
