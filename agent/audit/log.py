"""The audit log's sink: one SQLite file whose writer thread appends hash-chained entries.

Rules:
1. Its own SQLite file ``data_dir/audit.sqlite`` (WAL, ``synchronous=FULL``, mode 0600), written
   by the shared :class:`agent.store.WriterThread` (group commit) and read on a second
   connection (:mod:`agent.audit.reading`). ``record`` queues the entry when CALLED, so entries
   are chained in call order; its future resolves only after the entry's COMMIT. A failure is
   ``StoreUnavailable`` (and a bug in an append reaches its own waiters, no one else's).
2. The chain's tail lives in the writer thread: read under the write lock at the start of each
   transaction (another process, ``isa-agent keys rotate``, may have appended), advanced by
   each append job that completes, and forgotten when a transaction rolls back.
3. An event about a message that carries no payload (send, receipt, deliver, ack ...) inherits
   the subject keys, ISA, purpose, type, risk and counterparty of the message's earlier
   entries (``message_context``, the recent ones also in an LRU of ``CONTEXT_CACHE`` messages
   that only the writer thread touches and a rollback empties). The context also keeps who
   submitted the message (person, role, justification): a ``send``, which the agent does on
   its own, names them as the person accountable for the disclosure
   (``agent.audit.events`` rule 5). Any other event naming nobody records its system actor
   (``system:<actor>``, role ``system``).
4. A checkpoint signed with the agency's Ed25519 key is written every ``checkpoint_every``
   entries and on close.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Self

from nacl.signing import VerifyKey

from agent.actor import SYSTEM_ROLE, Actor
from agent.audit import reading, retention
from agent.audit.chain import MIGRATIONS, entry_data, read_tail, to_us, write_checkpoint
from agent.audit.events import INHERITS_SUBMITTER, AuditEvent
from agent.errors import StoreUnavailable
from agent.lifetime import AsyncResource
from agent.store import SqliteFile
from federation.audit_chain import AuditEntry, Break, Checkpoint, chain_hash
from federation.keys import SigningKey
from federation.subjects import SearchKeys, subject_keys

__all__ = ["AUDIT_FILENAME", "CONTEXT_CACHE", "AuditLog"]

AUDIT_FILENAME = "audit.sqlite"
CONTEXT_CACHE = 4096  # messages whose context stays in memory
_CONTEXT_FIELDS = ("counterparty", "isa_id", "isa_version", "purpose", "message_type", "risk")
_PERSON_FIELDS = ("actor_id", "actor_role", "justification")
_Item = tuple[dict[str, Any], datetime]


class AuditLog(AsyncResource):
    """The SQLite audit sink (:class:`agent.audit.AuditSink`). Use ``async with``."""

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
        self._file = SqliteFile(
            self.path,
            "audit log",
            migrations=MIGRATIONS,
            on_begin=self._begun,
            on_rollback=self._forget,
        )
        # writer-thread state (rules 2, 3)
        self._tail: tuple[int, bytes] | None = None
        self._contexts: OrderedDict[str, dict[str, Any]] = OrderedDict()

    @property
    def verify_key(self) -> VerifyKey:
        return self._key.verify_key

    # -- lifetime ------------------------------------------------------------------------

    async def open(self) -> Self:
        await self._file.open()
        return self

    async def close(self) -> None:
        if self._file.is_open and self._sign_on_close:
            with contextlib.suppress(StoreUnavailable):  # a full disk at shutdown
                await self.checkpoint(self._clock())
        await self._file.close()

    # -- recording (rule 1) ----------------------------------------------------------------

    def record(self, event: AuditEvent, at: datetime) -> asyncio.Future[None]:
        """Queue one entry NOW (in call order) and return a future that resolves once it is
        committed (rule 1): await it."""
        return self._file.enqueue(self._append_job([(self._fields(event), at)]))

    def record_many(self, events: Sequence[AuditEvent], at: datetime) -> asyncio.Future[None]:
        """Queue several entries, in this order, NOW, for one commit (e.g. a decision and its
        submit: one fsync instead of two on the submit path); the future resolves once they
        are committed, or raises the failure."""
        return self._file.enqueue(self._append_job([(self._fields(e), at) for e in events]))

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
            **_person(event),
            "fields_altered": tuple({"path": p, "how": h} for p, h in event.fields_altered),
        }

    # -- the writer thread (rules 2-4) -----------------------------------------------------

    def _begun(self, conn: sqlite3.Connection) -> None:
        self._tail = None  # read again under this transaction's write lock

    def _forget(self) -> None:
        self._tail = None
        self._contexts.clear()  # it may hold contexts that were rolled back

    def _append_job(self, items: list[_Item]) -> Callable[[sqlite3.Connection], None]:
        def job(conn: sqlite3.Connection) -> None:
            self._append(conn, items)

        return job

    def _append(self, conn: sqlite3.Connection, items: list[_Item]) -> None:
        seq, prev = self._tail if self._tail is not None else read_tail(conn)
        try:
            for fields, at in items:
                seq, prev = seq + 1, self._insert(conn, seq + 1, prev, fields, at)
                if seq % self._every == 0:
                    self._write_checkpoint(conn, seq, prev, at)
        except BaseException:
            self._contexts.clear()  # this job is rolled back: so may be contexts it cached
            raise
        self._tail = (seq, prev)  # only a completed job moves the tail

    def _insert(
        self, conn: sqlite3.Connection, seq: int, prev: bytes, fields: dict[str, Any], at: datetime
    ) -> bytes:
        message_id = fields["message_id"]
        if message_id is not None:
            fields = self._with_context(conn, message_id, fields)
        if fields["actor_id"] is None:  # nobody named, nobody to inherit: the system (rule 3)
            fields = {**fields, "actor_id": Actor.system(fields["actor"]).id,
                      "actor_role": SYSTEM_ROLE}  # fmt: skip
        data = entry_data(fields, seq=seq, at=at, agency=self.agency)
        digest = chain_hash(prev, data)
        conn.execute(
            "INSERT INTO entries (seq, at_us, message_id, data, entry_hash) VALUES (?, ?, ?, ?, ?)",
            (seq, to_us(at), message_id, data, digest),
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
        counterparty where this event does not say them, from the message's earlier entries."""
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
        submitter = _submitter(merged, known.get("submitted_by"))
        if submitter is not None:
            context["submitted_by"] = submitter
            if merged["action"] in INHERITS_SUBMITTER and merged["actor_id"] is None:
                merged.update(submitter)
        if context != known:
            conn.execute(
                "INSERT OR REPLACE INTO message_context (message_id, context) VALUES (?, ?)",
                (message_id, json.dumps(context, sort_keys=True)),
            )
        self._contexts[message_id] = context
        if len(self._contexts) > CONTEXT_CACHE:
            self._contexts.popitem(last=False)
        return merged

    def _write_checkpoint(
        self, conn: sqlite3.Connection, seq: int, digest: bytes, at: datetime
    ) -> Checkpoint:
        return write_checkpoint(conn, self._key, agency=self.agency, seq=seq, digest=digest, at=at)

    # -- checkpoints, retention --------------------------------------------------------------

    async def checkpoint(self, at: datetime) -> Checkpoint | None:
        """Sign the chain's current end now (also done on close); None if the log is empty."""

        def job(conn: sqlite3.Connection) -> Checkpoint | None:
            row = conn.execute(
                "SELECT seq, entry_hash FROM entries ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            return self._write_checkpoint(conn, int(row[0]), bytes(row[1]), at)

        return await self._file.write(job)

    async def prune_before(self, cutoff: datetime, now: datetime) -> int:
        """Remove entries older than ``cutoff`` behind a signed anchor checkpoint
        (:mod:`agent.audit.retention`), then record the purge as an entry of its own.
        Returns how many entries were removed."""
        removed = await self._file.write(
            lambda conn: retention.prune(
                conn, self._key, agency=self.agency, cutoff=cutoff, now=now
            )
        )
        if removed:
            await self.record(retention.purge_event(removed, cutoff), now)
        return removed

    # -- reading (agent.audit.reading) ------------------------------------------------------

    async def verify(self, verify_key: VerifyKey | None = None) -> Break | None:
        """The first broken entry, or None when the whole log holds."""
        key = verify_key or self.verify_key
        return await self._file.read(lambda conn: reading.verify(conn, key))

    async def entries(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> list[AuditEntry]:
        """Entries with ``since <= at < until``, in order (for export)."""
        return await self._file.read(lambda conn: reading.entries(conn, since, until))

    async def search(self, keys: SearchKeys) -> list[reading.SubjectMatch]:
        """Every entry carrying one of ``keys``, oldest first, with how it matched."""
        return await self._file.read(lambda conn: reading.search(conn, keys))

    async def state(self) -> reading.LogState:
        """Where the log ends, what its checkpoints cover and its anchor (for ``verify``)."""
        return await self._file.read(reading.state)

    async def hash_at(self, seq: int) -> bytes | None:
        """The stored hash of entry ``seq``, or None if there is no such entry."""
        return await self._file.read(lambda conn: reading.hash_at(conn, seq))

    async def count(self) -> int:
        return await self._file.read(reading.count)


def _person(event: AuditEvent) -> dict[str, str | None]:
    """The person fields of an entry; None until resolved (rule 3)."""
    person = event.person
    if person is None:
        return dict.fromkeys(_PERSON_FIELDS)
    return {"actor_id": person.id, "actor_role": person.role,
            "justification": person.justification}  # fmt: skip


def _submitter(fields: dict[str, Any], known: Any) -> dict[str, Any] | None:
    """Rule 3: who submitted the message, from this ``submit`` entry or the context."""
    if fields["action"] == "submit" and fields["message_id"] is not None:
        actor_id = fields["actor_id"] or Actor.system(fields["actor"]).id
        role = fields["actor_role"] or SYSTEM_ROLE
        return {"actor_id": actor_id, "actor_role": role, "justification": fields["justification"]}
    return known if isinstance(known, dict) else None
