"""One SQLite file of the agent: its writer thread for writes, one reader connection for reads.

Rules:
1. The file lives under its data directory (created 0700), in WAL mode with the store's
   per-connection pragmas (``synchronous=FULL``, ``secure_delete``), mode 0600 from its first
   byte (``agent.private_files.prepare_database``: the -wal/-shm files inherit it). At open, on
   the writing connection and before anything else, its numbered ``migrations`` bring the
   schema forward (:mod:`agent.store.migrations`: a file from a newer release is refused),
   then ``setup`` runs once (checks).
2. Writes are jobs of :class:`agent.store.writer.WriterThread` (group commit, savepoint per job);
   reads run in one thread of their own on a second connection, each in one snapshot.
3. ``sqlite3`` errors never escape: they become ``StoreUnavailable`` naming the file's role
   (``what``: "store", "audit log"), as does any use of a file that is not open.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from agent.errors import StoreUnavailable
from agent.private_files import prepare_database
from agent.store.migrations import Migration, migrate
from agent.store.sql import ReadJob, connect, in_snapshot
from agent.store.writer import Job, WriterThread
from federation.errors import ConfigError

__all__ = ["SqliteFile"]

T = TypeVar("T")


class SqliteFile:
    """A writer thread and a reader over one SQLite file (rules 1-3); ``open`` then ``close``."""

    def __init__(
        self,
        path: Path,
        what: str,
        *,
        migrations: Sequence[Migration],
        setup: Callable[[sqlite3.Connection], None] | None = None,
        max_batch: int = 256,
        on_begin: Callable[[sqlite3.Connection], None] | None = None,
        on_rollback: Callable[[], None] | None = None,
    ) -> None:
        self.path, self.what = path, what
        self._migrations, self._setup = tuple(migrations), setup
        self._max_batch, self._on_begin, self._on_rollback = max_batch, on_begin, on_rollback
        self._writer: WriterThread | None = None
        self._reader: sqlite3.Connection | None = None
        self._read_pool: ThreadPoolExecutor | None = None

    async def open(self) -> None:
        try:
            writer_conn, reader_conn = await asyncio.to_thread(self._connect_both)
        except (sqlite3.Error, OSError, ConfigError) as exc:  # ConfigError: agent/private_files
            raise StoreUnavailable(f"cannot open the {self.what} at {self.path}: {exc}") from exc
        self._writer = WriterThread(
            writer_conn,
            max_batch=self._max_batch,
            on_begin=self._on_begin,
            on_rollback=self._on_rollback,
        )
        self._reader = reader_conn
        self._read_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="isa-sqlite-read")

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer.close()
        pool, self._read_pool = self._read_pool, None
        reader, self._reader = self._reader, None
        if pool is not None and reader is not None:
            await asyncio.get_running_loop().run_in_executor(pool, reader.close)
            pool.shutdown(wait=True)

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    @property
    def commits(self) -> int:
        """Transactions committed so far by this process (fewer than writes under load)."""
        return 0 if self._writer is None else self._writer.batches

    def _connect_both(self) -> tuple[sqlite3.Connection, sqlite3.Connection]:
        prepare_database(self.path)  # 0600 before SQLite opens it: -wal/-shm inherit that
        writer = connect(self.path)
        try:
            mode = writer.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreUnavailable(f"cannot switch {self.path} to WAL mode")
            migrate(writer, self._migrations, what=self.what, path=self.path)
            if self._setup is not None:
                self._setup(writer)
            return writer, connect(self.path)
        except BaseException:
            writer.close()
            raise

    def enqueue(self, job: Job[T], *, checkpoint: bool = False) -> asyncio.Future[T]:
        """Queue a write job now, in call order; its future resolves after its COMMIT."""
        if self._writer is None:
            future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
            future.set_exception(StoreUnavailable(f"the {self.what} is not open"))
            return future
        return self._writer.enqueue(job, checkpoint=checkpoint)

    async def write(self, job: Job[T], *, checkpoint: bool = False) -> T:
        return await self.enqueue(job, checkpoint=checkpoint)

    async def read(self, job: ReadJob[T]) -> T:
        reader, pool = self._reader, self._read_pool
        if reader is None or pool is None:
            raise StoreUnavailable(f"the {self.what} is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, in_snapshot, job, reader)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot read the {self.what}: {exc}") from exc
