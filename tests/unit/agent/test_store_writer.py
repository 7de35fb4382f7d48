"""The writer thread: group commit, per-job rollback, results only after COMMIT."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.errors import StoreUnavailable
from agent.store import WriterThread


def _open(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER PRIMARY KEY)")
    return conn


def insert(value: int) -> Callable[[sqlite3.Connection], int]:
    def job(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t (v) VALUES (?)", (value,))
        return value

    return job


def committed(path: Path) -> list[int]:
    """What another connection sees: only committed rows."""
    return [v for (v,) in sqlite3.connect(path).execute("SELECT v FROM t ORDER BY v")]


class TestWriterThread:
    async def test_a_result_means_the_row_is_committed(self, tmp_path: Path) -> None:
        """When submit returns, another connection already sees the write."""
        db = tmp_path / "w.sqlite3"
        writer = WriterThread(_open(db))
        assert await writer.submit(insert(1)) == 1
        assert committed(db) == [1]
        await writer.close()

    async def test_a_failing_job_is_rolled_back_alone(self, tmp_path: Path) -> None:
        """A job that raises (even a bug) reaches its caller; its batch-mates still commit."""
        db = tmp_path / "w.sqlite3"
        writer = WriterThread(_open(db))

        def broken(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO t (v) VALUES (99)")
            raise ValueError("synthetic bug")

        results = await asyncio.gather(
            writer.submit(insert(1)),
            writer.submit(broken),
            writer.submit(insert(2)),
            return_exceptions=True,
        )
        await writer.close()
        assert (results[0], results[2]) == (1, 2)
        assert isinstance(results[1], ValueError)
        assert committed(db) == [1, 2]

    async def test_a_sqlite_error_fails_only_its_job(self, tmp_path: Path) -> None:
        """A constraint error spoils the batch, which is rerun without the faulty job."""
        db = tmp_path / "w.sqlite3"
        writer = WriterThread(_open(db))
        await writer.submit(insert(5))
        results = await asyncio.gather(
            *(writer.submit(insert(v)) for v in (1, 5, 2)),
            return_exceptions=True,
        )
        await writer.close()
        assert (results[0], results[2]) == (1, 2)
        assert isinstance(results[1], StoreUnavailable)
        assert committed(db) == [1, 2, 5]

    async def test_concurrent_jobs_share_commits(self, tmp_path: Path) -> None:
        """Under concurrency, fewer transactions than jobs."""
        writer = WriterThread(_open(tmp_path / "w.sqlite3"))
        await asyncio.gather(*(writer.submit(insert(v)) for v in range(100)))
        await writer.close()
        assert writer.batches < 100

    async def test_close_finishes_queued_jobs_then_refuses_new_ones(self, tmp_path: Path) -> None:
        """Jobs queued before close commit; afterwards submit raises StoreUnavailable."""
        db = tmp_path / "w.sqlite3"
        writer = WriterThread(_open(db))
        pending = [asyncio.ensure_future(writer.submit(insert(v))) for v in range(3)]
        await asyncio.sleep(0)
        await writer.close()
        assert [await p for p in pending] == [0, 1, 2]
        with pytest.raises(StoreUnavailable):
            await writer.submit(insert(9))
        assert committed(db) == [0, 1, 2]


def order_of_runs(seen: list[int], value: int) -> Callable[[sqlite3.Connection], int]:
    def job(conn: sqlite3.Connection) -> int:
        seen.append(value)
        return value

    return job


class TestEnqueueAndHooks:
    """What the audit log needs from the shared writer (issue 14, point 1)."""

    async def test_enqueued_jobs_run_in_call_order_before_anyone_awaits(
        self, tmp_path: Path
    ) -> None:
        """enqueue queues at call time: jobs run in call order even when awaited in reverse."""
        writer = WriterThread(_open(tmp_path / "w.sqlite3"))
        seen: list[int] = []
        futures = [writer.enqueue(order_of_runs(seen, v)) for v in range(20)]
        assert [await f for f in reversed(futures)] == list(reversed(range(20)))
        await writer.close()
        assert seen == list(range(20))

    async def test_enqueue_on_a_closed_writer_gives_a_failed_future(self, tmp_path: Path) -> None:
        """enqueue never raises: a closed writer's future fails with StoreUnavailable."""
        writer = WriterThread(_open(tmp_path / "w.sqlite3"))
        await writer.close()
        future = writer.enqueue(insert(1))
        with pytest.raises(StoreUnavailable):
            await future

    async def test_on_begin_runs_once_per_transaction(self, tmp_path: Path) -> None:
        """on_begin is called in the writer thread after each BEGIN, once per batch."""
        begun: list[bool] = []
        writer = WriterThread(
            _open(tmp_path / "w.sqlite3"), on_begin=lambda conn: begun.append(conn.in_transaction)
        )
        await writer.submit(insert(1))
        await writer.submit(insert(2))
        await writer.close()
        assert begun == [True, True]
        assert writer.batches == 2

    async def test_on_rollback_hears_a_batch_spoiled_by_a_sqlite_error(
        self, tmp_path: Path
    ) -> None:
        """A sqlite error rolls the whole batch back, and on_rollback is told so (once)."""
        db = tmp_path / "w.sqlite3"
        rolled_back: list[bool] = []
        writer = WriterThread(_open(db), on_rollback=lambda: rolled_back.append(True))
        await writer.submit(insert(5))
        results = await asyncio.gather(
            *(writer.enqueue(insert(v)) for v in (1, 5, 2)), return_exceptions=True
        )
        await writer.close()
        assert isinstance(results[1], StoreUnavailable)
        assert rolled_back == [True]
        assert committed(db) == [1, 2, 5]

    async def test_a_job_rolled_back_alone_is_not_a_batch_rollback(self, tmp_path: Path) -> None:
        """A project error undoes its own savepoint only: on_rollback is not called."""
        rolled_back: list[bool] = []
        writer = WriterThread(
            _open(tmp_path / "w.sqlite3"), on_rollback=lambda: rolled_back.append(True)
        )

        def broken(conn: sqlite3.Connection) -> None:
            raise ValueError("synthetic bug")

        with pytest.raises(ValueError, match="synthetic bug"):
            await writer.submit(broken)
        await writer.close()
        assert rolled_back == []
