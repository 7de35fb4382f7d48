"""Files the operator's tools write so that a crash leaves the old bytes or the new.

Rules:
1. :func:`write_durably` replaces a file whole: a temporary file fsynced, renamed over it, then
   the directory (created 0700) fsynced.
2. :func:`append_durably` adds one line to a log file and fsyncs it before returning.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["append_durably", "write_durably"]


def write_durably(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old bytes or the new, never a
    mix: a temporary file fsynced, renamed over it, then the directory (created 0700) fsynced."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_durably(path: Path, line: bytes) -> None:
    """Append ``line`` and a LF to ``path`` (its directory created 0700), fsynced."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(path, "ab") as handle:
        handle.write(line + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
