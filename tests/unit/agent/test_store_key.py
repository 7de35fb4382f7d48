"""``agent.keystore.load_store_key``: the store's key-encryption key file (keystore rule 4)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from agent.keystore import load_store_key
from federation.errors import KeyFileError


def test_a_new_store_gets_a_new_private_key(tmp_path: Path) -> None:
    """No store yet: 32 random bytes, mode 0600; the next call reads the same key."""
    path = tmp_path / "store.key"
    first = load_store_key(path, store_exists=False)
    assert first is not None
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_store_key(path, store_exists=True) == first
    assert load_store_key(tmp_path / "other.key", store_exists=False) != first


def test_a_store_made_before_the_key_existed_opens_without_one(tmp_path: Path) -> None:
    """An existing store and no key file: None (the store still opens as it was made), and no
    key file is invented for it."""
    path = tmp_path / "store.key"
    assert load_store_key(path, store_exists=True) is None
    assert not path.exists()


@pytest.mark.parametrize(
    ("content", "mode", "message"),
    [(bytes(32), 0o640, "readable by group"), (b"short", 0o600, "exactly 32 bytes")],
    ids=["group-readable", "wrong-size"],
)
def test_a_bad_key_file_is_refused(tmp_path: Path, content: bytes, mode: int, message: str) -> None:
    """A key others can read, or of the wrong size, is a clear error, never used."""
    path = tmp_path / "store.key"
    path.write_bytes(content)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match=message):
        load_store_key(path, store_exists=True)
