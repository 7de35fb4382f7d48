"""The subject key: the secret behind the audit log's keyed subject hashes.

Rules:
1. It lives beside the agent's encryption keys (``keys/subject.key``), 32 bytes, mode 0600.
2. It is created on first use; an existing file readable by others is refused
   (``agent.keystore.read_secret_file``).
"""

from __future__ import annotations

from pathlib import Path

from agent.keystore import read_secret_file

__all__ = ["SUBJECT_KEY_FILE", "load_subject_secret", "subject_key_path"]

SUBJECT_KEY_FILE = "subject.key"


def subject_key_path(encryption_dir: Path) -> Path:
    """Where the subject key lives: the agent's key directory (beside ``encryption_dir``)."""
    return encryption_dir.parent / SUBJECT_KEY_FILE


def load_subject_secret(path: Path) -> bytes:
    """Read the 32-byte subject key, or create it (mode 0600) on first use."""
    secret = read_secret_file(path, "subject key", create=True)
    assert secret is not None  # created when missing
    return secret
