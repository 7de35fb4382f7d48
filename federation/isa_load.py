"""Loading an ISA from the bytes of a YAML file, with every problem reported as ``file:line``.

This module performs no I/O: the caller reads the file and passes its bytes.

Rules:
1. The YAML is composed into a node tree first, so that every key keeps its line; a duplicate
   key in a mapping is an error (PyYAML would silently keep the last one).
2. The document is validated by the strict models in :mod:`federation.isa_model`; each pydantic
   error becomes one :class:`PolicyProblem` at the line of the offending key (or of its parent
   when the key is missing).
3. A document that validates is then checked by the lint error checks
   (:func:`federation.isa_lint.check_errors`); any error fails the load. An :class:`Isa` that
   loads is therefore safe to evaluate.
4. YAML and pydantic exceptions never escape: everything is a ``PolicyError``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from typing import Any

import yaml
from pydantic import ValidationError

from federation.errors import PolicyError, PolicyProblem
from federation.isa_catalogue import Catalogue, default_catalogue
from federation.isa_lint import check_errors
from federation.isa_model import Isa, IsaDocument

__all__ = ["load_isa", "parse_isa"]

Path = tuple[str | int, ...]


def _yaml_problem(source: str, exc: yaml.YAMLError) -> PolicyProblem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else 1
    problem = getattr(exc, "problem", None) or "could not be parsed"
    return PolicyProblem(source, line, f"malformed YAML: {problem}")


def _index_lines(
    node: yaml.Node, path: Path, lines: dict[Path, int], dupes: list[tuple[str, int]]
) -> None:
    """Record the line of every key and list item under ``node``; collect duplicate keys."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                dupes.append((".".join(map(str, (*path, key))), key_node.start_mark.line + 1))
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _index_lines(value_node, (*path, key), lines, dupes)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, index), lines, dupes)


def _compose(source: str, data: bytes) -> tuple[Any, dict[Path, int]]:
    loader = yaml.SafeLoader(data)
    try:
        node = loader.get_single_node()
        if node is None:
            raise PolicyError([PolicyProblem(source, 1, "the file is empty")])
        lines: dict[Path, int] = {}
        dupes: list[tuple[str, int]] = []
        _index_lines(node, (), lines, dupes)
        if dupes:
            problems = [PolicyProblem(source, ln, f"duplicate key {p!r}") for p, ln in dupes]
            raise PolicyError(problems)
        return loader.construct_document(node), lines
    except yaml.YAMLError as exc:
        raise PolicyError([_yaml_problem(source, exc)]) from None
    finally:
        loader.dispose()


def _loc_text(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _line_for(loc: Path, lines: dict[Path, int]) -> int:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def _validation_problems(
    source: str, exc: ValidationError, lines: dict[Path, int]
) -> list[PolicyProblem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc: Path = tuple(p for p in err["loc"] if p != "[key]")
        where = _loc_text(loc)
        if err["type"] == "extra_forbidden":
            message = f"unknown key {where!r}"
        elif err["type"] == "missing":
            message = f"missing required key {where!r}"
        else:
            message = f"{where or 'document'}: {err['msg']}"
        problems.append(PolicyProblem(source, _line_for(loc, lines), message))
    return problems


def parse_isa(source: str, data: bytes, *, catalogue: Catalogue = default_catalogue) -> Isa:
    """Parse and validate the structure only (no lint checks). Raises ``PolicyError``."""
    raw, lines = _compose(source, data)
    if not isinstance(raw, dict):
        raise PolicyError([PolicyProblem(source, 1, "an ISA file must be a YAML mapping")])
    try:
        doc = IsaDocument.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(_validation_problems(source, exc, lines)) from None
    isa = Isa(doc=doc, sha256=hashlib.sha256(data).hexdigest(), source=source)
    isa._lines = lines
    isa._catalogue = catalogue
    return isa


def load_isa(
    source: str,
    data: bytes,
    *,
    catalogue: Catalogue = default_catalogue,
    known_agencies: Collection[str] | None = None,
) -> Isa:
    """Load one ISA file's bytes. Raises ``PolicyError`` listing every error with its line."""
    isa = parse_isa(source, data, catalogue=catalogue)
    errors = check_errors(isa, known_agencies=known_agencies)
    if errors:
        raise PolicyError(errors)
    return isa
