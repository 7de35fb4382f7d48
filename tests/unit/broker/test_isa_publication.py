"""``isa-broker manifest build`` publishes ISA versions (issue 15.5): a published version never
changes, a newer one replaces it after the switch and the old one stays listed for its grace;
a refused build writes nothing but its audit line.

Every build and every judgement uses a fixed clock (``NOW`` and offsets), never the wall clock.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.cli import main
from broker.devfed import create_dev_federation
from broker.fedstate import FederationLayout, load_state
from broker.isa_history import (
    IsaArchive,
    IsaRecord,
    IsaTerms,
    Offered,
    check_isa_terms,
    plan_publication,
)
from federation.canonical import format_time
from federation.errors import ConfigError, PolicyError
from federation.isa import load_isa
from federation.manifest import ManifestDocument, unverified_document

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
TERMS = IsaTerms(switch=timedelta(minutes=15), grace=timedelta(days=7))
FILE = "police-to-assist.yaml"
ISA_ID = "isa-police-assist-advocacy"
SHIPPED = (REPO / "policies" / FILE).read_bytes()


def offered(data: bytes = SHIPPED, source: str = FILE) -> Offered:
    return Offered(load_isa(source, data), data)


def bumped(version: str, data: bytes = SHIPPED) -> bytes:
    return data.replace(b"version: 1.0.0", f"version: {version}".encode(), 1)


FIRST = plan_publication([], [offered()], NOW, TERMS)


class TestPlanPublication:
    def test_a_first_build_publishes_every_offered_version(self) -> None:
        """No history: 1.0.0 published at NOW, nothing superseded."""
        assert [(r.id, r.version, r.published_at) for r in FIRST.published] == [
            (ISA_ID, "1.0.0", format_time(NOW))
        ]
        assert FIRST.superseded == ()

    def test_the_same_text_again_changes_nothing(self) -> None:
        """A re-sign offers the same bytes: the history stays as it was."""
        again = plan_publication(FIRST.records, [offered()], NOW + timedelta(days=1), TERMS)
        assert (again.records, again.published, again.superseded) == (FIRST.records, (), ())

    def test_a_newer_version_supersedes_the_current_one_after_the_switch(self) -> None:
        """1.1.0 at T: 1.0.0 superseded at T + 15 min, accepted until 7 days after that."""
        later = NOW + timedelta(days=2)
        plan = plan_publication(FIRST.records, [offered(bumped("1.1.0"))], later, TERMS)
        [old] = plan.superseded
        assert (old.version, old.superseded_at, old.accept_until) == (
            "1.0.0",
            format_time(later + timedelta(minutes=15)),
            format_time(later + timedelta(minutes=15, days=7)),
        )
        assert [r.version for r in plan.published] == ["1.1.0"]

    def test_two_quick_versions_are_superseded_in_order(self) -> None:
        """1.1.0 then 1.2.0 within the switch: 1.1.0 is superseded strictly after 1.0.0."""
        one = plan_publication(FIRST.records, [offered(bumped("1.1.0"))], NOW, TERMS)
        two = plan_publication(one.records, [offered(bumped("1.2.0"))], NOW, TERMS)
        times = {r.version: r.superseded_at for r in two.records}
        assert times["1.0.0"] is not None
        assert times["1.1.0"] is not None
        assert times["1.0.0"] < times["1.1.0"]
        assert times["1.2.0"] is None

    def test_the_same_version_with_other_bytes_is_refused_at_its_version_line(self) -> None:
        """A published version never changes: the problem names the file and the line of
        ``version:``, and says what to do."""
        edited = SHIPPED + b"# an edit without a new version\n"
        with pytest.raises(PolicyError) as refused:
            plan_publication(FIRST.records, [offered(edited)], NOW, TERMS)
        [problem] = refused.value.problems
        assert problem.file == FILE
        assert problem.line == SHIPPED.split(b"\n").index(b"  version: 1.0.0") + 1
        assert "published version never changes" in problem.message

    def test_an_older_version_is_refused(self) -> None:
        """0.9.0 after 1.0.0 was published: a new text needs a higher version."""
        with pytest.raises(PolicyError, match=r"not newer than 1\.0\.0"):
            plan_publication(FIRST.records, [offered(bumped("0.9.0"))], NOW, TERMS)

    def test_a_superseded_text_offered_again_is_refused(self) -> None:
        """Going back to 1.0.0's bytes after 1.1.0: refused, it needs a new version."""
        one = plan_publication(FIRST.records, [offered(bumped("1.1.0"))], NOW, TERMS)
        with pytest.raises(PolicyError, match="was superseded at"):
            plan_publication(one.records, [offered()], NOW + timedelta(hours=1), TERMS)


class TestTerms:
    @pytest.mark.parametrize(("minutes", "days"), [(-1, 7), (10081, 7), (15, 5), (15, 91),
                                                    (float("nan"), 7)])  # fmt: skip
    def test_terms_out_of_range_are_refused(self, minutes: float, days: float) -> None:
        """The switch is 0..7 days; the grace covers the 120 h message lifetime + 1 h."""
        with pytest.raises(ConfigError):
            check_isa_terms(minutes, days)

    def test_the_defaults_are_15_minutes_and_7_days(self) -> None:
        assert check_isa_terms(15, 7) == IsaTerms()


