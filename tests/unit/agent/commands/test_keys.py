"""Specification of ``isa-agent keys status|rotate`` and the audit commands on a fresh agency."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.cli import main as agent_main
from broker.agency import announce_key
from broker.devfed import create_dev_federation
from broker.fedstate import FederationLayout

REPO = Path(__file__).resolve().parents[4]


@pytest.fixture
def fed(tmp_path: Path) -> FederationLayout:
    policies = tmp_path / "policies-two"
    policies.mkdir()
    shutil.copy(REPO / "policies" / "police-to-assist.yaml", policies)
    create_dev_federation(
        tmp_path / "fed", policies=policies, now=datetime.now(UTC), agencies=None,
        vhost="syn-unit-never-provisioned",
    )  # fmt: skip
    return FederationLayout(tmp_path / "fed")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = agent_main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


class TestKeysCommands:
    def test_status_shows_one_current_key_and_no_secret(
        self, fed: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A fresh agency has one current key, rotation not due; only kids are printed."""
        config = str(fed.agency_dir("assist") / "agent.toml")
        code, out = _run(capsys, "keys", "status", "--config", config)
        assert code == 0
        assert len(re.findall(r"[0-9a-f]{32}  current ", out)) == 1
        assert "rotation: not due" in out
        assert "BEGIN" not in out

    def test_rotate_then_announce_then_status(
        self, fed: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """rotate writes an announcement the operator accepts; status shows current + grace."""
        config = str(fed.agency_dir("assist") / "agent.toml")
        code, out = _run(capsys, "keys", "rotate", "--config", config)
        assert code == 0
        path = Path(out.split("signed announcement: ")[1].split()[0])
        _note, serial = announce_key(fed, path.read_bytes(), datetime.now(UTC))
        assert serial == 2
        code, out = _run(capsys, "keys", "status", "--config", config)
        assert code == 0
        states = sorted(re.findall(r"[0-9a-f]{32}  (\w+) ", out))
        # made in the same second as the federation, the new key starts one second later
        assert states in (["current", "grace"], ["current", "pending"])
        code, out = _run(capsys, "audit", "verify", "--config", config)
        assert code == 0
        assert "1 entries" in out

    def test_audit_verify_without_a_log_is_a_clear_error(
        self, fed: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Before the agent ever ran there is no log: a diagnosis, exit 1, no traceback."""
        config = str(fed.agency_dir("assist") / "agent.toml")
        code, out = _run(capsys, "audit", "verify", "--config", config)
        assert code == 1
        assert "no audit log" in out
        assert "Traceback" not in out

    def test_search_refuses_a_malformed_date_of_birth(
        self, fed: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--subject-dob must be YYYY-MM-DD; the error says so without a traceback."""
        config = str(fed.agency_dir("assist") / "agent.toml")
        _run(capsys, "keys", "rotate", "--config", config)  # creates the log and subject key
        code, out = _run(capsys, "audit", "search", "--config", config, "--subject-name",
                         "Ayla SYNTHWAITE", "--subject-dob", "01/04/1990")  # fmt: skip
        assert code == 1
        assert "YYYY-MM-DD" in out
