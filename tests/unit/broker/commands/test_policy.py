"""`isa-broker policy lint|explain` via broker.cli.main: clear errors, exit codes, no traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from broker.cli import main

POLICIES = Path(__file__).resolve().parents[4] / "policies"
SHIPPED = POLICIES / "marac-referrals.yaml"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["policy", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def _write(tmp_path: Path, text: str, name: str = "bad.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


class TestPolicyLint:
    def test_shipped_policies_have_no_errors(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The ISAs in policies/ lint with exit 0; the only problems are warnings (the ICO-code
        elements they do not yet record)."""
        code, out, err = _run(capsys, "lint", str(POLICIES), "--today", "2026-06-01")
        assert code == 0
        assert all(": warning: " in line for line in out.splitlines())
        assert "5 ISA(s) loaded, 0 error(s)" in err

    def test_malformed_yaml_exits_1_with_file_and_line(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Broken YAML gives one file:line problem and exit 1."""
        path = _write(tmp_path, "isa:\n  id: [unclosed\n")
        code, out, _ = _run(capsys, "lint", path)
        assert code == 1
        assert out.startswith(f"{path}:")
        assert "malformed YAML" in out

    def test_wrong_types_and_unknown_keys_are_listed(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Every structural problem is its own file:line line."""
        text = SHIPPED.read_text().replace("  version: 1.0.0", "  version: 1.0\n  colour: blue")
        path = _write(tmp_path, text)
        code, out, _ = _run(capsys, "lint", path)
        assert code == 1
        assert out.splitlines() == [
            f"{path}:6: isa.version: Input should be a valid string",
            f"{path}:7: unknown key 'isa.colour'",
        ]

    def test_unknown_agency_and_field(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Semantic errors (unknown agency, unknown field path) also exit 1 with their lines."""
        text = (SHIPPED.read_text()
                .replace("    to: [marac-coordinator]", "    to: [marac-coordinator, mi5]")
                .replace("referred_to_other_marac]", "referred_to_other_marac, victim.shoe]"))
        path = _write(tmp_path, text)
        code, out, _ = _run(capsys, "lint", path)
        assert code == 1
        assert "unknown agency 'mi5': not a party to this ISA" in out
        assert "unknown field path 'victim.shoe'" in out
        assert all(line.startswith(f"{path}:") for line in out.splitlines())

    def test_duplicate_isa_ids_across_files(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Two files with the same ISA id: exit 1 naming both files."""
        shutil.copy(SHIPPED, tmp_path / "a.yaml")
        shutil.copy(SHIPPED, tmp_path / "b.yaml")
        code, out, _ = _run(capsys, "lint", str(tmp_path), "--today", "2026-06-01")
        assert code == 1
        errors = [line for line in out.splitlines() if ": warning: " not in line]
        assert errors == [f"{tmp_path}/b.yaml:5: duplicate ISA id 'isa-marac-referrals' "
                          f"(also in {tmp_path}/a.yaml)"]

    def test_warnings_pass_unless_strict(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Overdue review is a warning: exit 0, but exit 1 with --strict."""
        code, out, _ = _run(capsys, "lint", str(SHIPPED), "--today", "2027-07-01")
        assert code == 0
        assert "warning: ISA 'isa-marac-referrals' is overdue for review" in out
        code, _, _ = _run(capsys, "lint", str(SHIPPED), "--today", "2027-07-01", "--strict")
        assert code == 1

    def test_unknown_federation_agency(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--agencies lists the federation's members; a party outside it is an error."""
        code, out, _ = _run(capsys, "lint", str(SHIPPED), "--today", "2026-06-01",
                            "--agencies", "police-scotland,marac-coordinator")
        assert code == 1
        assert "unknown agency 'council-sw'" in out

    def test_missing_path_and_bad_date(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A missing file and an unreadable --today are clear errors, not tracebacks."""
        assert _run(capsys, "lint", "no/such/dir")[0] == 1
        code, _, err = _run(capsys, "lint", str(SHIPPED), "--today", "tuesday")
        assert code == 1
        assert "not a date: 'tuesday'" in err

    def test_binary_garbage_is_a_clear_error(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Bytes that are not text are reported, not raised."""
        path = tmp_path / "junk.yaml"
        path.write_bytes(b"\xff\xfe\x00garbage\x00")
        code, out, _ = _run(capsys, "lint", str(path))
        assert code == 1
        assert out.startswith(f"{path}:1: malformed YAML")


class TestPolicyExplain:
    def test_explains_who_what_why_and_what_never(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The summary names the parties, the purpose, each risk level and the never-shared."""
        code, out, _ = _run(capsys, "explain", "isa-marac-referrals", "--policies", str(POLICIES))
        assert code == 0
        assert "may send a MARAC referral to SYNTHETIC MARAC coordinator" in out
        assert "At standard risk: nothing is shared." in out
        assert "At high risk: may be shared." in out
        assert "carrying out its public duties set out in law" in out
        assert "must not tell the perpetrator about this" in out
        assert "Never shared, whatever the risk\n  - victim: refuge address" in out
        assert "a6_1_e" not in out

    def test_one_way_flow_is_spelled_out(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The Caledonian summary says nothing goes back to the men's service."""
        _, out, _ = _run(capsys, "explain", "isa-caledonian-partner-contact",
                         "--policies", str(POLICIES))
        assert ("Nothing is sent back from SYNTHETIC Caledonian women's service to SYNTHETIC "
                "Caledonian men's service (justice social work)") in out

    def test_unknown_isa_id(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown id exits 1 and lists the ids that exist."""
        code, _, err = _run(capsys, "explain", "isa-nope", "--policies", str(POLICIES))
        assert code == 1
        assert "no ISA 'isa-nope'" in err
        assert "isa-marac-referrals" in err


class TestReadme:
    def test_annotated_example_in_the_readme_is_a_clean_isa(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """The example in policies/README.md lints clean, so the documentation cannot drift."""
        text = (POLICIES / "README.md").read_text()
        start = text.index("```yaml\n") + len("```yaml\n")
        path = _write(tmp_path, text[start:text.index("```", start)], "example.yaml")
        code, out, _ = _run(capsys, "lint", path, "--today", "2026-06-01")
        assert (code, out) == (0, "")
