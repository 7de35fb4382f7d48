"""The agent's audit log: append-only, hash-chained, with checkpoints signed by the agency key.

Rules:
1. Its own SQLite file ``data_dir/audit.sqlite`` (WAL, ``synchronous=FULL``, mode 0600).
   ``record`` returns only after the entry's COMMIT; concurrent records are committed together
   (group commit) by one worker thread, in arrival order. A failure is ``StoreUnavailable``.
2. Each event becomes one :class:`federation.audit_chain.AuditEntry` chained to the one before
   (``entry_hash = SHA-256(prev_hash || canonical_json(entry))``). Nothing is ever updated; only
   retention (``prune_before``) deletes, and only whole prefixes of the chain.
3. The payload an event is about is used only to derive keyed subject hashes
   (:mod:`federation.subjects`) and is then dropped. An event about a message that carries no
   payload (send, receipt, deliver, ack ...) inherits the subject keys of the message's earlier
   entries, so a subject-access search finds it too.
4. A checkpoint signed with the agency's Ed25519 key is written every ``checkpoint_every``
   entries and on close. Retention keeps a checkpoint of the last removed entry as the new
   anchor, so ``verify`` still passes after old entries are gone.
5. Limits, stated: entries appended after the last checkpoint are protected by the chain
   against change, but removing them from the END is only detectable once a later checkpoint
   exists (an agent killed with SIGKILL signs none on the way out), and removing checkpoints
   together with entries is only detectable off the host: ``agent.audit_witness`` posts signed
   heads to the witness, and ``verify`` (``agent/commands/audit.py``) reports a log whose end
   no checkpoint covers as NOT ATTESTED. Checkpoints verify against
   the agency's current signing key; after re-certification with a new key, verify the older
   part with the old public key.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from nacl.signing import VerifyKey

from agent.audit_events import AuditEvent, AuditSink
from agent.errors import StoreUnavailable
from agent.keystore import read_secret_file
from agent.private_files import prepare_database
from federation.audit_chain import (
    GENESIS,
    AuditEntry,
    Break,
    Checkpoint,
    StoredEntry,
    chain_hash,
    first_break,
    sign_checkpoint,
)
from federation.canonical import canonical_json, format_time
from federation.errors import ConfigError
from federation.keys import SigningKey
from federation.manifest import Manifest, diff_manifests
from federation.subjects import SearchKeys, subject_keys

__all__ = [
    "AUDIT_FILENAME",
    "SUBJECT_KEY_FILE",
    "AuditLog",
    "LogState",
    "ManifestAuditor",
    "SubjectMatch",
    "load_subject_secret",
    "subject_key_path",
]

AUDIT_FILENAME = "audit.sqlite"
SUBJECT_KEY_FILE = "subject.key"
T = TypeVar("T")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CONTEXT_CACHE = 4096  # messages whose context stays in memory
_CONTEXT_FIELDS = ("counterparty", "isa_id", "isa_version", "purpose", "message_type", "risk")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq         INTEGER PRIMARY KEY,
    at_us       INTEGER NOT NULL,
    message_id  TEXT,
    data        BLOB NOT NULL,
    entry_hash  BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_at ON entries (at_us);
CREATE TABLE IF NOT EXISTS subject_index (
    key  TEXT NOT NULL,
    seq  INTEGER NOT NULL,
    PRIMARY KEY (key, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS message_context (
    message_id  TEXT PRIMARY KEY,
    context     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq   INTEGER PRIMARY KEY,
    body  BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name   TEXT PRIMARY KEY,
    value  BLOB NOT NULL
);
"""


def _blob(value: bytes | str) -> bytes:
    """A BLOB column as bytes (a tampered row may hold TEXT: it must still be readable)."""
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def entry_data(fields: Mapping[str, Any], *, seq: int, at: datetime, agency: str) -> bytes:
    """The chained bytes of an entry: exactly ``entry_bytes(AuditEntry(...))`` (a property test
    holds them equal), built straight from the fields this module made, without a pydantic
    validation and dump per entry (the audit log was a quarter of the pipeline's CPU)."""
    return canonical_json({**fields, "v": 1, "seq": seq, "at": format_time(at), "agency": agency})


