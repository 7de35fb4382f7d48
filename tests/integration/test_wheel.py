"""The wheel installs into a fresh virtual environment and runs outside the checkout (issue 16).

Builds ``isa_relay-VERSION-py3-none-any.whl`` from this tree, installs it with the pinned
constraints into a new venv (from the package index, as an agency's IT would), and runs the
installed console scripts from a directory that holds no project code.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run(*argv: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


def test_the_wheel_installs_into_a_fresh_venv_and_both_clis_run(tmp_path: Path) -> None:
    """pip installs the wheel; ``--version`` and ``policy lint`` run from outside the repo."""
    built = run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp_path / "dist",
                ROOT, cwd=tmp_path)  # fmt: skip
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("isa_relay-*-py3-none-any.whl")
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    installed = run(python, "-m", "pip", "install", "-q", "-c", ROOT / "constraints.txt", wheel,
                    cwd=tmp_path)  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    version = wheel.name.split("-")[1]
    agent = run(tmp_path / "venv" / "bin" / "isa-agent", "--version", cwd=tmp_path)
    broker = run(tmp_path / "venv" / "bin" / "isa-broker", "--version", cwd=tmp_path)
    lint = run(tmp_path / "venv" / "bin" / "isa-broker", "policy", "lint", ROOT / "policies",
               cwd=tmp_path)  # fmt: skip
    assert (agent.stdout.strip(), broker.stdout.strip()) == (
        f"isa-agent {version}", f"isa-broker {version}")
    assert lint.returncode == 0, lint.stdout + lint.stderr