# -- the command, on a dev federation ----------------------------------------------------------


@pytest.fixture(scope="module")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("isa-publication") / "fed"
    create_dev_federation(
        root, policies=REPO / "policies", now=NOW, agencies=["police-scotland", "assist"],
        vhost="syn-unit-never-provisioned", manifest_validity=timedelta(days=30),
    )  # fmt: skip
    return root


@pytest.fixture
def layout(_template: Path, tmp_path: Path) -> FederationLayout:
    """police-scotland and assist, format 2, serial 1 published at NOW."""
    shutil.copytree(_template, tmp_path / "fed")
    return FederationLayout(tmp_path / "fed")


def build(layout: FederationLayout, at: datetime, *extra: str) -> int:
    return main(["manifest", "build", "--federation", str(layout.root), *extra],
                clock=lambda: at)  # fmt: skip


def written(layout: FederationLayout) -> ManifestDocument:
    return unverified_document(layout.manifest.read_bytes())


def audit(layout: FederationLayout) -> list[dict[str, str]]:
    lines = IsaArchive(layout.root).audit_file.read_text().splitlines()
    return [json.loads(line) for line in lines]


def edit(layout: FederationLayout, data: bytes) -> None:
    (layout.policies / FILE).write_bytes(data)


LATER = NOW + timedelta(days=1)


class TestManifestBuild:
    def test_a_new_version_is_published_beside_the_one_it_replaces(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """1.1.0 in policies/: serial 2 carries both documents, 1.0.0 superseded with its
        window; the output says so; the archive keeps both texts; both are audited."""
        edit(layout, bumped("1.1.0"))
        assert build(layout, LATER) == 0
        entries = {e.version: e for e in written(layout).isas if e.id == ISA_ID}
        assert set(entries) == {"1.0.0", "1.1.0"}
        assert entries["1.0.0"].superseded_at == format_time(LATER + timedelta(minutes=15))
        assert entries["1.1.0"].document is not None
        out = capsys.readouterr().out
        assert f"isa {ISA_ID} v1.0.0 superseded at" in out
        folder = IsaArchive(layout.root).folder / ISA_ID
        assert sorted(p.name for p in folder.iterdir()) == ["1.0.0.yaml", "1.1.0.yaml"]
        assert [(a["event"], a["version"]) for a in audit(layout)[-2:]] == [
            ("published", "1.1.0"),
            ("superseded", "1.0.0"),
        ]

    def test_the_replaced_version_leaves_the_manifest_when_its_grace_ends(
        self, layout: FederationLayout
    ) -> None:
        """A re-sign after accept_until lists 1.1.0 alone."""
        edit(layout, bumped("1.1.0"))
        assert build(layout, LATER) == 0
        assert build(layout, LATER + timedelta(days=7, minutes=15)) == 0
        assert [e.version for e in written(layout).isas if e.id == ISA_ID] == ["1.1.0"]

    def test_a_changed_text_under_a_published_version_is_refused_and_audited(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Exit 1, one line naming the file, line and rule; no new serial; an audit line."""
        before = layout.manifest.read_bytes()
        edit(layout, SHIPPED + b"# edited, same version\n")
        assert build(layout, LATER) == 1
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0
        assert f"{FILE}:" in err
        assert "published version never changes" in err
        assert layout.manifest.read_bytes() == before
        assert load_state(layout).serial == 1
        assert audit(layout)[-1]["event"] == "refused"

    def test_an_isa_failing_lint_is_refused_and_audited(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A policy that fails lint: exit 1 with its file:line, nothing published, audited."""
        before = layout.manifest.read_bytes()
        edit(layout, bumped("1.1.0").replace(b"purpose: advocacy_after_charge",
                                             b"purpose: no_such_purpose", 1))  # fmt: skip
        assert build(layout, LATER) == 1
        assert "unknown purpose" in capsys.readouterr().err
        assert layout.manifest.read_bytes() == before
        assert audit(layout)[-1]["event"] == "refused"

    def test_grace_shorter_than_a_message_lifetime_is_refused(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--isa-grace-days 3: exit 1 naming the minimum, nothing written or stored."""
        before = layout.manifest.read_bytes()
        assert build(layout, LATER, "--isa-grace-days", "3") == 1
        assert "at least 5.04" in capsys.readouterr().err
        assert layout.manifest.read_bytes() == before
        assert load_state(layout).isa_grace_days == 7

    def test_format_1_is_kept_for_agents_older_than_format_2(
        self, layout: FederationLayout
    ) -> None:
        """--format 1: the manifest carries no documents and lists only current versions;
        later builds keep the format."""
        edit(layout, bumped("1.1.0"))
        assert build(layout, LATER, "--format", "1") == 0
        assert build(layout, LATER + timedelta(hours=1)) == 0
        doc = written(layout)
        assert doc.v == 1
        assert [(e.version, e.document) for e in doc.isas if e.id == ISA_ID] == [("1.1.0", None)]
        assert b'"document"' not in layout.manifest.read_bytes()


def test_history_records_round_trip(tmp_path: Path) -> None:
    """The history file holds exactly the records saved."""
    archive = IsaArchive(tmp_path)
    records = [IsaRecord(id=ISA_ID, version="1.0.0", sha256="0" * 64,
                         published_at=format_time(NOW))]  # fmt: skip
    archive.save(records)
    assert archive.records() == records
