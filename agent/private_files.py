"""Everything the agent keeps on disk is private to its own user, from the first byte.

Rules:
1. ``isa-agent`` sets the process umask to ``0o077`` before anything else
   (:func:`restrict_umask`): whatever the agent, SQLite or a library creates is owner-only.
2. Independently of the umask (a library, an embedding process or a test may run the agent
   with another one), directories under ``data_dir`` and the key directories are made ``0700``
   (:func:`private_dir`) and files are created with mode ``0600`` by ``os.open`` before a byte
   is written (:func:`create_private`, :func:`write_private_atomically`); nothing is chmod-ed
   after the fact.
3. SQLite creates a database's ``-wal``, ``-shm`` and ``-journal`` files with the mode of the
   database file itself, so :func:`create_private` makes the database file ``0600`` before
   SQLite first opens it (:func:`prepare_database`).
4. An existing directory or file that grants group or other access is **tightened** and a
   warning names it and its old mode. Decision: tighten rather than refuse, because an agent
   upgraded from a release that left ``0755`` / ``0644`` must keep receiving referrals, and
   tightening ends the exposure at once where refusing would only add an outage. A path the
   agent cannot tighten (owned by another user) is a :class:`~agent.errors.ConfigError`: fail
   closed. (Key files are the exception, as before: ``federation/keyfile.py`` refuses a private
   key readable by others, since it may already have been copied.)
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Final

from federation.errors import ConfigError

__all__ = [
    "PRIVATE_UMASK",
    "create_private",
    "prepare_database",
    "private_dir",
    "restrict_umask",
    "write_private_atomically",
]

log = logging.getLogger(__name__)

PRIVATE_UMASK: Final = 0o077
DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600
#: the files SQLite may create beside a database, with the database's own mode (rule 3)
SQLITE_SIDE_FILES: Final = ("-wal", "-shm", "-journal")


def restrict_umask() -> int:
    """Rule 1: set the process umask to 0o077; returns the previous one."""
    return os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """Rule 2: ``path`` exists as a directory of mode 0700 (made so, or tightened: rule 4)."""
    try:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create the directory ({exc.strerror})") from None
    _tighten(path, DIR_MODE)
    return path


def create_private(path: Path) -> Path:
    """Rule 2: ``path`` exists as a file of mode 0600 (created empty so, or tightened: rule 4).
    An existing file keeps its contents."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create the file ({exc.strerror})") from None
    os.close(fd)
    _tighten(path, FILE_MODE)
    return path


def prepare_database(path: Path) -> Path:
    """Rule 3: the directory 0700, the database file 0600 before SQLite opens it, and any side
    file a previous release left readable tightened (rule 4)."""
    private_dir(path.parent)
    create_private(path)
    for suffix in SQLITE_SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            _tighten(side, FILE_MODE)
    return path


def write_private_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: written to a 0600 temporary file beside it, flushed to
    disk, then renamed over it (readers see the old or the new file, never a part)."""
    private_dir(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # a stale .tmp from an older release may be looser
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def _tighten(path: Path, mode: int) -> None:
    """Rule 4: remove group and other access from ``path``, saying so; fail closed if we can't."""
    try:
        old = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read its permissions ({exc.strerror})") from None
    if not old & 0o077:
        return
    try:
        os.chmod(path, mode)
    except OSError as exc:
        raise ConfigError(
            f"{path}: mode {old:o} lets other local users read it and the agent cannot "
            f"tighten it ({exc.strerror}); chmod {mode:o} it"
        ) from None
    log.warning("%s had mode %o (other local users could read it): tightened to %o",
                path, old, mode)  # fmt: skip
