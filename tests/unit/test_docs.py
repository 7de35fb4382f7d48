"""The documentation works as written (issue 16, point 8).

1. Every relative link in the project's Markdown files points at a file that exists.
2. Every ``isa-broker`` / ``isa-agent`` command the README names is a real command; a command
   written out in full (a table's synopsis, a line of a shell block) parses with the real CLI
   parser, optional ``[...]`` parts left out and the first of ``(a | b)`` alternatives taken.
3. ``docker-compose.yml`` uses only top-level keys that docker-compose v1 also accepts.
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from agent.cli import build_parser as agent_parser
from broker.cli import build_parser as broker_parser

ROOT = Path(__file__).resolve().parents[2]
MARKDOWN = sorted(
    p for p in ROOT.rglob("*.md") if not {".venv", ".git", ".demo"} & set(p.relative_to(ROOT).parts)
)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
TOP_DIRS = ("agent", "benchmarks", "broker", "certs", "devtools", "docker", "docs", "federation",
            "policies", "scripts", "shared", "tests")  # fmt: skip
GENERATED = ("benchmarks/results/",)  # written by a run, git-ignored
PATH = re.compile(rf"`((?:{'|'.join(TOP_DIRS)})/[\w./-]+\.\w+)`")
COMMAND = re.compile(r"`(?:\.venv/bin/)?(isa-(?:broker|agent)) ([^`]*)`")
SHELL_LINE = re.compile(r"^(?:\.venv/bin/)?(isa-(?:broker|agent)) (.*?)(?:\s+#.*)?$")
PARSERS = {"isa-broker": broker_parser, "isa-agent": agent_parser}
COMPOSE_V1_KEYS = {"version", "services", "volumes", "networks", "secrets", "configs"}


def relative_links(path: Path) -> Iterator[Path]:
    """Markdown links (relative to the file) and backticked repository paths (to the root)."""
    text = path.read_text(encoding="utf-8")
    for target in LINK.findall(text):
        if not re.match(r"^[a-z]+:", target):  # http:, mailto: ...
            yield path.parent / target
    for target in PATH.findall(text):
        if not target.startswith(GENERATED):
            yield ROOT / target


def synopsis_argv(text: str) -> list[str]:
    """A documented synopsis as an argv: ``[optional]`` parts dropped, ``(a | b)`` -> ``a``."""
    text = text.replace("\\|", "|")
    while (shorter := re.sub(r"\[[^\[\]]*\]", "", text)) != text:
        text = shorter
    text = re.sub(r"\(([^()|]*)\|[^()]*\)", r"\1", text)
    return shlex.split(text)


def readme_commands() -> Iterator[tuple[str, str, bool]]:
    """(program, rest, written out in full) for every command the README shows."""
    fence: str | None = None  # the opening line of the code block we are in
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fence = line.strip() if fence is None else None
            continue
        in_shell = fence in ("```sh", "```bash", "```")
        if in_shell and (found := SHELL_LINE.match(line.strip())):
            yield found[1], found[2], True
        elif not in_shell:
            for program, rest in COMMAND.findall(line):
                yield program, rest, line.startswith("|")


def parses(program: str, argv: list[str]) -> str | None:
    """None when ``argv`` parses; otherwise argparse's complaint."""
    parser = PARSERS[program]()
    parser.exit_on_error = False
    try:
        parser.parse_args(argv)
    except (argparse.ArgumentError, SystemExit) as exc:
        return str(exc) or "usage error"
    return None


def command_words(program: str, argv: list[str]) -> list[str]:
    """The leading words of ``argv`` that name (sub)commands of ``program``."""
    parser, words = PARSERS[program](), []
    for word in argv:
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not actions or word not in actions[0].choices:
            break
        parser = actions[0].choices[word]
        words.append(word)
    return words


class TestLinks:
    @pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
    def test_every_relative_link_resolves(self, path: Path) -> None:
        """A relative link, or a repository path in backticks, names something that exists."""
        missing = [str(t) for t in relative_links(path) if not t.exists()]
        assert missing == []


class TestReadmeCommands:
    def test_the_checker_refuses_a_synopsis_without_its_required_argument(self) -> None:
        """``isa-broker schemas export`` without DIR does not parse (the old README line)."""
        assert parses("isa-broker", synopsis_argv("schemas export")) is not None

    def test_every_named_command_exists(self) -> None:
        """Each ``isa-broker``/``isa-agent`` mention starts with a real (sub)command."""
        unknown = [
            f"{program} {rest}"
            for program, rest, _ in readme_commands()
            if not command_words(program, synopsis_argv(rest) or ["--help"])
            and not rest.startswith("-")
        ]
        assert unknown == []

    def test_every_command_written_in_full_parses(self) -> None:
        """Each table synopsis and shell line parses with the real parser."""
        broken = {
            f"{program} {rest}": problem
            for program, rest, full in readme_commands()
            if full and (problem := parses(program, synopsis_argv(rest))) is not None
        }
        assert broken == {}


class TestCompose:
    def test_only_keys_docker_compose_v1_accepts_are_at_the_top(self) -> None:
        """No ``name:`` (or other v2-only key) at the top of docker-compose.yml."""
        document = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
        extra = {k for k in document if k not in COMPOSE_V1_KEYS and not k.startswith("x-")}
        assert extra == set()
