"""``agent.keystore.load_store_key``: the store's key-encryption key file (keystore rule 4)."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from agent.config import Settings, settings_from_dict
from agent.errors import StoreUnavailable
from agent.keystore import load_store_key
from agent.runtime import agent_store
from agent.store import SqliteStore
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


class TestAgentStore:
    """``agent.runtime.agent_store``: the store as ``isa-agent run`` opens it."""

    @staticmethod
    def _settings(root: Path) -> Settings:
        return settings_from_dict(
            {
                "agency": "assist",
                "data_dir": str(root / "data"),
                "keys": {"signing_key": str(root / "keys/signing.key"),
                         "encryption_dir": str(root / "keys/enc")},
                "trust": {"root_certificate": "root.pem", "root_fingerprint": "ab" * 32,
                          "manifest_file": "manifest.json", "policies_dir": "policies"},
                "broker": {"urls": ["amqp://127.0.0.1:5672/isa-relay"], "user": "assist"},
            },
            base_dir=root,
        )  # fmt: skip

    async def test_a_new_store_is_made_under_a_new_key(self, tmp_path: Path) -> None:
        """First start: store.key appears in the key directory and the store needs it."""
        settings = self._settings(tmp_path)
        (tmp_path / "keys/enc").mkdir(parents=True)
        async with agent_store(settings):
            pass
        assert (tmp_path / "keys/store.key").exists()
        with pytest.raises(StoreUnavailable):
            await SqliteStore(settings.data_dir).open()

    async def test_an_older_store_still_opens_and_the_agent_says_it_is_unwrapped(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A store made before store.key existed opens as it was made, with a warning."""
        settings = self._settings(tmp_path)
        (tmp_path / "keys/enc").mkdir(parents=True)
        async with SqliteStore(settings.data_dir):
            pass
        with caplog.at_level(logging.WARNING, logger="agent.runtime"):
            async with agent_store(settings):
                pass
        assert "without a key-encryption key" in caplog.text
        assert not (tmp_path / "keys/store.key").exists()
