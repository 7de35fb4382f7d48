"""The operator's key history: which manifest serial first published each encryption key.

Rules:
1. The history is ``DIR/key-history.json``: ``{kid: {agency, serial, published_at,
   recorded_by}}``, written whole and renamed into place.
2. :func:`record_manifest` adds every kid a manifest carries that the history does not know
   yet; ``publish_manifest`` calls it after each build (``recorded_by: "publish"``) and the keys
   report on the manifest it reads (``"report"``: the serial is then an upper bound).
3. This module knows only the federation directory's path, so both the manifest builder
   (``broker.fedstate``) and the report (``broker.keys_report``) can use it without importing
   each other.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from federation.canonical import canonical_json
from federation.errors import ConfigError
from federation.manifest import Manifest

__all__ = ["HISTORY_FILE", "history_file", "read_history", "record_manifest"]

HISTORY_FILE = "key-history.json"


def history_file(root: Path) -> Path:
    """Where the history of the federation directory ``root`` is kept."""
    return root / HISTORY_FILE


def read_history(root: Path) -> dict[str, dict[str, Any]]:
    try:
        raw = json.loads(history_file(root).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        raise ConfigError(f"{history_file(root)}: unreadable key history") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{history_file(root)}: not a key history object")
    return raw


def record_manifest(
    root: Path, manifest: Manifest, *, by: Literal["publish", "report"] = "publish"
) -> dict[str, dict[str, Any]]:
    """Add every kid ``manifest`` carries that the history does not know yet (rule 2)."""
    history = read_history(root)
    changed = False
    for agency in manifest.document.agencies:
        for note in agency.announcements:
            if note.kid not in history:
                history[note.kid] = {
                    "agency": agency.id,
                    "serial": manifest.serial,
                    "published_at": manifest.document.issued_at,
                    "recorded_by": by,
                }
                changed = True
    if changed:
        path = history_file(root)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(canonical_json(history) + b"\n")
        os.replace(tmp, path)
    return history
