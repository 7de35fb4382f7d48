"""At rest, a receiving agent's store opens nothing without its key directory: every inbox
payload's data key is wrapped under ``<keys dir>/store.key`` (agent/keystore.py rule 4)."""

from __future__ import annotations

import json
import random
import sqlite3
import stat

import nacl.exceptions
import nacl.secret
import pytest

from agent.errors import StoreUnavailable
from agent.keystore import store_key_path
from agent.store import DEFAULT_FILENAME, SqliteStore
from broker.devfed import DevFederation
from federation.synth import generate_referral
from tests.support.federation import running_agents

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

SENDER, RECIPIENT = "police-scotland", "assist"


async def test_a_copy_of_data_dir_alone_opens_no_payload(live_federation: DevFederation) -> None:
    """After a real delivery: store.key exists (0600, outside data_dir), the stored data key is
    wrapped, and the store refuses to open without that key."""
    payload = generate_referral("police_concern", random.Random(3), risk_level="high")
    body = {
        "to": RECIPIENT,
        "isa": "isa-police-assist-advocacy",
        "purpose": "advocacy_after_charge",
        "type": "police_concern",
        "payload": payload,
    }
    async with running_agents(live_federation, SENDER, RECIPIENT) as agents:
        status, accepted = await agents[SENDER].post("/v1/messages", body)
        assert status == 202, accepted
        [item] = await agents[RECIPIENT].drain_inbox(1)
        assert item["id"] == accepted["id"]
        settings = agents[RECIPIENT].settings

    key_file = store_key_path(settings.keys.encryption_dir)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert settings.data_dir.resolve() not in key_file.resolve().parents
    with sqlite3.connect(settings.data_dir / DEFAULT_FILENAME) as conn:
        [(ciphertext,)] = conn.execute("SELECT ciphertext FROM inbox").fetchall()
        [(stored_key,)] = conn.execute("SELECT key FROM data_keys").fetchall()
    assert len(stored_key) > nacl.secret.SecretBox.KEY_SIZE  # wrapped, not the key itself
    with pytest.raises(StoreUnavailable):
        await SqliteStore(settings.data_dir).open()
    with pytest.raises(StoreUnavailable):
        await SqliteStore(settings.data_dir, key_encryption_key=bytes(32)).open()
    with pytest.raises(nacl.exceptions.CryptoError):  # the stored bytes are not the data key
        nacl.secret.SecretBox(bytes(stored_key)[:32]).decrypt(ciphertext)
    async with SqliteStore(settings.data_dir, key_encryption_key=key_file.read_bytes()) as store:
        assert json.loads(await store.read_inbox_payload(item["id"])) == item["payload"]
