"""What the outbox relay, the receiver and the service need from the transport: a publisher.

Rules:
1. :class:`Publisher` is the narrow interface: ``publish`` returns once the broker confirmed the
   message or raises ``TransportError`` (never drops silently); ``connected`` says whether the
   broker connection is up; ``consuming`` whether our inbox consumer runs (the receiver stops
   retrying a store write in place once it does not). :class:`agent.transport.AmqpTransport`
   implements it.
2. The broker session comes and goes (``agent.broker_session`` reconnects with backoff), so the
   agent's parts hold a :class:`LatePublisher`: not connected, and ``publish`` raising
   ``TransportError("not connected")``, except while a transport is attached to it. Attaching
   is the publisher's own business (``with publisher.attached(transport):``); no one else
   swaps a transport in or out of a shared object.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from agent.errors import TransportError
from federation.topology import BodyKind

__all__ = ["LatePublisher", "Publisher"]


class Publisher(Protocol):
    """Publishes frames to other agencies (rule 1)."""

    @property
    def connected(self) -> bool: ...

    @property
    def consuming(self) -> bool: ...

    async def publish(
        self, recipient: str, body: bytes, /, *, message_id: str, kind: BodyKind
    ) -> None: ...


class LatePublisher:
    """A :class:`Publisher` over whichever transport is attached now, if any (rule 2)."""

    def __init__(self) -> None:
        self._transport: Publisher | None = None

    @contextmanager
    def attached(self, transport: Publisher) -> Iterator[None]:
        """Publish through ``transport`` inside the block; detached again on the way out."""
        if self._transport is not None:
            raise TransportError("a transport is attached already")
        self._transport = transport
        try:
            yield
        finally:
            self._transport = None

    @property
    def connected(self) -> bool:
        return self._transport is not None and self._transport.connected

    @property
    def consuming(self) -> bool:
        return self._transport is not None and self._transport.consuming

    async def publish(
        self, recipient: str, body: bytes, /, *, message_id: str, kind: BodyKind
    ) -> None:
        transport = self._transport
        if transport is None:
            raise TransportError("not connected")
        await transport.publish(recipient, body, message_id=message_id, kind=kind)
