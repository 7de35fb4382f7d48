"""How fast the agent's store commits durably: enqueue one at a time, and under concurrency.

Every figure is for real durable commits (WAL, ``synchronous=FULL``: one fsync per commit) on
the filesystem of ``--dir`` (default: a temporary directory under the current one, so that it is
a real disk, not tmpfs). Under concurrency the writer thread's group commit lets many writes
share one transaction; the "writes per commit" column shows by how much.

    .venv/bin/python benchmarks/store_speed.py [--n 2000] [--concurrency 1 16 64 256]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.store import SqliteStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)
FRAME = b"IRL1" + b"\x00" * 2000  # about the size of a sealed referral envelope
PAYLOAD = b'{"synthetic":true,"ref":"SYN-0001"}' * 30


async def enqueue(store: SqliteStore, i: int) -> None:
    message_id = str(uuid.uuid4())
    await store.enqueue_outgoing(
        message_id=message_id,
        client="bench",
        idempotency_key=f"key-{i}",
        body_sha256=hashlib.sha256(str(i).encode()).hexdigest(),
        recipient="syn-council",
        header={"id": message_id, "synthetic": True},
        frame=FRAME,
        now=NOW,
        expires_at=NOW + timedelta(days=7),
    )


async def accept(store: SqliteStore, i: int) -> None:
    envelope_id = str(uuid.uuid4())
    await store.accept_incoming(
        envelope_id=envelope_id,
        sender="syn-police",
        header={"id": envelope_id, "synthetic": True},
        payload=PAYLOAD,
        now=NOW,
    )


async def run(
    directory: Path, op: Callable[[SqliteStore, int], Awaitable[None]], n: int, concurrency: int
) -> tuple[float, float]:
    """Writes per second and writes per commit for ``n`` writes by ``concurrency`` workers."""
    async with SqliteStore(directory, filename=f"bench-{uuid.uuid4().hex}.sqlite3") as store:
        counter = iter(range(n))

        async def worker() -> None:
            for i in counter:
                await op(store, i)

        start_commits = store.commits
        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(worker())
        elapsed = time.perf_counter() - started
        commits = store.commits - start_commits
    return n / elapsed, n / max(commits, 1)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="writes per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--dir", type=Path, default=Path.cwd())
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="store-bench-", dir=args.dir) as tmp:
        print(f"store speed: {args.n} durable writes each, files under {args.dir}")
        print(f"{'operation':<18}{'concurrency':>12}{'writes/s':>12}{'writes/commit':>15}")
        for name, op in (("enqueue_outgoing", enqueue), ("accept_incoming", accept)):
            for concurrency in args.concurrency:
                rate, per_commit = await run(Path(tmp), op, args.n, concurrency)
                print(f"{name:<18}{concurrency:>12}{rate:>12.0f}{per_commit:>15.1f}")


if __name__ == "__main__":
    asyncio.run(main())
