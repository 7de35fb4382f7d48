"""Numbered schema migrations of one SQLite file, applied forward on open.

Rules:
1. A file's schema version is its ``PRAGMA user_version``; version ``n`` is what the file holds
   after migration ``n``. A release lists its migrations as ``(version, step)`` pairs numbered
   1, 2, 3 ... with no gap; a step is SQL text or a function of the connection. Migrations
   are never edited once released: a change to the schema is a new migration at the end.
2. Version 1 is the schema of release ``48272d7``, the last release before migrations, whose
   files carry ``user_version`` 0 with the tables already there: version 1 is written with
   ``IF NOT EXISTS`` so it brings both an empty file and such a file to version 1.
3. Opening runs every migration above the file's version, and then sets ``user_version``, in
   ONE ``BEGIN IMMEDIATE`` transaction: a failure leaves the file exactly as it was, and two
   processes opening the same file at once migrate it once.
4. A file whose version is above the last migration was written by a newer release: it is
   refused with :class:`agent.errors.SchemaTooNew`, never opened or downgraded.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

from agent.errors import SchemaTooNew

__all__ = ["Migration", "Step", "latest_version", "migrate", "schema_version"]

Step = str | Callable[[sqlite3.Connection], None]
Migration = tuple[int, Step]


def latest_version(migrations: Sequence[Migration]) -> int:
    """The version the migrations lead to; a list not numbered 1, 2, 3 ... is a bug (rule 1)."""
    versions = [version for version, _ in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migrations must be numbered 1, 2, 3 ... without gaps, not {versions}")
    return len(versions)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(
    conn: sqlite3.Connection, migrations: Sequence[Migration], *, what: str, path: Path
) -> int:
    """Bring the file on ``conn`` (autocommit mode) to the latest version (rules 3, 4)."""
    latest = latest_version(migrations)
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(conn)
        if current > latest:
            raise SchemaTooNew(
                f"the {what} at {path} has schema version {current}, but this isa-agent knows"
                f" versions up to {latest}: it was written by a newer release; run that release"
                " (or newer) instead, this one will not downgrade it"
            )
        for version, step in migrations[current:]:
            _apply(conn, step)
            conn.execute(f"PRAGMA user_version = {int(version)}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return latest


def _apply(conn: sqlite3.Connection, step: Step) -> None:
    if callable(step):
        step(conn)
        return
    for statement in _statements(step):
        conn.execute(statement)


def _statements(script: str) -> list[str]:
    """The SQL statements of ``script`` one by one (``executescript`` would COMMIT first)."""
    found: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            found.append(pending.strip())
            pending = ""
    if pending.strip() and not all(
        part.strip().startswith("--") or not part.strip() for part in pending.splitlines()
    ):
        raise ValueError(f"an incomplete SQL statement at the end of a migration: {pending!r}")
    return found
