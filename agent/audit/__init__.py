"""The agent's audit log: append-only, hash-chained, with checkpoints signed by the agency key.

This ``__init__`` is the package's public surface; code outside imports ``agent.audit`` only.

Rules:
1. One entry per submit, decision, alteration, send, receive, reject, deliver, ack, receipt,
   consultation, purge, key rotation and manifest change (DPA 2018 s62; the mapping of the s62
   kinds to actions is ``events`` rule 1), carrying field paths and reasons, never values; the
   payload an event is about only yields keyed subject hashes (``events``). Every entry names
   the person accountable and their role (``system:<name>`` when nobody was named) and the
   justification they gave (``events`` rule 5).
2. ``AuditLog.record`` queues the entry when CALLED and resolves after its COMMIT, or raises
   ``StoreUnavailable`` (``log``). Each entry is chained to the one before
   (``entry_hash = SHA-256(prev_hash || canonical_json(entry))``); nothing is ever updated, and
   only retention deletes, whole prefixes of the chain behind a signed anchor (``retention``).
3. When the log cannot be written, the operation that wanted the entry:
   - fails, if its own effect is not yet durable (a refused submit answers 503, an inbox page
     is not handed over, a rejected envelope is requeued, not settled): no unlogged disclosure;
   - goes on, if it already committed (a queued submit, a publish, a stored delivery): undoing
     it would lose or double the message. :func:`record_after_commit` then writes an ERROR
     line with the message id to the agent's log, which, with the store's own record of the
     message, is the only trace of the missing entry: the chain holds no gap marker, and
     ``audit verify`` still passes (``events`` rule 3);
   - is retried, for a receipt: its status move is committed, but the handler's error requeues
     the receipt; the broker redelivers it (up to the queue's delivery limit, then it is
     dead-lettered), the move is not repeated, and the redelivery that can be audited is.
4. Limits, stated: entries appended after the last checkpoint are protected by the chain
   against change, but removing them from the END is only detectable once a later checkpoint
   exists (an agent killed with SIGKILL signs none on the way out), and removing checkpoints
   together with entries is only detectable off the host: ``witness`` posts signed heads to
   the witness, and ``verify`` (``agent/commands/audit.py``) reports a log whose end no
   checkpoint covers as NOT ATTESTED. Checkpoints verify against the agency's current signing
   key; after re-certification with a new key, verify the older part with the old public key.

The modules inside:

- ``events``    :class:`AuditEvent`, :class:`Flow`, :func:`message_event`, the :class:`AuditSink`
  protocol and :func:`record_after_commit` (rule 3)
- ``log``       :class:`AuditLog`: the sink, a thin layer over the shared ``agent.store`` writer
  thread (chain tail, message contexts, checkpoints)
- ``chain``     the file's tables, the exact bytes of an entry, the chain's tail and anchor
- ``reading``   verify, export (``entries``), subject-access ``search``, ``state``
- ``retention`` pruning behind a signed anchor
- ``repeats``   :class:`RepeatAudit`: repeated events counted into one entry per window
- ``witness``   posting signed heads to the manifest server's witness endpoint
- ``manifest``  :class:`ManifestAuditor`: manifest changes as entries
- ``keys``      the subject key file
"""

from __future__ import annotations

from agent.audit.chain import entry_data
from agent.audit.events import (
    Action,
    AuditEvent,
    AuditSink,
    Flow,
    NullAudit,
    message_event,
    record_after_commit,
)
from agent.audit.keys import SUBJECT_KEY_FILE, load_subject_secret, subject_key_path
from agent.audit.log import AUDIT_FILENAME, AuditLog
from agent.audit.manifest import ManifestAuditor
from agent.audit.reading import LogState, SubjectMatch
from agent.audit.repeats import RepeatAudit
from agent.audit.witness import HeadPoster, fetch_head, post_head, witness_url

__all__ = [
    "AUDIT_FILENAME",
    "SUBJECT_KEY_FILE",
    "Action",
    "AuditEvent",
    "AuditLog",
    "AuditSink",
    "Flow",
    "HeadPoster",
    "LogState",
    "ManifestAuditor",
    "NullAudit",
    "RepeatAudit",
    "SubjectMatch",
    "entry_data",
    "fetch_head",
    "load_subject_secret",
    "message_event",
    "post_head",
    "record_after_commit",
    "subject_key_path",
    "witness_url",
]
