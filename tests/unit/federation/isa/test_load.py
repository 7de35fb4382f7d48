"""Loading an ISA: structure errors are PolicyError problems at the YAML line of the key."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.errors import PolicyError
from federation.isa import load_isa
from tests.unit.federation.isa.support import CLEAN_ISA, fake_catalogue, load_fake


def _problems(data: bytes) -> list[str]:
    with pytest.raises(PolicyError) as info:
        load_isa("x.yaml", data, catalogue=fake_catalogue)
    return [str(p) for p in info.value.problems]


def _replace(old: str, new: str) -> bytes:
    text = CLEAN_ISA.decode()
    assert old in text
    return text.replace(old, new, 1).encode()


def _line(data: bytes, needle: str) -> int:
    return data.decode().splitlines().index(needle) + 1


class TestLoadIsa:
    def test_clean_isa_loads_with_its_identity(self) -> None:
        """A clean file loads; id, version, source and SHA-256 of the exact bytes are kept."""
        isa = load_fake()
        assert (isa.id, isa.version, isa.source) == ("isa-test-clean", "1.0.0", "clean.yaml")
        assert isa.sha256 == hashlib.sha256(CLEAN_ISA).hexdigest()

    def test_malformed_yaml_reports_its_line(self) -> None:
        """Broken YAML is a PolicyError at the line where the parser failed, not a yaml error."""
        data = _replace("  title: SYNTHETIC test agreement", "  title: [unclosed")
        problems = _problems(data)
        assert len(problems) == 1
        assert problems[0].startswith("x.yaml:")
        assert "malformed YAML" in problems[0]

    def test_unknown_key_is_reported_at_its_line(self) -> None:
        """A typo'd key is an error at exactly that key's line."""
        data = _replace("  status: active", "  status: active\n  colour: blue")
        line = _line(data, "  colour: blue")
        assert _problems(data) == [f"x.yaml:{line}: unknown key 'isa.colour'"]

    def test_missing_key_is_reported_at_its_parent(self) -> None:
        """A missing required key is reported at the line of the mapping that lacks it."""
        data = _replace("  version: 1.0.0\n", "")
        assert _problems(data) == ["x.yaml:3: missing required key 'isa.version'"]

    def test_wrong_type_names_the_key_and_line(self) -> None:
        """A number where text is required is an error at that key (strict: no coercion)."""
        data = _replace("  version: 1.0.0", "  version: 1.0")
        line = _line(data, "  version: 1.0")
        [problem] = _problems(data)
        assert problem.startswith(f"x.yaml:{line}: isa.version: ")

    def test_bad_decision_value_is_reported(self) -> None:
        """An unknown risk-level decision names the allowed values."""
        old = "      medium: {decision: review, field_sets: [core, risk]}"
        data = _replace(old, "      medium: {decision: maybe, field_sets: [core, risk]}")
        [problem] = _problems(data)
        assert f"x.yaml:{_line(data, old.replace('review', 'maybe'))}:" in problem
        assert "flows[0].by_risk_level.medium.decision" in problem

    def test_duplicate_yaml_key_is_an_error(self) -> None:
        """PyYAML would keep the last of two equal keys silently; the loader refuses."""
        data = _replace("  status: active", "  status: active\n  status: draft")
        line = _line(data, "  status: draft")
        assert _problems(data) == [f"x.yaml:{line}: duplicate key 'isa.status'"]

    def test_a_file_that_is_not_a_mapping_is_refused(self) -> None:
        """A YAML list or scalar at the top is not an ISA."""
        assert _problems(b"- just\n- a list\n") == ["x.yaml:1: an ISA file must be a YAML mapping"]

    def test_empty_file_is_refused(self) -> None:
        """An empty file is an error, not None."""
        assert _problems(b"") == ["x.yaml:1: the file is empty"]

    def test_bad_agency_id_is_refused(self) -> None:
        """Agency ids must be lowercase slugs (they become queue and user names)."""
        data = _replace("  - id: agency-b", "  - id: Agency_B")
        [problem] = _problems(data)
        assert problem.startswith(f"x.yaml:{_line(data, '  - id: Agency_B')}: parties[1].id:")

    def test_yaml_aliases_are_refused(self) -> None:
        """An alias could expand exponentially (billion laughs): refused at its key's line."""
        assert _problems(b"a: &x [1, 2]\nb: *x\n") == [
            "x.yaml:2: YAML aliases (*name) are not allowed here"]

    def test_deep_nesting_is_a_clear_error(self) -> None:
        """Thousands of nested lists do not crash the loader."""
        assert _problems(b"[" * 5000 + b"]" * 5000) == ["x.yaml:1: the YAML is nested too deeply"]

    def test_undecodable_bytes_are_a_clear_error(self) -> None:
        """Bytes that are not UTF-8 text fail in the reader, still as a PolicyError."""
        [problem] = _problems(b"isa: \xff\x00")
        assert problem.startswith("x.yaml:1: malformed YAML")


class TestLoadNeverCrashes:
    @settings(max_examples=100, deadline=None)
    @given(st.data())
    def test_any_line_edit_of_a_good_isa_loads_or_raises_policy_error(
        self, data: st.DataObject
    ) -> None:
        """Deleting, duplicating or garbling a line gives an Isa or a PolicyError, nothing else."""
        lines = CLEAN_ISA.decode().splitlines()
        index = data.draw(st.integers(0, len(lines) - 1))
        edit = data.draw(st.sampled_from(["delete", "duplicate", "garble", "indent"]))
        if edit == "delete":
            del lines[index]
        elif edit == "duplicate":
            lines.insert(index, lines[index])
        elif edit == "garble":
            lines[index] = data.draw(st.text(max_size=30))
        else:
            lines[index] = "  " + lines[index]
        text = "\n".join(lines).encode("utf-8", "surrogatepass")
        problems = []
        try:
            isa = load_isa("x.yaml", text, catalogue=fake_catalogue)
        except PolicyError as exc:
            problems = exc.problems
        else:
            assert isa.sha256 == hashlib.sha256(text).hexdigest()
            return
        assert problems
        assert all(p.line >= 1 and p.file == "x.yaml" for p in problems)
