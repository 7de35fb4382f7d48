"""One writer thread per SQLite file, with group commit.

Rules:

1. Exactly one thread owns the writing ``sqlite3.Connection``; async callers hand it *jobs*
   (plain functions of the connection) through a queue and await a future.
2. The thread takes every job waiting (up to ``max_batch``) and runs them in ONE transaction
   (``BEGIN IMMEDIATE`` ... ``COMMIT``): under load, many concurrent writes share one fsync
   ("group commit"). Each job runs inside its own SAVEPOINT, so a job that raises a project
   error (say, an idempotency conflict) is rolled back alone and the others still commit.
3. A caller's future resolves only **after COMMIT returned**; if COMMIT fails, every job of the
   batch fails with ``StoreUnavailable`` and nothing of it is on disk (never half a message).
4. A ``sqlite3.Error`` inside a job (disk full, I/O error) may have rolled back the whole
   transaction (SQLite does that for SQLITE_FULL / SQLITE_IOERR), so the batch is rolled back,
   that job fails with ``StoreUnavailable`` and the other jobs are run again in a new batch.
5. ``close()`` finishes every job already queued, then closes the connection.
6. ``enqueue`` queues a job synchronously, at CALL time, and returns its future: jobs run in the
   order they were enqueued even before anyone awaits them (the audit log chains its entries in
   call order). ``submit`` is ``enqueue`` awaited.
7. State a caller keeps in the writer thread across jobs (the audit chain's tail) hears of each
   transaction through two hooks run in that thread: ``on_begin(conn)`` after ``BEGIN
   IMMEDIATE`` and ``on_rollback()`` after a whole batch was rolled back.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from agent.errors import StoreUnavailable

__all__ = ["Job", "WriterThread"]

T = TypeVar("T")

Job = Callable[[sqlite3.Connection], T]


@dataclass
class _Pending(Generic[T]):
    job: Job[T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]
    checkpoint: bool = False
    outcome: tuple[bool, Any] = field(default=(False, None))


_STOP = object()


class WriterThread:
    """Runs jobs against one connection in a dedicated thread, committing them in batches."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        *,
        max_batch: int = 256,
        on_begin: Callable[[sqlite3.Connection], None] | None = None,
        on_rollback: Callable[[], None] | None = None,
    ) -> None:
        self._conn = connection
        self._max_batch = max_batch
        self._on_begin = on_begin
        self._on_rollback = on_rollback
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="isa-store-writer", daemon=True)
        self._closed = False
        self.batches = 0  # transactions committed (for benchmarks and tests)
        self._thread.start()

    async def submit(self, job: Job[T], *, checkpoint: bool = False) -> T:
        """Run ``job`` in the writer thread; returns its result once its transaction committed.

        ``checkpoint=True`` also checkpoints and truncates the WAL after that commit, so that
        deleted bytes (a shredded data key) do not linger in the WAL file.
        """
        return await self.enqueue(job, checkpoint=checkpoint)

    def enqueue(self, job: Job[T], *, checkpoint: bool = False) -> asyncio.Future[T]:
        """Queue ``job`` now (rule 6); the future resolves once its transaction committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._closed or not self._thread.is_alive():
            future.set_exception(StoreUnavailable("the store is closed"))
            return future
        self._queue.put(_Pending(job, loop, future, checkpoint))
        return future

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while (batch := self._take_batch()) is not None:
                self._run_batch(batch)
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()

    def _take_batch(self) -> list[_Pending[Any]] | None:
        first = self._queue.get()
        if first is _STOP:
            return None
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)  # finish this batch, then stop
                break
            batch.append(item)
        return batch

    def _run_batch(self, batch: list[_Pending[Any]]) -> None:
        while batch:
            failed = self._try_batch(batch)
            if failed is None:
                return
            _resolve(failed, (False, _unavailable(failed.outcome[1])))
            batch = [p for p in batch if p is not failed]

    def _try_batch(self, batch: list[_Pending[Any]]) -> _Pending[Any] | None:
        """Run and commit ``batch``; returns the job whose sqlite error spoiled it, if any."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            if self._on_begin is not None:
                self._on_begin(conn)
        except sqlite3.Error as exc:
            self._rollback()
            for pending in batch:
                _resolve(pending, (False, _unavailable(exc)))
            return None
        for pending in batch:
            if not self._run_job(pending):
                self._rollback()
                return pending
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            for pending in batch:
                _resolve(pending, (False, _unavailable(exc)))
            return None
        self.batches += 1
        if any(p.checkpoint for p in batch):
            with contextlib.suppress(sqlite3.Error):  # best effort: readers may hold the WAL
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        _resolve_all(batch)
        return None

    def _run_job(self, pending: _Pending[Any]) -> bool:
        """Run one job in a savepoint; False if a sqlite error means the batch must go."""
        conn = self._conn
        try:
            conn.execute("SAVEPOINT job")
            result = pending.job(conn)
            conn.execute("RELEASE job")
        except sqlite3.Error as exc:
            pending.outcome = (False, exc)
            return False
        except Exception as exc:  # a project error (or a bug) in this job alone: undo just it
            try:
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
            except sqlite3.Error as inner:
                pending.outcome = (False, inner)
                return False
            pending.outcome = (False, exc)
        else:
            pending.outcome = (True, result)
        return True

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("ROLLBACK")
        if self._on_rollback is not None:
            self._on_rollback()


def _unavailable(cause: object) -> StoreUnavailable:
    detail = cause.__class__.__name__ if not isinstance(cause, sqlite3.Error) else str(cause)
    error = StoreUnavailable(f"cannot store durably: {detail}")
    if isinstance(cause, BaseException):
        error.__cause__ = cause
    return error


def _resolve_all(batch: list[_Pending[Any]]) -> None:
    """Settle a committed batch with one wake-up of each caller's loop, not one per job."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Pending[Any]]] = {}
    for pending in batch:
        by_loop.setdefault(pending.loop, []).append(pending)
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the caller's loop is already closed
            loop.call_soon_threadsafe(_settle_all, settled)


def _settle_all(batch: list[_Pending[Any]]) -> None:
    for pending in batch:
        ok, value = pending.outcome
        _settle(pending.future, ok, value)


def _resolve(pending: _Pending[Any], outcome: tuple[bool, Any]) -> None:
    ok, value = outcome
    with contextlib.suppress(RuntimeError):  # the caller's loop is already closed
        pending.loop.call_soon_threadsafe(_settle, pending.future, ok, value)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # the caller was cancelled; the write still happened (or not) atomically
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
