"""The clock the soak moves: one libfaketime timestamp file shared by every faked process.

Rules (measured facts: ``/work/shared/notes/libfaketime.md``, summarised in :data:`LIBFAKETIME`):
1. Every process the soak fakes (the agents, ``isa-broker serve``) is started with the
   environment :meth:`SteppedClock.environ` gives: the multi-threaded library
   (``libfaketimeMT.so.1``; the single-threaded one hands a threaded process the real time now
   and then), ``FAKETIME_TIMESTAMP_FILE`` naming the one file, re-read on every call
   (``FAKETIME_NO_CACHE=1``: with ``FAKETIME_CACHE_DURATION=1`` a process was seen a whole step
   behind the others, and a receiver then refused envelopes from "tomorrow" as
   ``clock_skew``), and a real monotonic clock
   (``FAKETIME_DONT_FAKE_MONOTONIC=1``: a faked one fires every asyncio timer and AMQP heartbeat
   at once when the offset jumps). RabbitMQ is never faked.
   ``FAKETIME_FORCE_MONOTONIC_FIX=0`` too: with libfaketime's default "monotonic fix" every
   timed wait on a condition variable (CPython's GIL hand-over is one) went through the
   timestamp file, and an idle agent spent 11-19 % of a core on it (measured: 0.4 % with it
   off, as without libfaketime). The monotonic clock is real anyway, so there is nothing for
   the fix to correct; timed waits (``Event.wait``, ``Queue.get``, ``Lock.acquire`` with a
   timeout, asyncio timers) were measured to last as long with it off as with it on.
2. The file holds a RELATIVE offset in whole seconds (``+604800``: the real time plus 7 days),
   so every process sees the same fake time whenever it started; it is replaced atomically
   (written beside, then renamed), so no process ever reads half a number.
3. The soak's own process is not faked: it computes the same fake time (:meth:`now`: the real
   time plus the offset) and hands it to the operator's scheduled jobs, which it runs
   in-process through ``isa-broker``'s clock seam (``broker.cli.main(clock=...)``).
4. The clock only moves forward: :meth:`move_to` refuses a moment before the current fake time
   (the offset itself may shrink by the real seconds that passed in between).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = ["LIBFAKETIME", "ClockError", "SteppedClock", "libfaketime_available"]

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")


class ClockError(RuntimeError):
    """The fake clock cannot be used or was asked to go backwards."""


def libfaketime_available(library: Path = LIBFAKETIME) -> bool:
    """Whether the multi-threaded libfaketime is installed (``scripts/bootstrap`` installs it)."""
    return library.is_file()


def _real_now() -> datetime:
    return datetime.now(UTC)


class SteppedClock:
    """A fake time ``offset`` seconds ahead of the real one, written to ``path`` (rules 1-4)."""

    def __init__(self, path: Path, *, library: Path = LIBFAKETIME) -> None:
        if not libfaketime_available(library):
            raise ClockError(f"{library} is missing: install libfaketime (scripts/bootstrap)")
        self.path, self.library = path, library
        self._offset = 0
        self._write()

    @property
    def offset(self) -> int:
        """Seconds the fake clock is ahead of the real one."""
        return self._offset

    def now(self) -> datetime:
        """The fake time every faked process sees now (rule 3)."""
        return _real_now() + timedelta(seconds=self._offset)

    def move_to(self, moment: datetime) -> None:
        """Set the fake time to ``moment`` (to the second) for every faked process (rule 2)."""
        if moment < self.now() - timedelta(seconds=1):
            raise ClockError(f"the soak clock only moves forward ({moment.isoformat()} is past)")
        self._offset = round((moment - _real_now()).total_seconds())
        self._write()

    def _write(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(f"{self._offset:+d}\n")
        tmp.replace(self.path)

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) plus libfaketime's (rule 1)."""
        env = dict(os.environ if base is None else base)
        env.update(
            LD_PRELOAD=str(self.library),
            FAKETIME_TIMESTAMP_FILE=str(self.path),
            FAKETIME_NO_CACHE="1",
            FAKETIME_DONT_FAKE_MONOTONIC="1",
            FAKETIME_FORCE_MONOTONIC_FIX="0",
        )
        return env
