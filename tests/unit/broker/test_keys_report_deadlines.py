"""Specification of the deadlines in ``isa-broker keys report`` (issue 15 point 6): everything
that expires, with its days left at a fixed ``now``; an expired root, signer or agency
certificate fails the report; the thresholds change the exit status; ``--prometheus`` parses."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.cli import main as broker_main
from broker.devfed import create_dev_federation
from broker.fedstate import FederationLayout, publish_manifest, read_private
from broker.keys_report import build_report, exit_status, render_prometheus, render_text
from federation import pki
from federation.deadlines import Thresholds

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """police-scotland and ASSIST (one ISA), made at NOW; the manifest valid for 7 days."""
    base = tmp_path_factory.mktemp("deadlines")
    policies = base / "policies"
    policies.mkdir()
    shutil.copy(REPO / "policies" / "police-to-assist.yaml", policies)
    create_dev_federation(
        base / "fed", policies=policies, now=NOW, agencies=None,
        vhost="syn-unit-never-provisioned",
    )  # fmt: skip
    return base / "fed"


@pytest.fixture
def layout(_template: Path, tmp_path: Path) -> FederationLayout:
    shutil.copytree(_template, tmp_path / "fed")
    return FederationLayout(tmp_path / "fed")


def _reissue(layout: FederationLayout, which: str, not_after: datetime) -> None:
    """Re-certify the root, the signer or an agency with the same key, expiring at
    ``not_after``, and publish the next manifest at NOW."""
    root_key = read_private(layout.root_key)
    root = pki.certificate_from_bytes(layout.root_cert.read_bytes())
    if which == "root":
        new = pki.make_root(
            root_key, name=root.subject.rfc4514_string().removeprefix("CN="),
            not_before=NOW - DAY, not_after=not_after,
        )  # fmt: skip
        layout.root_cert.write_bytes(pki.certificate_to_pem(new))
    else:
        signer = which == "signer"
        path = layout.signer_cert if signer else layout.agency_cert(which)
        old = pki.certificate_from_bytes(path.read_bytes())
        role = pki.CertificateRole.MANIFEST_SIGNER if signer else pki.CertificateRole.AGENCY
        new = pki.issue_certificate(
            root_key=root_key, root_cert=root,
            subject="manifest-signer" if signer else which,
            public_key=pki.certificate_public_key(old), role=role,
            not_before=NOW - DAY, not_after=not_after, serial=900,
        )  # fmt: skip
        path.write_bytes(pki.certificate_to_pem(new))
    publish_manifest(layout, NOW)


class TestDeadlines:
    def test_every_deadline_appears_with_its_days_left(self, layout: FederationLayout) -> None:
        """Manifest, root, signer, both agencies' certificates and keys, the ISA's two dates."""
        report = build_report(layout, NOW + DAY)
        found = {(d.kind, d.subject): (d.days_left, d.expires_at) for d in report.deadlines}
        assert found == {
            ("manifest", "federation"): (6.0, "2026-12-01T12:00:00Z"),
            ("root_certificate", "federation"): (3649.0, "2036-11-21T12:00:00Z"),
            ("signer_certificate", "federation"): (364.0, "2027-11-24T12:00:00Z"),
            ("agency_certificate", "assist"): (364.0, "2027-11-24T12:00:00Z"),
            ("agency_certificate", "police-scotland"): (364.0, "2027-11-24T12:00:00Z"),
            ("encryption_key", "assist"): (29.0, "2026-12-24T12:00:00Z"),
            ("encryption_key", "police-scotland"): (29.0, "2026-12-24T12:00:00Z"),
            ("isa_review", "isa-police-assist-advocacy"): (216.5, "2027-06-30T00:00:00Z"),
            ("isa_end", "isa-police-assist-advocacy"): (400.5, "2027-12-31T00:00:00Z"),
        }

    def test_a_fresh_federation_is_ok_and_exits_0(self, layout: FederationLayout) -> None:
        """Nothing is near its deadline a day after the federation was made."""
        report = build_report(layout, NOW + DAY)
        assert (report.status, exit_status(report)) == ("ok", 0)

    def test_the_text_form_names_each_deadline_with_its_days_left(
        self, layout: FederationLayout
    ) -> None:
        """One line per deadline with its severity, expiry and days left."""
        text = render_text(build_report(layout, NOW + DAY))
        assert "  [ok] signer_certificate federation: 2027-11-24T12:00:00Z (364 days left)" in text
        review = "isa_review isa-police-assist-advocacy: 2027-06-30T00:00:00Z (216.5 days left)"
        assert f"  [ok] {review}" in text


class TestExpiredCertificates:
    @pytest.mark.parametrize("which", ["root", "signer", "assist"])
    def test_expired_certificate_fails_the_report_not_exit_0(
        self, layout: FederationLayout, which: str
    ) -> None:
        """A lapsed root, manifest-signer or agency certificate makes the report exit 1."""
        _reissue(layout, which, NOW + 2 * DAY)
        report = build_report(layout, NOW + 3 * DAY)
        expired = [(d.kind, d.subject) for d in report.deadlines if d.severity == "expired"]
        kind = {"root": "root_certificate", "signer": "signer_certificate"}.get(
            which, "agency_certificate"
        )
        subject = "federation" if which in ("root", "signer") else which
        assert (expired, report.overdue, exit_status(report)) == ([(kind, subject)], (), 1)

    def test_expired_agency_certificate_fails_the_command(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``isa-broker keys report`` exits 1 and says EXPIRED (it printed that with exit 0)."""
        _reissue(layout, "assist", NOW + 2 * DAY)
        code = broker_main(
            ["keys", "report", "--federation", str(layout.root)], clock=lambda: NOW + 3 * DAY
        )
        out = capsys.readouterr().out
        assert code == 1
        assert "[expired] agency_certificate assist: 2026-11-26T12:00:00Z (EXPIRED)" in out


