"""The SQL of referrals held for review (``federation.review``): hold, read, settle, escalate.

Rules (with ``agent.store.sql``'s: plain functions of a connection, none commits):
1. Every state change goes through ``federation.review.act``, inside the job that writes it: a
   review settled by a concurrent request makes the second job raise ``ReviewSettled`` and
   roll back, so two approvals can never both send.
2. Each change writes its status event in the same job (``emit_event``).
3. The held request is stored encrypted (the caller seals it: ``request`` is ciphertext,
   ``data_key`` its key); settling a review (approved, returned, expired) deletes both, so the
   store keeps no copy of a referral once it is sent or will never be sent.
4. An approval inserts the outbox row exactly as a submit does (``insert_outgoing``), in the
   same job as the move to approved.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Final

from agent.errors import IdempotencyConflict, NotFound
from agent.store.records import ReviewHeld, ReviewRecord, StatusEventKind
from agent.store.sql import emit_event, from_us, insert_outgoing, to_us
from federation.review import ReviewAction, ReviewState, act

__all__ = [
    "approve",
    "escalate_overdue",
    "expire_overdue_reviews",
    "insert_review",
    "narrow",
    "read_request",
    "read_review",
    "read_reviews",
    "return_",
]

_COLUMNS: Final = (
    "cursor, id, client, submitter, role, recipient, summary_json, state, narrowed_json, held_at,"
    " due_at, expires_at, escalated_at, decided_at, decided_by, note, message_id"
)
_SUMMARY: Final = (
    "isa_id", "isa_version", "purpose", "message_type", "risk", "shared_fields",
    "withheld_fields", "reasons",
)  # fmt: skip


def _us(value: int | None) -> Any:
    return None if value is None else from_us(value)


def _record(row: tuple[Any, ...]) -> ReviewRecord:
    summary = json.loads(row[6])
    narrowed = None if row[8] is None else tuple(json.loads(row[8]))
    return ReviewRecord(
        cursor=row[0], id=row[1], client=row[2], submitter=row[3], role=row[4], recipient=row[5],
        isa_id=summary["isa_id"], isa_version=summary["isa_version"],
        purpose=summary["purpose"], message_type=summary["message_type"], risk=summary["risk"],
        shared_fields=tuple(summary["shared_fields"]),
        withheld_fields=tuple((p, r) for p, r in summary["withheld_fields"]),
        reasons=tuple(summary["reasons"]), narrowed=narrowed, state=ReviewState(row[7]),
        held_at=from_us(row[9]), due_at=from_us(row[10]), expires_at=from_us(row[11]),
        escalated_at=_us(row[12]), decided_at=_us(row[13]), decided_by=row[14], note=row[15],
        message_id=row[16],
    )  # fmt: skip


def _emit(conn: sqlite3.Connection, review: ReviewRecord, event: StatusEventKind, at: int,
          reason: str | None = None) -> None:  # fmt: skip
    emit_event(
        conn, event, at, client=review.client, recipient=review.recipient, review_id=review.id,
        message_id=review.message_id, isa_id=review.isa_id, purpose=review.purpose,
        message_type=review.message_type, reason=reason,
    )  # fmt: skip


def insert_review(
    conn: sqlite3.Connection,
    review: ReviewRecord,
    *,
    idempotency_key: str | None,
    body_sha256: str,
    request: bytes,
    data_key: bytes,
) -> ReviewHeld:
    """The idempotency check, the pending review and its ``review_pending`` event (one job)."""
    if idempotency_key is not None:
        row = conn.execute(
            "SELECT id, body_sha256 FROM reviews WHERE client = ? AND idempotency_key = ?",
            (review.client, idempotency_key),
        ).fetchone()
        if row is not None:
            if row[1] != body_sha256:
                raise IdempotencyConflict(
                    f"idempotency key {idempotency_key!r} was used with another body"
                )
            return ReviewHeld(review=read_review(conn, row[0]), created=False)
    summary = json.dumps({name: getattr(review, name) for name in _SUMMARY}, sort_keys=True)
    at = to_us(review.held_at)
    conn.execute(
        "INSERT INTO reviews (id, client, idempotency_key, body_sha256, submitter, role,"
        " recipient, summary_json, request, data_key, state, held_at, due_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (review.id, review.client, idempotency_key, body_sha256, review.submitter, review.role,
         review.recipient, summary, request, data_key, ReviewState.PENDING.value, at,
         to_us(review.due_at), to_us(review.expires_at)),
    )  # fmt: skip
    _emit(conn, review, "review_pending", at)
    return ReviewHeld(review=read_review(conn, review.id), created=True)


def read_review(conn: sqlite3.Connection, review_id: str) -> ReviewRecord:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM reviews WHERE id = ?",  # noqa: S608 - constant columns
        (review_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no review {review_id!r}")
    return _record(row)


def read_reviews(
    conn: sqlite3.Connection, after_cursor: int, limit: int, pending_only: bool
) -> list[ReviewRecord]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM reviews WHERE cursor > ? AND (? = 0 OR state = ?)"  # noqa: S608
        " ORDER BY cursor LIMIT ?",
        (after_cursor, int(pending_only), ReviewState.PENDING.value, limit),
    ).fetchall()
    return [_record(r) for r in rows]


def read_request(conn: sqlite3.Connection, review_id: str) -> tuple[bytes, bytes | None]:
    """(ciphertext, data key) of the held request; the key is None once settled (rule 3)."""
    row = conn.execute(
        "SELECT request, data_key FROM reviews WHERE id = ?", (review_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no review {review_id!r}")
    return bytes(row[0]), None if row[1] is None else bytes(row[1])


def _move(
    conn: sqlite3.Connection, review_id: str, action: ReviewAction
) -> tuple[ReviewRecord, ReviewState]:
    """Rule 1: the review and the state ``action`` moves it to (or ``ReviewSettled``)."""
    review = read_review(conn, review_id)
    return review, act(review.state, action)


def _settle(
    conn: sqlite3.Connection, review_id: str, state: ReviewState, at: int, by: str | None,
    note: str = "", message_id: str | None = None,
) -> None:  # fmt: skip
    """Rule 3: a final state, who decided and when; the held request is deleted."""
    conn.execute(
        "UPDATE reviews SET state = ?, decided_at = ?, decided_by = ?, note = ?, message_id = ?,"
        " request = X'', data_key = NULL WHERE id = ?",
        (state.value, at, by, note, message_id, review_id),
    )


def narrow(
    conn: sqlite3.Connection, review_id: str, keep: tuple[str, ...], at: int
) -> ReviewRecord:
    """Pending stays pending with fewer fields to leave (who narrowed is the audit log's)."""
    review, _ = _move(conn, review_id, ReviewAction.NARROW)
    conn.execute(
        "UPDATE reviews SET narrowed_json = ? WHERE id = ?", (json.dumps(list(keep)), review_id)
    )
    _emit(conn, review, "review_narrowed", at)
    return read_review(conn, review_id)


def return_(
    conn: sqlite3.Connection, review_id: str, reason: str, by: str, at: int
) -> ReviewRecord:
    review, state = _move(conn, review_id, ReviewAction.RETURN)
    _settle(conn, review_id, state, at, by, note=reason)
    _emit(conn, review, "review_returned", at, reason)
    return read_review(conn, review_id)


def approve(
    conn: sqlite3.Connection,
    review_id: str,
    *,
    by: str,
    at: int,
    message_id: str,
    header_json: str,
    frame: bytes,
    expires: int,
) -> ReviewRecord:
    """Rules 1, 3, 4: approved, the message queued as a submit queues it, one event."""
    review, state = _move(conn, review_id, ReviewAction.APPROVE)
    insert_outgoing(
        conn, message_id=message_id, client=review.client, idempotency_key=None,
        body_sha256="", recipient=review.recipient, header_json=header_json, frame=frame, at=at,
        expires=expires,
    )  # fmt: skip
    _settle(conn, review_id, state, at, by, message_id=message_id)
    approved = read_review(conn, review_id)
    _emit(conn, approved, "review_approved", at)
    return approved


def _due(conn: sqlite3.Connection, column: str, at: int, extra: str = "") -> list[ReviewRecord]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM reviews WHERE state = ? AND {column} <= ?{extra}"  # noqa: S608
        f" ORDER BY {column}, cursor",
        (ReviewState.PENDING.value, at),
    ).fetchall()
    return [_record(r) for r in rows]


def escalate_overdue(conn: sqlite3.Connection, at: int) -> list[ReviewRecord]:
    """Pending reviews past ``due_at``, once each: marked escalated, one event each."""
    found = _due(conn, "due_at", at, " AND escalated_at IS NULL")
    for review in found:
        conn.execute("UPDATE reviews SET escalated_at = ? WHERE id = ?", (at, review.id))
        _emit(conn, review, "review_overdue", at)
    return [read_review(conn, r.id) for r in found]


def expire_overdue_reviews(conn: sqlite3.Connection, at: int) -> list[ReviewRecord]:
    """Pending reviews past ``expires_at``: expired (never sent), shredded, one event each."""
    found = _due(conn, "expires_at", at)
    for review in found:
        _, state = _move(conn, review.id, ReviewAction.EXPIRE)
        _settle(conn, review.id, state, at, None)
        _emit(conn, review, "review_expired", at, "held for review past its expiry")
    return [read_review(conn, r.id) for r in found]
