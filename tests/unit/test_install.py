"""Installable without the repository (issue 16, point 2): versions and the systemd units.

1. ``isa-agent --version`` and ``isa-broker --version`` print the installed distribution's
   version.
2. The shipped units are hardened (own user, no new privileges, a private /tmp, a read-only
   system, no capabilities) and ``systemd-analyze verify`` accepts them; their ``ExecStart``
   lines parse with the real CLI parsers.
"""

from __future__ import annotations

import configparser
import importlib.metadata
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.cli import build_parser as agent_parser
from agent.cli import main as agent_main
from broker.cli import build_parser as broker_parser
from broker.cli import main as broker_main

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
HARDENING = {
    "NoNewPrivileges": "yes",
    "PrivateTmp": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "CapabilityBoundingSet": "",
    "UMask": "0077",
}


def unit(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser["Service"]


class TestVersion:
    @pytest.mark.parametrize("main", [agent_main, broker_main], ids=["isa-agent", "isa-broker"])
    def test_version_is_the_installed_distributions(
        self, main: object, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``--version`` exits 0 and prints the version pip installed."""
        assert callable(main)
        with pytest.raises(SystemExit) as exited:
            main(["--version"])
        out = capsys.readouterr().out
        assert (exited.value.code, out.split()[-1]) == (0, importlib.metadata.version("isa-relay"))


class TestSystemdUnits:
    def test_the_agent_and_the_manifest_server_have_units(self) -> None:
        """Both long-running programs ship a unit, and the re-signing job one with its timer."""
        assert [p.name for p in UNITS] == [
            "isa-agent@.service", "isa-broker-resign.service", "isa-broker-serve.service"
        ]
        assert (ROOT / "deploy" / "systemd" / "isa-broker-resign.timer").is_file()

    @pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
    def test_a_unit_is_hardened_and_runs_as_its_own_user(self, path: Path) -> None:
        """Own (non-root) user and every hardening setting the issue names."""
        service = unit(path)
        found = {key: service.get(key) for key in HARDENING}
        assert found == HARDENING
        assert service.get("User") not in (None, "", "root")

    @pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
    def test_exec_start_is_a_command_the_cli_accepts(self, path: Path) -> None:
        """The unit's command line parses with the real parser (``%i`` as an agency id)."""
        argv = shlex.split(unit(path)["ExecStart"].replace("%i", "syn-agency"))
        program = Path(argv[0]).name
        parser = {"isa-agent": agent_parser, "isa-broker": broker_parser}[program]()
        args = parser.parse_args(argv[1:])
        assert hasattr(args, "func")

    @pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
    def test_systemd_accepts_the_unit(self, path: Path, tmp_path: Path) -> None:
        """``systemd-analyze verify`` reports nothing (the binary path pointed at /bin/true)."""
        analyze = shutil.which("systemd-analyze")
        assert analyze is not None, "systemd-analyze (Debian's systemd package) is needed"
        name = path.name.replace("@.", "@syn.")
        text = path.read_text(encoding="utf-8").replace("/opt/isa-relay/bin/", "/bin/true # ")
        text = text.replace("ExecStart=/bin/true # ", "ExecStart=/bin/true ")
        (tmp_path / name).write_text(text, encoding="utf-8")
        result = subprocess.run(
            [analyze, "verify", "--man=no", str(tmp_path / name)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip  # no timeout: a timed subprocess wait fails with EINVAL under faketime
        assert (result.returncode, result.stderr.strip()) == (0, "")
