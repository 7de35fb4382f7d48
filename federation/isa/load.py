"""Loading an ISA from the bytes of a YAML file, with every problem reported as ``file:line``.

This module performs no I/O: the caller reads the file and passes its bytes.

Rules:
1. The YAML is composed into a node tree first, so that every key keeps its line; a duplicate
   key in a mapping is an error (PyYAML would silently keep the last one); aliases are refused.
2. The document is validated by the strict models in :mod:`federation.isa.model`; each pydantic
   error becomes one :class:`PolicyProblem` at the line of the offending key (or of its parent
   when the key is missing).
3. A document that validates is then checked by the lint error checks
   (:func:`federation.isa.linting.check_errors`); any error fails the load. An :class:`Isa` that
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
from federation.isa.catalogue import Catalogue, default_catalogue
from federation.isa.linting import check_errors
from federation.isa.model import Isa, IsaDocument

__all__ = ["load_isa", "parse_isa"]

Path = tuple[str | int, ...]


def _yaml_problem(source: str, exc: yaml.YAMLError) -> PolicyProblem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else 1
    problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or "unreadable"
    return PolicyProblem(source, line, f"malformed YAML: {problem}")


class _Index:
    """The line of every key and list item; duplicate keys; aliases (refused: an ISA is read by
    people, and an alias bomb could otherwise expand exponentially)."""

    def __init__(self) -> None:
        self.lines: dict[Path, int] = {}
        self.problems: list[tuple[int, str]] = []
        self._seen: set[int] = set()

    def walk(self, node: yaml.Node, path: Path) -> None:
        line = node.start_mark.line + 1
        self.lines.setdefault(path, line)
        if isinstance(node, yaml.CollectionNode):
            if id(node) in self._seen:
                alias_line = self.lines[path]
                self.problems.append((alias_line, "YAML aliases (*name) are not allowed here"))
                return
            self._seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                here = (*path, key)
                if key in keys:
                    dotted = ".".join(map(str, here))
                    key_line = key_node.start_mark.line + 1
                    self.problems.append((key_line, f"duplicate key {dotted!r}"))
                keys.add(key)
                self.lines[here] = key_node.start_mark.line + 1
                self.walk(value_node, here)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, (*path, index))


def _compose(source: str, data: bytes) -> tuple[Any, dict[Path, int]]:
    try:
        loader = yaml.SafeLoader(data)
    except yaml.YAMLError as exc:  # undecodable bytes fail in the reader, before any node
        raise PolicyError([_yaml_problem(source, exc)]) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise PolicyError([PolicyProblem(source, 1, "the file is empty")])
        index = _Index()
        index.walk(node, ())
        if index.problems:
            raise PolicyError([PolicyProblem(source, ln, msg) for ln, msg in index.problems])
        return loader.construct_document(node), index.lines
    except yaml.YAMLError as exc:
        raise PolicyError([_yaml_problem(source, exc)]) from None
    except RecursionError:
        raise PolicyError([PolicyProblem(source, 1, "the YAML is nested too deeply")]) from None
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
