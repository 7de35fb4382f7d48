"""`isa-broker policy explain --format html` and `policy export --format odrl` via broker.cli."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.cli import main

ROOT = Path(__file__).resolve().parents[3]
POLICIES = ROOT / "policies"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["policy", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


class TestExplainHtml:
    def test_html_page_for_a_shipped_isa(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--format html prints one page carrying the agreement's words, escaped."""
        code, out, _ = _run(
            capsys,
            "explain",
            "isa-womens-aid-police",
            "--policies",
            str(POLICIES),
            "--format",
            "html",
        )
        assert code == 0
        assert out.startswith("<!DOCTYPE html>")
        assert out.rstrip().endswith("</html>")
        assert "SYNTHETIC Women&#x27;s Aid group" in out

    def test_text_is_the_default(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Without --format the explanation is plain text."""
        code, out, _ = _run(capsys, "explain", "isa-womens-aid-police", "--policies", str(POLICIES))
        assert code == 0
        assert "<" not in out


class TestExportOdrl:
    def test_one_isa_goes_to_standard_output(self, capsys: pytest.CaptureFixture[str]) -> None:
        """One file: its JSON-LD on stdout, an odrl:Agreement in the graph."""
        code, out, _ = _run(
            capsys, "export", "--format", "odrl", str(POLICIES / "police-to-council-sw.yaml")
        )
        assert code == 0
        doc = json.loads(out)
        assert doc["@graph"][0]["@type"] == "odrl:Agreement"
        assert doc["@graph"][0]["dct:identifier"] == "isa-police-council-concerns"

    def test_a_directory_needs_an_output_dir(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Several ISAs: refused without --output-dir; with it, one ISA_ID.jsonld each."""
        code, out, err = _run(capsys, "export", "--format", "odrl", str(POLICIES))
        assert (code, out) == (1, "")
        assert "give --output-dir" in err
        code, _, err = _run(
            capsys,
            "export",
            "--format",
            "odrl",
            str(POLICIES),
            "--output-dir",
            str(tmp_path / "odrl"),
        )
        assert code == 0
        names = sorted(p.name for p in (tmp_path / "odrl").iterdir())
        assert names == sorted(
            f"{json.loads(p.read_text())['@graph'][0]['dct:identifier']}.jsonld"
            for p in (tmp_path / "odrl").iterdir()
        )
        assert len(names) == 5

    def test_an_isa_with_lint_errors_is_not_exported(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Only an ISA that loads is exported; the errors are file:line lines, exit 1."""
        bad = tmp_path / "bad.yaml"
        bad.write_text(
            (POLICIES / "marac-referrals.yaml")
            .read_text()
            .replace("sch1: [sch1_p1_2_health_social_care, ", "sch1: [")
        )
        code, out, err = _run(capsys, "export", "--format", "odrl", str(bad))
        assert (code, out) == (1, "")
        assert f"{bad}:" in err
        assert "'a9_2_h' needs sch1_p1_2_health_social_care" in err

    def test_missing_file_is_one_clear_line(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A path that does not exist: exit 1, no traceback."""
        code, out, err = _run(capsys, "export", "--format", "odrl", "no/such.yaml")
        assert (code, out) == (1, "")
        assert "no/such.yaml:1: not a file or directory" in err