@dataclass(frozen=True, slots=True)
class LogState:
    """The log's last entry (``end``, ``head`` hash), the last seq a signed checkpoint or the
    retention anchor covers (``covered``), and the anchor's seq (0 without one)."""

    end: int
    head: bytes
    covered: int
    anchor: int


class SubjectMatch(AuditEntry):
    """An entry found by a subject search, with how it matched (``name+dob`` or ``name``)."""

    match: str


class AuditLog:
    """The SQLite audit sink (:class:`agent.audit_events.AuditSink`). Use ``async with``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        agency: str,
        signing_key: SigningKey,
        subject_secret: bytes,
        clock: Callable[[], datetime],
        checkpoint_every: int = 256,
        checkpoint_on_close: bool = True,
        filename: str = AUDIT_FILENAME,
    ) -> None:
        self.path = Path(data_dir) / filename
        self.agency = agency
        self._key = signing_key
        self._secret = subject_secret
        self._clock = clock
        self._every = max(1, checkpoint_every)
        self._sign_on_close = checkpoint_on_close
        self._conn: sqlite3.Connection | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[tuple[dict[str, Any], datetime, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        # recent message contexts (rule 3), so that a message's later entries read no row
        self._contexts: OrderedDict[str, dict[str, Any]] = OrderedDict()

    @property
    def verify_key(self) -> VerifyKey:
        return self._key.verify_key

    # -- lifetime ------------------------------------------------------------------------

    async def open(self) -> Self:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="isa-audit")
        try:
            self._conn = await self._run_raw(self._connect)
        except (sqlite3.Error, OSError, ConfigError) as exc:  # ConfigError: agent/private_files
            self._pool.shutdown(wait=False)
            self._pool = None
            raise StoreUnavailable(f"cannot open the audit log at {self.path}: {exc}") from exc
        return self

    def _connect(self) -> sqlite3.Connection:
        prepare_database(self.path)  # 0600 before SQLite opens it: -wal/-shm inherit that
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA secure_delete = ON")
            conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    async def close(self) -> None:
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._flusher)
        if self._conn is not None and self._sign_on_close:
            with contextlib.suppress(StoreUnavailable):
                await self.checkpoint(self._clock())
        if self._conn is not None:
            await self._run_raw(self._conn.close)
            self._conn = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _run_raw(self, fn: Callable[..., T], *args: Any) -> T:
        if self._pool is None:
            raise StoreUnavailable("the audit log is not open")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise StoreUnavailable("the audit log is not open")
        try:
            return await self._run_raw(fn, conn)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot write the audit log: {exc}") from exc

    # -- recording (group commit) --------------------------------------------------------

    def record(self, event: AuditEvent, at: datetime) -> asyncio.Future[Any]:
        """Queue one entry NOW (in call order) and return a future that resolves once it is
        committed (rule 1): await it."""
        return self.record_many((event,), at)

    def record_many(self, events: Sequence[AuditEvent], at: datetime) -> asyncio.Future[Any]:
        """Queue several entries, in this order, NOW, for one commit (e.g. a decision and its
        submit: one fsync instead of two on the submit path); the future resolves once they
        are committed, or raises the first failure."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []
        for event in events:
            futures.append(loop.create_future())
            self._pending.append((self._fields(event), at, futures[-1]))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="audit-flush")
        return futures[0] if len(futures) == 1 else asyncio.gather(*futures)

    def _fields(self, event: AuditEvent) -> dict[str, Any]:
        keys: tuple[str, ...] = ()
        if event.subject_source is not None and event.message_type is not None:
            keys = subject_keys(self._secret, event.message_type, event.subject_source)
        return {
            "action": event.action,
            "actor": event.actor,
            "message_id": event.message_id,
            "counterparty": event.counterparty,
            "isa_id": event.isa_id,
            "isa_version": event.isa_version,
            "purpose": event.purpose,
            "message_type": event.message_type,
            "risk": event.risk,
            "lawful_basis": dict(event.lawful_basis),
            "outcome": event.outcome,
            "fields_shared": tuple(event.fields_shared),
            "fields_withheld": tuple({"path": p, "reason": r} for p, r in event.fields_withheld),
            "detail": event.detail,
            "subject_keys": keys,
        }

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            items = [(fields, at) for fields, at, _ in batch]
            try:
                await self._run(functools.partial(self._append, items=items))
            except Exception as exc:  # a full disk, or a bug: every waiter hears it, none hangs
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for *_, future in batch:
                if not future.done():
                    future.set_result(None)

    def _read_tail(self, conn: sqlite3.Connection) -> tuple[int, bytes]:
        row = conn.execute(
            "SELECT seq, entry_hash FROM entries ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        if row is not None:
            return int(row[0]), bytes(row[1])
        anchor = self._anchor(conn)
        if anchor is not None:
            return anchor.seq, bytes.fromhex(anchor.entry_hash)
        return 0, GENESIS

    def _append(
        self, conn: sqlite3.Connection, items: list[tuple[dict[str, Any], datetime]]
    ) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            seq, prev = self._read_tail(conn)  # under the write lock: safe across processes
            for fields, at in items:
                seq, prev = seq + 1, self._insert(conn, seq + 1, prev, fields, at)
                if seq % self._every == 0:
                    self._write_checkpoint(conn, seq, prev, at)
            conn.execute("COMMIT")
        except BaseException:
            self._contexts.clear()  # it may hold contexts that were rolled back
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    def _insert(
        self, conn: sqlite3.Connection, seq: int, prev: bytes, fields: dict[str, Any], at: datetime
    ) -> bytes:
        message_id = fields["message_id"]
        if message_id is not None:
            fields = self._with_context(conn, message_id, fields)
        data = entry_data(fields, seq=seq, at=at, agency=self.agency)
        digest = chain_hash(prev, data)
        conn.execute(
            "INSERT INTO entries (seq, at_us, message_id, data, entry_hash) VALUES (?, ?, ?, ?, ?)",
            (seq, _us(at), message_id, data, digest),
        )
        if fields["subject_keys"]:
            conn.executemany(
                "INSERT OR IGNORE INTO subject_index (key, seq) VALUES (?, ?)",
                [(k, seq) for k in fields["subject_keys"]],
            )
        return digest

    def _with_context(
        self, conn: sqlite3.Connection, message_id: str, fields: dict[str, Any]
    ) -> dict[str, Any]:
        """Rule 3: merge the subject keys, and fill the message's ISA, purpose, type, risk and
        counterparty where this event does not say them, from the message's earlier entries
        (kept in memory for recent messages; only this log's writer thread writes them)."""
        known = self._contexts.get(message_id)
        if known is None:
            row = conn.execute(
                "SELECT context FROM message_context WHERE message_id = ?", (message_id,)
            ).fetchone()
            known = json.loads(row[0]) if row is not None else {}
        else:
            self._contexts.move_to_end(message_id)
        keys = tuple(sorted(set(known.get("subject_keys", ())) | set(fields["subject_keys"])))
        merged = {**fields, "subject_keys": keys}
        for name in _CONTEXT_FIELDS:
            if merged.get(name) is None and known.get(name) is not None:
                merged[name] = known[name]
        context = {n: merged.get(n) for n in (*_CONTEXT_FIELDS, "subject_keys")}
        if context != known:
            conn.execute(
                "INSERT OR REPLACE INTO message_context (message_id, context) VALUES (?, ?)",
                (message_id, json.dumps(context, sort_keys=True)),
            )
        self._contexts[message_id] = context
        if len(self._contexts) > _CONTEXT_CACHE:
            self._contexts.popitem(last=False)
        return merged

    # -- checkpoints and anchor ----------------------------------------------------------

    def _write_checkpoint(
        self, conn: sqlite3.Connection, seq: int, digest: bytes, at: datetime
    ) -> Checkpoint:
        checkpoint = sign_checkpoint(
            self._key, agency=self.agency, seq=seq, entry_hash=digest, at=at
        )
        conn.execute(
            "INSERT OR IGNORE INTO checkpoints (seq, body) VALUES (?, ?)",
            (seq, checkpoint.model_dump_json().encode("utf-8")),
        )
        return checkpoint

    @staticmethod
    def _anchor(conn: sqlite3.Connection) -> Checkpoint | None:
        row = conn.execute("SELECT value FROM meta WHERE name = 'anchor'").fetchone()
        return None if row is None else Checkpoint.model_validate_json(_blob(row[0]))

    async def checkpoint(self, at: datetime) -> Checkpoint | None:
        """Sign the chain's current end now (also done on close); None if the log is empty."""

        def job(conn: sqlite3.Connection) -> Checkpoint | None:
            row = conn.execute(
                "SELECT seq, entry_hash FROM entries ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            return self._write_checkpoint(conn, int(row[0]), bytes(row[1]), at)

        return await self._run(job)

    # -- reading -------------------------------------------------------------------------

    async def verify(self, verify_key: VerifyKey | None = None) -> Break | None:
        """The first broken entry, or None when the whole log holds (rule 4)."""
        key = verify_key or self.verify_key

        def job(conn: sqlite3.Connection) -> Break | None:
            checkpoints = [
                Checkpoint.model_validate_json(_blob(r[0]))
                for r in conn.execute("SELECT body FROM checkpoints ORDER BY seq")
            ]
            rows = conn.execute("SELECT seq, data, entry_hash FROM entries ORDER BY rowid")
            stored = (StoredEntry(int(r[0]), _blob(r[1]), _blob(r[2])) for r in rows)
            return first_break(stored, checkpoints, key, anchor=self._anchor(conn))

        try:
            return await self._run(job)
        except ValueError as exc:  # an unreadable checkpoint or anchor
            return Break(0, f"a checkpoint is not readable ({exc.__class__.__name__})")

    async def entries(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> list[AuditEntry]:
        """Entries with ``since <= at < until``, in order (for export)."""
        low = _us(since) if since is not None else -(2**62)
        high = _us(until) if until is not None else 2**62

        def job(conn: sqlite3.Connection) -> list[AuditEntry]:
            rows = conn.execute(
                "SELECT data FROM entries WHERE at_us >= ? AND at_us < ? ORDER BY seq", (low, high)
            )
            return [AuditEntry.model_validate_json(_blob(r[0])) for r in rows]

        return await self._run(job)

    async def search(self, keys: SearchKeys) -> list[SubjectMatch]:
        """Every entry carrying one of ``keys``, oldest first, with how it matched."""

        def job(conn: sqlite3.Connection) -> list[SubjectMatch]:
            found: dict[int, str] = {}
            for key, label in ((keys.name_only, "name"), (keys.full, "name+dob")):
                if key is None:
                    continue
                for (seq,) in conn.execute("SELECT seq FROM subject_index WHERE key = ?", (key,)):
                    found[int(seq)] = label
            return list(self._matches(conn, found))

        return await self._run(job)

    @staticmethod
    def _matches(conn: sqlite3.Connection, found: dict[int, str]) -> Iterator[SubjectMatch]:
        for seq in sorted(found):
            row = conn.execute("SELECT data FROM entries WHERE seq = ?", (seq,)).fetchone()
            if row is not None:
                entry = AuditEntry.model_validate_json(_blob(row[0]))
                yield SubjectMatch.model_validate(
                    {**entry.model_dump(), "match": found[seq]}, strict=False
                )

    # -- retention -----------------------------------------------------------------------

    async def prune_before(self, cutoff: datetime, now: datetime) -> int:
        """Remove entries older than ``cutoff`` behind a signed anchor checkpoint (rule 4);
        records the purge as an entry of its own. Returns how many entries were removed."""
        limit = _us(cutoff)

        def job(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT seq, entry_hash FROM entries WHERE at_us < ? ORDER BY seq DESC LIMIT 1",
                (limit,),
            ).fetchone()
            if row is None:
                return 0
            conn.execute("BEGIN IMMEDIATE")
            try:
                anchor = self._write_checkpoint(conn, int(row[0]), bytes(row[1]), now)
                removed = self._delete_through(conn, anchor)
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            return removed

        removed = await self._run(job)
        if removed:
            await self.record(
                AuditEvent("purge", "agent", outcome="audit_entries_removed",
                           detail=f"{removed} audit entries before {format_time(cutoff)} removed;"
                           " a signed checkpoint anchors the rest"),
                now,
            )  # fmt: skip
        return removed

    @staticmethod
    def _delete_through(conn: sqlite3.Connection, anchor: Checkpoint) -> int:
        removed = conn.execute("DELETE FROM entries WHERE seq <= ?", (anchor.seq,)).rowcount
        conn.execute("DELETE FROM subject_index WHERE seq <= ?", (anchor.seq,))
        conn.execute("DELETE FROM checkpoints WHERE seq < ?", (anchor.seq,))
        conn.execute(
            "INSERT OR REPLACE INTO meta (name, value) VALUES ('anchor', ?)",
            (anchor.model_dump_json().encode("utf-8"),),
        )
        return int(removed)

    async def state(self) -> LogState:
        """Where the log ends, what its checkpoints cover and its anchor (for ``verify``)."""

        def job(conn: sqlite3.Connection) -> LogState:
            end, head = self._read_tail(conn)
            anchor = self._anchor(conn)
            row = conn.execute("SELECT max(seq) FROM checkpoints").fetchone()
            anchor_seq = 0 if anchor is None else anchor.seq
            covered = max(anchor_seq, int(row[0] or 0) if row is not None else 0)
            return LogState(end, head, covered, anchor_seq)

        return await self._run(job)

    async def hash_at(self, seq: int) -> bytes | None:
        """The stored hash of entry ``seq``, or None if there is no such entry."""

        def job(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute("SELECT entry_hash FROM entries WHERE seq = ?", (seq,)).fetchone()
            return None if row is None else _blob(row[0])

        return await self._run(job)

    async def count(self) -> int:
        return await self._run(
            lambda conn: int(conn.execute("SELECT count(*) FROM entries").fetchone()[0])
        )


def subject_key_path(encryption_dir: Path) -> Path:
    """Where the subject key lives: the agent's key directory (beside ``encryption_dir``)."""
    return encryption_dir.parent / SUBJECT_KEY_FILE


def load_subject_secret(path: Path) -> bytes:
    """Read the 32-byte subject key, or create it (mode 0600) on first use."""
    secret = read_secret_file(path, "subject key", create=True)
    assert secret is not None  # created when missing
    return secret


class ManifestAuditor:
    """A ``TrustHolder.on_change`` listener that records each manifest change in the log.

    The listener is called synchronously by the trust holder; the record is written by a task
    kept here until done (``drain`` awaits the outstanding ones).
    """

    def __init__(self, audit: AuditSink, clock: Callable[[], datetime]) -> None:
        self._audit = audit
        self._clock = clock
        self._tasks: set[asyncio.Future[None]] = set()

    def __call__(self, old: Manifest | None, new: Manifest) -> None:
        changes = (
            ["initial manifest"] if old is None else diff_manifests(old.document, new.document)
        )
        event = AuditEvent(
            "manifest_change", "agent", outcome=f"serial {new.serial}",
            detail="; ".join(changes)[:2000],
        )  # fmt: skip
        task: asyncio.Future[None] = asyncio.ensure_future(self._audit.record(event, self._clock()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
