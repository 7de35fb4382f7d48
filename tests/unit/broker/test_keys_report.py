"""Specification of isa-broker keys report: overdue agencies flagged with a non-zero exit, the
announcement history with the serial that first published each kid, and a JSON schema."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest

from agent.audit import NullAudit
from agent.config import load_settings
from agent.keyrotation import KeyRotator
from agent.keystore import load_keyring, read_signing_key
from broker.agency import announce_key, revoke_agency
from broker.cli import main as broker_main
from broker.devfed import create_dev_federation
from broker.fedstate import FederationLayout
from broker.keys_report import build_report, render_text
from federation.keys import RotationPolicy

REPO = Path(__file__).resolve().parents[3]
SCHEMA = json.loads((REPO / "docs" / "keys-report.schema.json").read_text())
NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("keys-report") / "fed"
    create_dev_federation(
        root, policies=REPO / "policies", now=NOW, agencies=None,
        vhost="syn-unit-never-provisioned", manifest_validity=timedelta(days=90),
    )  # fmt: skip
    return root


@pytest.fixture
def layout(_template: Path, tmp_path: Path) -> FederationLayout:
    shutil.copytree(_template, tmp_path / "fed")
    return FederationLayout(tmp_path / "fed")


async def _rotate(layout: FederationLayout, agency: str, at: datetime) -> str:
    """Play the agency (KeyRotator) and the operator (announce) for one rotation."""
    settings = load_settings(layout.agency_dir(agency) / "agent.toml", {})
    keys = settings.keys
    rotator = KeyRotator(
        agency=agency, encryption_dir=keys.encryption_dir, data_dir=settings.data_dir,
        signing_key=read_signing_key(keys.signing_key),
        keyring=load_keyring(keys.encryption_dir, RotationPolicy(), None), audit=NullAudit(),
    )  # fmt: skip
    note = await rotator.rotate(at)
    announce_key(
        layout, (settings.data_dir / "announcements" / f"{note.kid}.json").read_bytes(), at
    )
    return note.kid


class TestOverdue:
    def test_fresh_keys_are_not_overdue(self, layout: FederationLayout) -> None:
        """Ten days after the federation was made, nobody is overdue."""
        report = build_report(layout, NOW + timedelta(days=10))
        assert report.overdue == ()
        assert all(a.current_key_age_days == 10.0 for a in report.agencies)

    def test_an_old_key_is_overdue(self, layout: FederationLayout) -> None:
        """Past 30 days every agency is overdue, with the reason."""
        report = build_report(layout, NOW + timedelta(days=29, hours=23))
        assert report.overdue == ()
        report = build_report(layout, NOW + timedelta(days=31))
        assert set(report.overdue) == {a.id for a in report.agencies}
        assert "no announced encryption key is valid now" in report.agencies[0].overdue_reason

    async def test_a_rotated_agency_is_no_longer_overdue(self, layout: FederationLayout) -> None:
        """After assist rotates at day 25, only the others are overdue at day 31."""
        await _rotate(layout, "assist", NOW + timedelta(days=25))
        report = build_report(layout, NOW + timedelta(days=31))
        assert "assist" not in report.overdue
        assert len(report.overdue) == len(report.agencies) - 1

    def test_a_shorter_period_is_honoured(self, layout: FederationLayout) -> None:
        """--rotation-days 7 makes an 8-day-old key overdue."""
        report = build_report(layout, NOW + timedelta(days=8), rotation_period=timedelta(days=7))
        assert "8 days old" in report.agencies[0].overdue_reason

    def test_a_revoked_agency_is_reported_but_not_overdue(self, layout: FederationLayout) -> None:
        """Revocation is listed with its reason; a revoked agency is never 'overdue'."""
        revoke_agency(
            layout, agency_id="assist", reason="SYNTHETIC test", now=NOW + timedelta(days=1)
        )
        report = build_report(layout, NOW + timedelta(days=40))
        assist = next(a for a in report.agencies if a.id == "assist")
        assert assist.revoked
        assert not assist.overdue
        assert [(r.kind, r.reason) for r in assist.revocations] == [("agency", "SYNTHETIC test")]


class TestHistory:
    async def test_each_kid_has_the_serial_that_first_published_it(
        self, layout: FederationLayout
    ) -> None:
        """The original kid is at serial 1; the rotated kid at the serial its announce made."""
        build_report(layout, NOW)
        kid = await _rotate(layout, "assist", NOW + timedelta(days=25))
        report = build_report(layout, NOW + timedelta(days=26))
        assist = next(a for a in report.agencies if a.id == "assist")
        assert [(n.first_serial, n.state) for n in assist.announcements] == [
            (1, "superseded"), (report.manifest_serial, "current"),
        ]  # fmt: skip
        assert assist.announcements[-1].kid == kid
        assert assist.current_kid == kid
        assert assist.last_rotation == assist.announcements[-1].not_before
        assert "first in serial" in render_text(report)


class TestJson:
    async def test_json_validates_against_the_documented_schema(
        self, layout: FederationLayout
    ) -> None:
        """The --json document (with a rotation and a revocation) is valid per the schema."""
        await _rotate(layout, "assist", NOW + timedelta(days=2))
        revoke_agency(
            layout, agency_id="police-scotland", reason="SYNTHETIC", now=NOW + timedelta(days=3)
        )
        document = build_report(layout, NOW + timedelta(days=40)).model_dump(mode="json")
        jsonschema.Draft202012Validator.check_schema(SCHEMA)
        jsonschema.validate(document, SCHEMA, cls=jsonschema.Draft202012Validator)

    def test_the_schema_rejects_a_report_missing_overdue(self, layout: FederationLayout) -> None:
        """The schema is not vacuous: dropping a required field fails validation."""
        document = build_report(layout, NOW).model_dump(mode="json")
        del document["overdue"]
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(document, SCHEMA, cls=jsonschema.Draft202012Validator)


def _two_party_policies(folder: Path) -> Path:
    """Only the police-to-ASSIST ISA: a federation of two agencies, quick to make."""
    policies = folder / "policies-two"
    policies.mkdir()
    shutil.copy(REPO / "policies" / "police-to-assist.yaml", policies)
    return policies


class TestCommand:
    def test_exit_status_is_1_when_any_agency_is_overdue(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Run 45 days after the federation was made: overdue, exit 1, JSON out."""
        old = NOW - timedelta(days=45)
        root = layout.root.parent / "old-fed"
        create_dev_federation(
            root, policies=_two_party_policies(layout.root.parent), now=old, agencies=None,
            vhost="syn-unit-never-provisioned", manifest_validity=timedelta(days=90),
        )  # fmt: skip
        argv = ["keys", "report", "--federation", str(root), "--json"]
        assert broker_main(argv, clock=lambda: NOW) == 1
        out = json.loads(capsys.readouterr().out)
        assert sorted(out["overdue"]) == ["assist", "police-scotland"]

    def test_exit_status_is_0_when_nobody_is_overdue(self, tmp_path: Path) -> None:
        """A federation made the same day passes the scheduled check (judged by the same clock:
        the shipped ISAs' review dates are fixed)."""
        root = tmp_path / "new-fed"
        create_dev_federation(
            root, policies=_two_party_policies(tmp_path), now=NOW, agencies=None,
            vhost="syn-unit-never-provisioned",
        )  # fmt: skip
        assert broker_main(["keys", "report", "--federation", str(root)], clock=lambda: NOW) == 0

    def test_not_a_federation_directory_is_a_clear_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A wrong directory prints a diagnosis, exit 1, no traceback."""
        assert broker_main(["keys", "report", "--federation", str(tmp_path)]) == 1
        err = capsys.readouterr().err
        assert "not found" in err
        assert "Traceback" not in err
