"""The README's first command, ``scripts/demo``, run as a newcomer would, against the real RabbitMQ.

The whole demo runs once per module (in its own directory, on its own vhost); the tests read its
output, its directory, the process table and the broker afterwards. A second run checks
``--keep`` and ``--stop``. The failure tests call the driver directly (no environment set-up).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.support.rabbitmq import BrokerApiError, RabbitServer

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\s*(\d+)\s+(\S+) -> (\S+)\s+(\S+)\s+(standard|medium|high)\s+(\w+)\s+(\d+)")


@dataclass(frozen=True)
class Run:
    dir: Path
    vhost: str
    code: int
    out: str
    err: str

    def rows(self) -> list[str]:
        return [line for line in self.out.splitlines() if ROW.match(line)]

    def rows_with(self, decision: str) -> list[str]:
        return [row for row in self.rows() if cells(row)[6] == decision]


def cells(row: str) -> re.Match[str]:
    """The columns of one table row (#, sender, recipient, ISA, risk, decision, shared)."""
    match = ROW.match(row)
    assert match is not None, row
    return match


def shipped_isa_ids() -> set[str]:
    return {yaml.safe_load(p.read_text())["isa"]["id"] for p in (REPO / "policies").glob("*.yaml")}


def run_demo(directory: Path, vhost: str, *extra: str, entry: str = "scripts/demo") -> Run:
    command = [entry] if entry == "scripts/demo" else [sys.executable, entry]
    done = subprocess.run(
        [*command, "--dir", str(directory), "--vhost", vhost, *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        env=os.environ.copy(),
        check=False,
    )
    return Run(directory, vhost, done.returncode, done.stdout, done.stderr)


def processes_mentioning(directory: Path, program: bytes = b"") -> list[int]:
    """Live (non-zombie) processes whose command line names ``directory`` (and ``program``)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if str(directory).encode() in cmdline and program in cmdline and state != "Z":
            found.append(int(proc.name))
    return found


def agent_processes(directory: Path) -> list[int]:
    return processes_mentioning(directory, b"isa-agent")


def vhost_exists(server: RabbitServer, vhost: str) -> bool:
    try:
        server.api("GET", f"vhosts/{urllib.parse.quote(vhost, safe='')}")
    except BrokerApiError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def wait_for(condition: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)
    return condition()


def remove_vhost_and_users(server: RabbitServer, vhost: str) -> None:
    """Clean up after a demo that could not (its users are named '<vhost>.<agency>')."""
    for user in server.api("GET", "users"):
        if user["name"].startswith(vhost + "."):
            server.api("DELETE", f"users/{urllib.parse.quote(user['name'], safe='')}")
    server.discard_vhost(vhost)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, rabbit_server: RabbitServer) -> Run:
    """One complete ``scripts/demo`` run in a fresh directory on a fresh vhost."""
    return run_demo(tmp_path_factory.mktemp("demo") / ".demo", f"test-demo-{uuid.uuid4().hex[:8]}")


class TestDemoRun:
    def test_exits_zero_and_says_it_finished(self, demo: Run) -> None:
        """The demo succeeds and its last line says nothing is left running."""
        assert demo.code == 0, demo.out + demo.err
        assert "demo finished" in demo.out.splitlines()[-1]
        assert "nothing left running" in demo.out.splitlines()[-1]

    def test_shows_progress_one_numbered_line_per_step(self, demo: Run) -> None:
        """Progress lines [1/6] .. [6/6] appear in order."""
        steps = re.findall(r"\[(\d)/6\]", demo.out)
        assert steps == ["1", "2", "3", "4", "5", "6"]

    def test_table_has_a_row_for_every_shipped_isa(self, demo: Run) -> None:
        """Every ISA in policies/ governs at least one referral of the table."""
        isas = {cells(row)[4] for row in demo.rows()}
        assert isas == shipped_isa_ids()

    def test_every_permitted_referral_is_delivered_with_a_verified_receipt(self, demo: Run) -> None:
        """Each PERMIT row reads 'delivered' with a 'delivered, verified' receipt."""
        permitted = demo.rows_with("PERMIT")
        assert len(permitted) >= 10
        assert all(re.search(r"delivered\s+delivered, verified$", row) for row in permitted)

    def test_deny_is_refused_and_nothing_is_sent(self, demo: Run) -> None:
        """At least one DENY; each is refused with 403 and nothing is sent."""
        refused = demo.rows_with("DENY")
        assert refused
        assert all(row.endswith("refused (403)  nothing sent") for row in refused)

    def test_a_review_is_approved_by_a_second_person_and_delivered(self, demo: Run) -> None:
        """At least one REVIEW: held, approved by a second person, delivered and verified."""
        reviewed = demo.rows_with("REVIEW")
        assert reviewed
        assert all(re.search(r"delivered\s+delivered, verified$", row) for row in reviewed)
        said = r"approved\s+by\s+a\s+second\s+person\s+\(marac_reviewer\)\s+and\s+sent"
        assert re.search(said, demo.out)

    def test_marac_risk_levels_give_three_different_decisions(self, demo: Run) -> None:
        """MARAC referrals: standard -> DENY, medium -> REVIEW, high -> PERMIT."""
        marac = [cells(row) for row in demo.rows() if "isa-marac-referrals" in row]
        seen = {(m[5], m[6]) for m in marac}
        assert {("standard", "DENY"), ("medium", "REVIEW"), ("high", "PERMIT")} <= seen

    def test_the_refuge_address_is_withheld_as_never_shared(self, demo: Run) -> None:
        """The MARAC referral carrying a refuge address shows it withheld as never shared."""
        assert "never shared (victim.refuge_address)" in demo.out

    def test_names_the_fields_the_recipient_got_in_a_general_form(self, demo: Run) -> None:
        """A perpetrator's date of birth reaches the MARAC only as an age band, and says so."""
        assert "generalised: perpetrators[].date_of_birth" in demo.out

    def test_leaves_no_agent_process_running(self, demo: Run) -> None:
        """No process started for the demo's directory survives the demo."""
        assert processes_mentioning(demo.dir) == []

    def test_writes_one_agent_log_per_agency(self, demo: Run) -> None:
        """logs/ holds one non-empty log per agency of the federation."""
        logs = sorted(p.stem for p in (demo.dir / "logs").glob("*.log"))
        agencies = sorted(p.name for p in (demo.dir / "agencies").iterdir())
        assert logs == agencies
        assert all((demo.dir / "logs" / f"{a}.log").stat().st_size > 0 for a in agencies)

    def test_removes_its_vhost_from_the_broker(
        self, demo: Run, rabbit_server: RabbitServer
    ) -> None:
        """Without --keep the demo's vhost is gone afterwards."""
        assert not vhost_exists(rabbit_server, demo.vhost)

    def test_uses_broker_users_named_after_its_vhost(self, demo: Run) -> None:
        """The agents' broker users are '<vhost>.<agency>', never another federation's."""
        text = (demo.dir / "agencies" / "assist" / "agent.toml").read_text()
        assert f'user = "{demo.vhost}.assist"' in text


class TestKeepAndStop:
    def test_keep_leaves_the_agents_running_until_stop(
        self, tmp_path: Path, rabbit_server: RabbitServer
    ) -> None:
        """--keep leaves agents and vhost up (a rerun refuses to touch them); --stop ends both."""
        directory, vhost = tmp_path / "kept", f"test-demo-keep-{uuid.uuid4().hex[:8]}"
        kept = run_demo(directory, vhost, "--keep", entry="scripts/demo.py")
        try:
            assert kept.code == 0, kept.out + kept.err
            assert f"scripts/demo --stop --dir {directory}" in kept.out
            assert len(agent_processes(directory)) == 8
            assert vhost_exists(rabbit_server, vhost)
            again = run_demo(directory, vhost, entry="scripts/demo.py")
            assert again.code == 1
            assert "still running (--keep)" in again.err
            assert len(agent_processes(directory)) == 8
        finally:
            stopped = run_demo(directory, vhost, "--stop", entry="scripts/demo.py")
        assert stopped.code == 0, stopped.out + stopped.err
        assert "stopped 8 agent(s)" in stopped.out
        assert processes_mentioning(directory) == []
        assert not vhost_exists(rabbit_server, vhost)


class TestFailures:
    def test_a_directory_the_demo_did_not_make_is_refused_without_force(
        self, tmp_path: Path
    ) -> None:
        """An existing foreign directory is left alone: exit 1, a clear message, no traceback."""
        (tmp_path / "notes.txt").write_text("not a demo\n")
        run = run_demo(tmp_path, "test-demo-unused", entry="scripts/demo.py")
        assert run.code == 1
        assert "was not made by the demo; pass --force" in run.err
        assert "Traceback" not in run.err
        assert (tmp_path / "notes.txt").exists()

    def test_stop_without_a_demo_says_there_is_nothing_to_stop(self, tmp_path: Path) -> None:
        """--stop on an empty directory: exit 1 and 'nothing to stop'."""
        run = run_demo(tmp_path, "test-demo-unused", "--stop", entry="scripts/demo.py")
        assert run.code == 1
        assert "nothing to stop" in run.err
        assert "Traceback" not in run.err

    def test_an_unreachable_management_api_is_reported_plainly(self, tmp_path: Path) -> None:
        """A broker that does not answer ends the demo with exit 1 and names the URL."""
        env = os.environ | {"RABBITMQ_MANAGEMENT_URL": "http://127.0.0.1:9"}
        done = subprocess.run(
            [sys.executable, "scripts/demo.py", "--dir", str(tmp_path / "d"), "--vhost", "x"],
            cwd=REPO, capture_output=True, text=True, timeout=60, env=env, check=False,
        )  # fmt: skip
        assert done.returncode == 1
        assert "demo failed: RabbitMQ management API at http://127.0.0.1:9" in done.stderr
        assert "Traceback" not in done.stderr

    def test_a_failure_after_the_agents_started_still_stops_them_and_removes_the_vhost(
        self, tmp_path: Path, rabbit_server: RabbitServer
    ) -> None:
        """Agents too slow for --timeout: exit 1 naming them; no agent and no vhost left over."""
        directory, vhost = tmp_path / "slow", f"test-demo-fail-{uuid.uuid4().hex[:8]}"
        run = run_demo(directory, vhost, "--timeout", "0.01", entry="scripts/demo.py")
        assert run.code == 1
        assert "no healthy /healthz within" in run.err
        assert "Traceback" not in run.err
        assert processes_mentioning(directory) == []
        assert not vhost_exists(rabbit_server, vhost)

    def test_sigterm_while_the_agents_run_stops_them_and_removes_the_vhost(
        self, tmp_path: Path, rabbit_server: RabbitServer
    ) -> None:
        """SIGTERM to the demo mid-run: exit 130, no agent and no vhost left over."""
        directory, vhost = tmp_path / "term", f"test-demo-term-{uuid.uuid4().hex[:8]}"
        demo = subprocess.Popen(
            [sys.executable, "scripts/demo.py", "--dir", str(directory), "--vhost", vhost],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert wait_for(lambda: len(agent_processes(directory)) == 8, within=60)
        finally:
            demo.send_signal(signal.SIGTERM)
            _, err = demo.communicate(timeout=60)
        assert demo.returncode == 130, err
        assert processes_mentioning(directory) == []
        assert not vhost_exists(rabbit_server, vhost)

    def test_agents_do_not_outlive_a_demo_killed_with_sigkill(
        self, tmp_path: Path, rabbit_server: RabbitServer
    ) -> None:
        """SIGKILL leaves the driver no chance to clean up: the agents still stop by themselves."""
        directory, vhost = tmp_path / "kill", f"test-demo-kill-{uuid.uuid4().hex[:8]}"
        demo = subprocess.Popen(
            [sys.executable, "scripts/demo.py", "--dir", str(directory), "--vhost", vhost],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            started = wait_for(lambda: len(agent_processes(directory)) == 8, within=60)
        finally:
            demo.kill()
            demo.wait()
        assert started
        try:
            assert wait_for(lambda: agent_processes(directory) == [], within=30)
        finally:
            for pid in agent_processes(directory):  # only if the claim failed: ours to stop
                os.kill(pid, signal.SIGTERM)
            remove_vhost_and_users(rabbit_server, vhost)


def load_driver() -> ModuleType:
    """scripts/demo.py as a module (it is a script, not part of a package)."""
    spec = importlib.util.spec_from_file_location("demo_driver", REPO / "scripts" / "demo.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class TestScenarios:
    def test_every_shipped_flow_has_a_scenario_with_an_expected_decision(self) -> None:
        """The hand-written scenarios cover every flow and type; none is filled in blindly."""
        driver = load_driver()
        assert driver.all_scenarios(REPO / "policies") == driver.SCENARIOS

    def test_a_flow_without_a_scenario_still_gets_a_referral(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Drop the Caledonian scenarios: the demo still sends one (high risk, any decision)."""
        driver = load_driver()
        kept = tuple(s for s in driver.SCENARIOS if s.isa != "isa-caledonian-partner-contact")
        monkeypatch.setattr(driver, "SCENARIOS", kept)
        added = driver.all_scenarios(REPO / "policies")[len(kept) :]
        assert [dataclasses.astuple(s) for s in added] == [
            ("caledonian-mens", "caledonian-womens", "isa-caledonian-partner-contact",
             "partner_safety", "caledonian_partner_contact", "high", None, None),
        ]  # fmt: skip
