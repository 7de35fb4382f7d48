"""`isa-broker policy lint|explain|export`: check the federation's ISAs; explain or export one.

This is a thin adapter: it reads files and the clock, calls :mod:`federation.isa` (pure) and
prints. Every problem is one ``file:line: message`` line; no input ever causes a traceback.

    isa-broker policy lint [PATH...] [--strict] [--today YYYY-MM-DD] [--agencies a,b,...]
        exit 0 when there is no error (warnings are printed; with --strict they fail too),
        exit 1 otherwise.
    isa-broker policy explain ISA_ID [--policies DIR] [--format text|html]
    isa-broker policy export --format odrl PATH... [--output-dir DIR]
        each ISA (which must load: no lint error) as ODRL 2.2 / DPV JSON-LD; one ISA goes to
        standard output unless --output-dir is given, several need --output-dir (ISA_ID.jsonld).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from broker.clock import Clock
from federation.errors import PolicyError, PolicyProblem
from federation.isa import (
    Isa,
    duplicate_isa_ids,
    explain,
    explain_html,
    lint,
    load_isa,
    parse_isa,
    to_odrl,
)

__all__ = ["load_policies", "register"]

DEFAULT_DIR = "policies"


def _files(paths: Iterable[str]) -> tuple[list[Path], list[PolicyProblem]]:
    files: list[Path] = []
    problems: list[PolicyProblem] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        elif path.is_file():
            files.append(path)
        else:
            problems.append(PolicyProblem(name, 1, "not a file or directory"))
    return files, problems


def _load(path: Path) -> tuple[Isa | None, list[PolicyProblem]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, [PolicyProblem(str(path), 1, f"cannot read: {exc.strerror or exc}")]
    try:
        return parse_isa(str(path), data), []
    except PolicyError as exc:
        return None, exc.problems


def load_policies(paths: Iterable[str]) -> tuple[list[Isa], list[PolicyProblem]]:
    """Parse every ISA file under ``paths``; problems for those that do not parse."""
    files, problems = _files(paths)
    isas: list[Isa] = []
    for path in files:
        isa, found = _load(path)
        problems += found
        if isa is not None:
            isas.append(isa)
    return isas, problems


def _today(text: str | None, clock: Clock) -> date:
    if text is None:
        return clock().date()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise PolicyError([PolicyProblem("--today", 1, f"not a date: {text!r}")]) from None


def _cmd_lint(args: argparse.Namespace) -> int:
    today = _today(args.today, args.clock)
    known = set(args.agencies.split(",")) if args.agencies else None
    isas, problems = load_policies(args.paths or [DEFAULT_DIR])
    for isa in isas:
        problems += lint(isa, today=today, known_agencies=known)
    problems += duplicate_isa_ids(isas)
    for problem in problems:
        print(problem)
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    print(f"{len(isas)} ISA(s) loaded, {errors} error(s), {warnings} warning(s)", file=sys.stderr)
    return 1 if errors or (args.strict and warnings) else 0


def _cmd_explain(args: argparse.Namespace) -> int:
    isas, problems = load_policies([args.policies])
    match = [isa for isa in isas if isa.id == args.isa_id]
    if not match:
        for problem in problems:
            print(problem, file=sys.stderr)
        known = ", ".join(sorted(isa.id for isa in isas)) or "none"
        print(f"error: no ISA {args.isa_id!r} in {args.policies} (known: {known})", file=sys.stderr)
        return 1
    render = explain_html if args.format == "html" else explain
    sys.stdout.write(render(match[0]))
    return 0


def _load_strict(path: Path) -> Isa:
    try:
        data = path.read_bytes()
    except OSError as exc:
        problem = PolicyProblem(str(path), 1, f"cannot read: {exc.strerror or exc}")
        raise PolicyError([problem]) from None
    return load_isa(str(path), data)


def _cmd_export(args: argparse.Namespace) -> int:
    files, problems = _files(args.paths)
    if problems:
        raise PolicyError(problems)
    isas = [_load_strict(path) for path in files]
    if len(isas) != 1 and args.output_dir is None:
        print(f"error: {len(isas)} ISAs to export: give --output-dir", file=sys.stderr)
        return 1
    documents = {
        isa.id: json.dumps(to_odrl(isa), indent=1, ensure_ascii=False) + "\n" for isa in isas
    }
    if args.output_dir is None:
        sys.stdout.write(next(iter(documents.values())))
        return 0
    out = Path(args.output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for isa_id, text in documents.items():
            (out / f"{isa_id}.jsonld").write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot write to {out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"{len(documents)} ISA(s) exported to {out}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``policy lint``, ``policy explain`` and ``policy export`` to ``isa-broker``."""
    policy = sub.add_parser("policy", help="check and explain the federation's ISAs")
    commands = policy.add_subparsers(dest="policy_command", metavar="COMMAND", required=True)
    lint_p = commands.add_parser("lint", help="check ISA files (default: policies/)")
    lint_p.add_argument("paths", nargs="*", metavar="PATH", help="ISA files or directories")
    lint_p.add_argument("--strict", action="store_true", help="warnings fail too")
    lint_p.add_argument("--today", help="check validity and review dates as of this date")
    lint_p.add_argument("--agencies", help="comma-separated agency ids the federation knows")
    lint_p.set_defaults(func=_cmd_lint)
    explain_p = commands.add_parser("explain", help="an ISA in plain English")
    explain_p.add_argument("isa_id", metavar="ISA_ID")
    explain_p.add_argument("--policies", default=DEFAULT_DIR, help="directory of ISA files")
    explain_p.add_argument(
        "--format",
        choices=("text", "html"),
        default="text",
        help="plain text (default) or one self-contained HTML page",
    )
    explain_p.set_defaults(func=_cmd_explain)
    export_p = commands.add_parser("export", help="ISAs as ODRL 2.2 / DPV JSON-LD policies")
    export_p.add_argument("paths", nargs="+", metavar="PATH", help="ISA files or directories")
    export_p.add_argument(
        "--format",
        choices=("odrl",),
        required=True,
        help="odrl: an ODRL 2.2 Agreement in JSON-LD, annotated with W3C DPV",
    )
    export_p.add_argument("--output-dir", help="write ISA_ID.jsonld files here")
    export_p.set_defaults(func=_cmd_export)