class TestThresholds:
    def test_a_certificate_within_the_warning_threshold_exits_3(
        self, layout: FederationLayout
    ) -> None:
        """An agency certificate with 20 days left is a warning under --warn-days 30."""
        _reissue(layout, "assist", NOW + 21 * DAY)
        report = build_report(layout, NOW + DAY)
        assert (report.status, exit_status(report)) == ("warning", 3)

    def test_a_certificate_within_the_critical_threshold_exits_2(
        self, layout: FederationLayout
    ) -> None:
        """An agency certificate with 5 days left is critical under --critical-days 7."""
        _reissue(layout, "assist", NOW + 6 * DAY)
        report = build_report(layout, NOW + DAY)
        assert (report.status, exit_status(report)) == ("critical", 2)

    def test_a_lower_warn_days_makes_the_same_report_pass(self, layout: FederationLayout) -> None:
        """The same 20 days left passes with --warn-days 14."""
        _reissue(layout, "assist", NOW + 21 * DAY)
        thresholds = Thresholds(warn=14 * DAY, critical=7 * DAY)
        report = build_report(layout, NOW + DAY, thresholds=thresholds)
        assert (report.status, exit_status(report)) == ("ok", 0)

    def test_a_manifest_the_resigning_job_left_is_critical(
        self, layout: FederationLayout
    ) -> None:
        """With less than 48 hours left the manifest is critical: re-signing is not running."""
        report = build_report(layout, NOW + 5 * DAY + timedelta(hours=13))
        manifest = next(d for d in report.deadlines if d.kind == "manifest")
        assert (manifest.severity, exit_status(report)) == ("critical", 2)

    def test_warn_and_critical_days_on_the_command_line(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``--warn-days 400`` turns the ISA's end date into a warning: exit 3."""
        argv = ["keys", "report", "--federation", str(layout.root), "--json"]
        code = broker_main([*argv, "--warn-days", "401"], clock=lambda: NOW + DAY)
        out = json.loads(capsys.readouterr().out)
        assert (code, out["status"], out["thresholds"]["warn_days"]) == (3, "warning", 401.0)

    def test_critical_days_above_warn_days_is_a_clear_error(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``--critical-days 40 --warn-days 30`` is refused with a diagnosis."""
        argv = ["keys", "report", "--federation", str(layout.root), "--critical-days", "40"]
        assert broker_main(argv, clock=lambda: NOW) == 1
        assert "--critical-days must not be more than --warn-days" in capsys.readouterr().err


_SAMPLE = re.compile(r'^([a-z_]+)(\{(?:[a-z_]+="(?:[^"\\\n]|\\.)*",?)*\})? (-?[0-9.e+]+)$')


def parse_exposition(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """A strict reader of the text exposition format: every sample's family is a declared
    gauge, every line is a comment, a TYPE or a well-formed sample."""
    types: dict[str, str] = {}
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
            continue
        match = _SAMPLE.match(line)
        assert match is not None, line
        name, labels, value = match.group(1), match.group(2) or "", match.group(3)
        assert types.get(name) == "gauge", line
        pairs = dict(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', labels))
        samples.setdefault(name, []).append((pairs, float(value)))
    return samples


class TestPrometheus:
    def test_prometheus_output_parses_and_has_every_gauge(
        self, layout: FederationLayout
    ) -> None:
        """Each deadline is a gauge sample with its seconds left, and the families parse."""
        now = NOW + DAY
        samples = parse_exposition(render_prometheus(build_report(layout, now), now))
        left = {
            (labels["kind"], labels["subject"]): value
            for labels, value in samples["isa_federation_expires_in_seconds"]
        }
        assert left[("manifest", "federation")] == 6 * 86400
        assert left[("agency_certificate", "assist")] == 364 * 86400
        assert left[("root_certificate", "federation")] == 3649 * 86400
        assert left[("isa_review", "isa-police-assist-advocacy")] == 216.5 * 86400
        assert len(left) == 9
        assert samples["isa_federation_manifest_serial"] == [({}, 1.0)]
        assert samples["isa_federation_rotation_overdue"] == [
            ({"agency": "assist"}, 0.0), ({"agency": "police-scotland"}, 0.0)
        ]

    def test_prometheus_command_exits_with_the_report_status(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``--prometheus`` prints gauges and still exits 1 when a certificate expired."""
        _reissue(layout, "signer", NOW + 2 * DAY)
        argv = ["keys", "report", "--federation", str(layout.root), "--prometheus"]
        code = broker_main(argv, clock=lambda: NOW + 3 * DAY)
        samples = parse_exposition(capsys.readouterr().out)
        severity = {
            labels["kind"]: value for labels, value in samples["isa_federation_alert_severity"]
        }
        assert (code, severity["signer_certificate"]) == (1, 3.0)
