"""Explicit async lifetimes: a resource is opened by ``async with`` and always closed by it.

Rules:
1. A resource's ``open`` returns the resource; ``close`` always closes, whatever happened.
2. ``async with resource`` is ``open`` then ``close``: subclasses write those two, not the
   context-manager protocol (the agent's SQLite files all follow it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

__all__ = ["AsyncResource"]


class AsyncResource(ABC):
    """Something opened and closed around a block (rules 1, 2); cf. trio's ``AsyncResource``."""

    @abstractmethod
    async def open(self) -> Self: ...

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
