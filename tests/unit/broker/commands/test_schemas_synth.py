"""`isa-broker schemas export` and `isa-broker synth`, run through broker.cli.main."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from broker.cli import main
from federation.referrals import MESSAGE_TYPES, REQUIRED_ON_SUBMIT, parse_payload

ALL_TYPES = sorted(MESSAGE_TYPES)


@pytest.fixture
def unwritable(tmp_path: Path) -> Path:
    """A path under a regular file: no one (not even root) can create a directory there."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    return blocker / "out"


class TestSchemasExport:
    def test_writes_one_schema_per_type_and_an_index(self, tmp_path: Path) -> None:
        """Five <type>.schema.json files plus index.json."""
        assert main(["schemas", "export", str(tmp_path / "s")]) == 0
        names = sorted(p.name for p in (tmp_path / "s").iterdir())
        assert names == sorted([f"{t}.schema.json" for t in ALL_TYPES] + ["index.json"])

    def test_index_lists_types_and_required_paths(self, tmp_path: Path) -> None:
        """index.json names each file and what a sender must supply."""
        main(["schemas", "export", str(tmp_path)])
        index = json.loads((tmp_path / "index.json").read_text())
        assert [e["type"] for e in index["types"]] == ALL_TYPES
        marac = next(e for e in index["types"] if e["type"] == "marac_referral")
        assert marac["file"] == "marac_referral.schema.json"
        assert marac["required_on_submit"] == list(REQUIRED_ON_SUBMIT["marac_referral"])

    @pytest.mark.parametrize("message_type", ALL_TYPES)
    def test_schema_is_valid_and_forbids_unknown_fields(
        self, tmp_path: Path, message_type: str
    ) -> None:
        """Each file is a valid 2020-12 schema that requires synthetic and forbids extras."""
        main(["schemas", "export", str(tmp_path)])
        schema = json.loads((tmp_path / f"{message_type}.schema.json").read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["required"] == ["synthetic"]
        assert schema["additionalProperties"] is False

    def test_synthetic_records_validate_against_the_exported_schemas(
        self, tmp_path: Path
    ) -> None:
        """An integrator's validator accepts what the project's parser accepts."""
        main(["schemas", "export", str(tmp_path / "s")])
        main(["synth", "--count", "10", "--seed", "4", "--out", str(tmp_path / "d")])
        for record in sorted((tmp_path / "d").iterdir()):
            kind = record.stem.split("-", 1)[1]
            schema = json.loads((tmp_path / "s" / f"{kind}.schema.json").read_text())
            jsonschema.validate(json.loads(record.read_text()), schema)

    def test_unwritable_directory_is_a_clear_error(
        self, unwritable: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Exit 1 with one error line, no traceback."""
        assert main(["schemas", "export", str(unwritable)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: cannot write schemas to")
        assert "Traceback" not in err


class TestSynth:
    def test_writes_count_valid_records(self, tmp_path: Path) -> None:
        """--count N writes N files that all parse as their type."""
        assert main(["synth", "--count", "12", "--seed", "7", "--out", str(tmp_path)]) == 0
        files = sorted(tmp_path.iterdir())
        assert len(files) == 12
        for f in files:
            kind = f.stem.split("-", 1)[1]
            assert parse_payload(kind, f.read_bytes()).synthetic is True

    def test_same_seed_same_files(self, tmp_path: Path) -> None:
        """Two runs with one seed write identical bytes."""
        for run in ("a", "b"):
            main(["synth", "--count", "6", "--seed", "1", "--out", str(tmp_path / run)])
        a = [p.read_bytes() for p in sorted((tmp_path / "a").iterdir())]
        b = [p.read_bytes() for p in sorted((tmp_path / "b").iterdir())]
        assert a == b

    def test_type_option_limits_the_type(self, tmp_path: Path) -> None:
        """--type support_referral writes only support referrals."""
        main(["synth", "--count", "4", "--type", "support_referral", "--out", str(tmp_path)])
        assert {p.stem.split("-", 1)[1] for p in tmp_path.iterdir()} == {"support_referral"}

    def test_unwritable_directory_is_a_clear_error(
        self, unwritable: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Exit 1 with one error line, no traceback."""
        assert main(["synth", "--count", "2", "--out", str(unwritable)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: cannot write synthetic data to")
        assert "Traceback" not in err

    @pytest.mark.parametrize("count", ["-1", "ten"])
    def test_bad_count_is_a_usage_error(
        self, tmp_path: Path, count: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """argparse rejects a bad --count with exit 2."""
        with pytest.raises(SystemExit) as caught:
            main(["synth", "--count", count, "--out", str(tmp_path)])
        assert caught.value.code == 2
        assert "--count" in capsys.readouterr().err

    def test_unknown_type_is_a_usage_error(self, tmp_path: Path) -> None:
        """--type must name one of the five types."""
        with pytest.raises(SystemExit) as caught:
            main(["synth", "--type", "parking_ticket", "--out", str(tmp_path)])
        assert caught.value.code == 2
