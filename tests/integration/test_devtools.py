"""The tools' shared pieces (devtools/): one management client and one agent launcher.

The management client is the product's ``ManagementClient`` called synchronously, against the
real RabbitMQ; the launcher runs real processes (a stand-in program that ignores SIGTERM, so
the escalation to SIGKILL is observable without an agent).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import pytest

from devtools.launcher import AgentProcess, LaunchError, free_port, stop_pids
from devtools.management import Broker, BrokerApiError
from tests.support.rabbitmq import RabbitServer, RabbitVhost

pytestmark = pytest.mark.rabbitmq

IGNORES_SIGTERM = (
    sys.executable, "-c",
    "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('up', flush=True); time.sleep(60)",
)  # fmt: skip


def stand_in(tmp_path: Path, program: tuple[str, ...] = IGNORES_SIGTERM) -> AgentProcess:
    """A launcher whose 'agent' is ``program`` (given ``run --config X`` as ignored argv)."""
    return AgentProcess("stand-in", tmp_path / "agent.toml", f"http://127.0.0.1:{free_port()}",
                        tmp_path / "agent.log", program=program)  # fmt: skip


class TestBrokerManagement:
    def test_api_takes_a_percent_encoded_path_as_the_api_writes_it(
        self, rabbit_vhost: RabbitVhost
    ) -> None:
        """A vhost named by its quoted path is found; the answer is the API's JSON."""
        server = rabbit_vhost.server
        found = server.api("GET", f"vhosts/{rabbit_vhost.name.replace('-', '%2D')}")
        assert found["name"] == rabbit_vhost.name

    async def test_works_from_inside_a_running_event_loop(
        self, rabbit_vhost: RabbitVhost
    ) -> None:
        """Called from async code, a synchronous call still answers (no nested-loop error)."""
        assert rabbit_vhost.server.vhost_exists(rabbit_vhost.name)
        await asyncio.sleep(0)

    def test_a_refusal_is_a_broker_api_error_with_its_status(
        self, rabbit_server: RabbitServer
    ) -> None:
        """GET of a vhost that does not exist raises BrokerApiError(status=404)."""
        with pytest.raises(BrokerApiError) as info:
            rabbit_server.api("GET", "vhosts/no-such-vhost-devtools")
        assert info.value.status == 404

    def test_discarding_what_is_not_there_is_not_an_error(
        self, rabbit_server: RabbitServer
    ) -> None:
        """discard_vhost / discard_user of unknown names return quietly."""
        rabbit_server.discard_vhost("no-such-vhost-devtools")
        rabbit_server.discard_user("no-such-user-devtools")
        assert not rabbit_server.vhost_exists("no-such-vhost-devtools")

    def test_an_unreachable_api_is_an_error_even_when_discarding(self) -> None:
        """No management API on the port: BrokerApiError with status None, naming the URL."""
        broker = Broker.from_env(management_url="http://127.0.0.1:9")
        with pytest.raises(BrokerApiError, match=r"127\.0\.0\.1:9 is unreachable") as info:
            broker.discard_vhost("anything")
        assert info.value.status is None


class TestLauncher:
    def test_stop_kills_a_process_that_ignores_sigterm_and_says_so(self, tmp_path: Path) -> None:
        """SIGTERM ignored for the grace period: SIGKILL, then LaunchError naming the signal."""
        agent = stand_in(tmp_path)
        agent.start()
        process = agent.process
        assert process is not None
        while "up" not in agent.tail():  # its SIGTERM handler is set
            time.sleep(0.02)
        with pytest.raises(LaunchError, match="ignored SIGTERM"):
            agent.stop(grace=1.0)
        assert process.returncode == -signal.SIGKILL

    def test_an_agent_that_exits_during_start_up_is_reported_with_its_log(
        self, tmp_path: Path
    ) -> None:
        """A program that fails at once: LaunchError with its exit code and log tail."""
        program = (sys.executable, "-c", "import sys; print('boom'); sys.exit(3)")
        agent = stand_in(tmp_path, program)
        agent.start()
        with pytest.raises(LaunchError, match=r"exited with 3 during start-up(.|\n)*boom"):
            agent.wait_healthy(within=10)

    def test_stop_pids_leaves_alone_a_pid_that_is_not_ours(self, tmp_path: Path) -> None:
        """A recorded pid that is_ours rejects is neither counted nor signalled."""
        agent = stand_in(tmp_path, (sys.executable, "-c", "import time; time.sleep(60)"))
        agent.start()
        try:
            assert stop_pids([agent.pid], is_ours=lambda pid: False, grace=0.1) == (0, [])
            assert agent.running
        finally:
            agent.stop(signal.SIGKILL)
