"""Fixtures for the store tests: a clock, synthetic envelopes, and each Store implementation."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.store import EnqueueResult, SqliteStore, Store
from tests.support.memory_store import MemoryStore

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Every Store implementation the contract suite must hold for."""
    if request.param == "memory":
        yield MemoryStore()
        return
    async with SqliteStore(tmp_path) as sqlite_store:
        yield sqlite_store


def header(message_id: str, recipient: str = "syn-council") -> dict[str, Any]:
    """A synthetic envelope header (no personal data, as on the wire)."""
    return {
        "v": 1,
        "id": message_id,
        "type": "marac_referral",
        "from": "syn-police",
        "to": recipient,
        "synthetic": True,
    }


async def enqueue(
    store: Store,
    message_id: str,
    *,
    key: str | None = None,
    body: bytes = b'{"synthetic":true,"ref":"SYN-0001"}',
    client: str = "case-system",
    now: datetime = NOW,
    ttl: timedelta = timedelta(days=7),
    recipient: str = "syn-council",
) -> EnqueueResult:
    """Queue a synthetic envelope frame the way the API would."""
    return await store.enqueue_outgoing(
        message_id=message_id,
        client=client,
        idempotency_key=key,
        body_sha256=hashlib.sha256(body).hexdigest(),
        recipient=recipient,
        header=header(message_id, recipient),
        frame=b"IRL1" + message_id.encode() + body,
        now=now,
        expires_at=now + ttl,
    )
