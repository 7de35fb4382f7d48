"""``isa-agent audit verify`` on a log whose checkpoints or tail were removed (review issue 13,
point 6): such a log no longer passes as intact, and a witness head it contradicts is named."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.audit import AuditEvent, AuditLog
from agent.cli import main as agent_main
from agent.config import Settings, load_settings
from agent.keystore import read_signing_key
from broker.devfed import create_dev_federation
from federation.audit_chain import sign_checkpoint
from federation.audit_head import head_disagreement, sign_head, verify_head
from federation.keys import SigningKey

REPO = Path(__file__).resolve().parents[4]
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
KEY = SigningKey(bytes(range(32)))
EXIT_INTACT, EXIT_UNATTESTED = 0, 3  # documented in agent/commands/audit.py rule 2 and README


@pytest.fixture
async def agent(tmp_path: Path) -> Settings:
    """police-scotland's settings (manifest from a file) and an audit log of 23 entries."""
    fed = create_dev_federation(
        tmp_path / "fed", policies=REPO / "policies", now=NOW,
        agencies=["police-scotland", "assist"], vhost="syn-unit-never-provisioned",
    )  # fmt: skip
    settings = load_settings(fed.agency("police-scotland").config, {})
    log = AuditLog(
        settings.data_dir, agency=settings.agency, subject_secret=bytes(32), clock=lambda: NOW,
        signing_key=read_signing_key(settings.keys.signing_key), checkpoint_every=256,
    )  # fmt: skip
    async with log:
        for n in range(23):
            await log.record(AuditEvent("ack", "case-system", f"m{n}"), NOW + timedelta(seconds=n))
    return settings


def _sql(settings: Settings, *statements: str) -> None:
    with sqlite3.connect(settings.data_dir / "audit.sqlite") as conn:
        for statement in statements:
            conn.execute(statement)


def _verify(settings: Settings, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    config = settings.data_dir.parent / "agent.toml"
    code = agent_main(["audit", "verify", "--config", str(config)])
    return code, capsys.readouterr().out


class TestVerifyWithoutCheckpoints:
    def test_a_cleanly_closed_log_is_intact_and_says_there_is_no_witness(
        self, agent: Settings, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The untouched log exits 0, and says that no witness is configured."""
        code, out = _verify(agent, capsys)
        assert code == EXIT_INTACT, out
        assert "23 entries, chain and checkpoints intact" in out
        assert "no witness is configured" in out

    def test_deleted_checkpoints_no_longer_pass_as_intact(
        self, agent: Settings, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """DELETE FROM checkpoints: exit 3, entries 1..23 named as covered by no checkpoint."""
        _sql(agent, "DELETE FROM checkpoints")
        code, out = _verify(agent, capsys)
        assert code == EXIT_UNATTESTED, out
        assert "23 entries, chain intact but NOT ATTESTED" in out
        assert "entries 1..23 are covered by no signed checkpoint" in out

    def test_deleted_checkpoints_and_tail_no_longer_pass_as_intact(
        self, agent: Settings, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Checkpoints and entries 20..23 deleted: exit 3, never 'intact'."""
        _sql(agent, "DELETE FROM checkpoints", "DELETE FROM entries WHERE seq >= 20")
        code, out = _verify(agent, capsys)
        assert code == EXIT_UNATTESTED, out
        assert "intact" not in out.replace("chain intact but NOT ATTESTED", "")
        assert "entries 1..19 are covered by no signed checkpoint" in out


class TestHeadDisagreement:
    HEAD = sign_head(KEY, agency="police-scotland", seq=23, entry_hash=b"\x01" * 32, at=NOW)

    def test_a_log_behind_the_witness_is_named_with_the_witness_seq_and_hash(self) -> None:
        """A log ending at 19 against a head at 23: the tail was cut, naming seq and hash."""
        problem = head_disagreement(self.HEAD, local_end=19, hash_at_seq=None, anchor_seq=0)
        assert problem is not None
        assert "entry 23 with hash " + "01" * 32 in problem
        assert "ends at entry 19: its tail was cut" in problem

    def test_a_log_with_another_hash_at_the_witness_seq_disagrees(self) -> None:
        """The same seq with another hash: history rewritten."""
        problem = head_disagreement(self.HEAD, local_end=30, hash_at_seq=b"\x02" * 32, anchor_seq=0)
        assert problem is not None
        assert problem.endswith("history rewritten")

    def test_a_log_holding_the_witness_head_agrees(self) -> None:
        """The same hash at the witness's seq (with later entries): no problem."""
        assert (
            head_disagreement(self.HEAD, local_end=30, hash_at_seq=b"\x01" * 32, anchor_seq=0)
            is None
        )

    def test_a_head_removed_by_retention_is_judged_by_the_anchor(self) -> None:
        """Entry 23 pruned behind an anchor at 40: nothing to contradict."""
        assert head_disagreement(self.HEAD, local_end=50, hash_at_seq=None, anchor_seq=40) is None


class TestHeadSignature:
    def test_the_signed_bytes_and_signature_match_the_protocol_example(self) -> None:
        """The docs/protocol.md section 12 example, byte for byte."""
        head = sign_head(KEY, agency="police-scotland", seq=23, entry_hash=bytes(range(32)), at=NOW)
        assert head.signed_bytes() == (
            b'isa-relay/v1 audit-head\x00{"agency":"police-scotland","at":"2026-03-01T09:00:00Z",'
            b'"entry_hash":"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",'
            b'"seq":23,"signer":"56475aa75463474c0285df5dbf2bcab73da651358839e9b77481b2eab107708c"'
            b',"v":1}'
        )
        assert head.sig == (
            "MOZRFk2BGtFL8uPpXWJM10EzDdpMHVY0CTWnj3PGfQfWUUt0DP7WSraXc1TPTdftGfQd-WUWqb0ZPP23799-BA"
        )

    def test_a_checkpoint_signature_does_not_verify_as_a_head(self) -> None:
        """The domain tags differ: a checkpoint's signature cannot be replayed as a head."""
        checkpoint = sign_checkpoint(
            KEY, agency="police-scotland", seq=23, entry_hash=bytes(32), at=NOW
        )
        head = sign_head(KEY, agency="police-scotland", seq=23, entry_hash=bytes(32), at=NOW)
        forged = head.model_copy(update={"sig": checkpoint.sig})
        assert verify_head(head, KEY.verify_key)
        assert not verify_head(forged, KEY.verify_key)
