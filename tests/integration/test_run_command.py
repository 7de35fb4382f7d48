"""``isa-agent run`` as an operator sees it: one line for an API port already in use, and a
distinct exit status, after one line saying so, when the manifest lists the agency as revoked
(at start, or while running once its broker user is removed: a few lines, not thousands).

A dev federation on a real RabbitMQ; the CLI runs in a subprocess, as systemd would run it.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.runtime import EXIT_REVOKED
from broker.agency import revoke_agency
from broker.commands.provision import provision_command
from broker.devfed import DevFederation
from tests.support.processes import isolated_federation_at
from tests.support.rabbitmq import RabbitServer

pytestmark = [pytest.mark.rabbitmq]

AGENCY = "assist"


@pytest.fixture
def fed(tmp_path: Path, rabbit_server: RabbitServer) -> Iterator[DevFederation]:
    with isolated_federation_at(tmp_path / "fed", rabbit_server) as made:
        yield made


def run_agent(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``isa-agent run`` in a child process: its exit status and output (30 s at most)."""
    command = [sys.executable, "-m", "agent.cli", "run", "--config", str(config),
               "--event-loop", "asyncio", *args]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISA_AGENT")}
    return subprocess.run(command, capture_output=True, text=True, timeout=30, env=env, check=False)


def start_agent(config: Path, log: Path) -> subprocess.Popen[str]:
    """``isa-agent run`` logging JSON lines into ``log``, in the background."""
    command = [sys.executable, "-m", "agent.cli", "run", "--config", str(config),
               "--event-loop", "asyncio", "--log-format", "json"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISA_AGENT")}
    with log.open("w") as sink:
        return subprocess.Popen(command, stderr=sink, stdout=subprocess.DEVNULL, text=True, env=env)


def log_lines(log: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def wait_for_line(log: Path, message: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not any(line["message"].startswith(message) for line in log_lines(log)):
        assert time.monotonic() < deadline, f"no {message!r} in {log.read_text()}"
        time.sleep(0.1)


def with_listen(config: Path, listen: str) -> Path:
    """The agency's agent.toml listening on ``listen``, written beside it."""
    line = f'listen = "{listen}"'
    text, count = re.subn(r'^listen = ".*"$', line, config.read_text(), flags=re.M)
    assert count == 1
    path = config.with_name(f"agent.{uuid.uuid4().hex[:8]}.toml")
    path.write_text(text)
    return path


class TestPortInUse:
    def test_a_taken_api_port_is_one_line_and_exit_status_1(self, fed: DevFederation) -> None:
        """Regression (a 22-line traceback): the error names the address and what to do."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            address = f"127.0.0.1:{taken.getsockname()[1]}"
            done = run_agent(with_listen(fed.agency(AGENCY).config, address), "--log-level",
                             "WARNING")  # fmt: skip
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        [line] = done.stderr.splitlines()
        assert line.startswith(f"error: the API cannot listen on {address}: Address already in")
        assert "set [api] listen in agent.toml" in line


class TestRevokedAgency:
    def test_a_revoked_agency_says_so_and_exits_77(self, fed: DevFederation) -> None:
        """With its agency revoked in the manifest, the agent logs one line, stops, exits 77."""
        serial = revoke_agency(fed.layout, agency_id=AGENCY, reason="SYN", now=datetime.now(UTC))
        done = run_agent(fed.agency(AGENCY).config, "--log-format", "json")
        assert done.returncode == EXIT_REVOKED == 77
        assert "Traceback" not in done.stderr
        errors = [line for line in done.stderr.splitlines() if '"level": "ERROR"' in line]
        assert len(errors) == 1
        assert f"(serial {serial}) lists agency {AGENCY} as revoked" in errors[0]
        assert done.stderr.splitlines()[-1].endswith(f'"message": "agent {AGENCY} stopped"}}')

    def test_a_running_agent_whose_broker_user_is_removed_logs_a_few_lines_and_exits_77(
        self, fed: DevFederation, tmp_path: Path
    ) -> None:
        """Regression (3,239 lines in 27 minutes): revoked and deprovisioned while running, it
        logs the lost connection, one refused attempt's revocation, and stops with 77."""
        log = tmp_path / "agent.log"
        agent = start_agent(fed.agency(AGENCY).config, log)
        try:
            wait_for_line(log, "broker connection up at attempt 1")
            revoke_agency(fed.layout, agency_id=AGENCY, reason="SYN", now=datetime.now(UTC))
            out = io.StringIO()
            assert provision_command(fed.layout.broker_toml, dry_run=False, environ={},
                                     out=out) == 0, out.getvalue()  # fmt: skip
            status = agent.wait(timeout=30)
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
        lines = log_lines(log)
        loud = [(line["level"], line["logger"], line["message"]) for line in lines
                if line["level"] in ("WARNING", "ERROR", "CRITICAL")]  # fmt: skip
        assert status == EXIT_REVOKED
        assert [(level, logger) for level, logger, _ in loud[-2:]] == [
            ("WARNING", "agent.broker_session"), ("ERROR", "agent.runtime"),
        ]  # fmt: skip
        assert loud[-2][2].startswith("broker connection lost (")
        assert f"lists agency {AGENCY} as revoked" in loud[-1][2]
        assert not [line for line in lines if line["logger"].startswith(("aio_pika", "aiormq"))]
        assert len(lines) <= 12, lines
