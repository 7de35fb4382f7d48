"""Specification of the manifest re-signing (issue 15 point 1): ``isa-broker serve`` re-signs
the manifest once it enters the lead time and not before, under the federation's writers' lock,
never rolling the serial back; each re-sign is logged."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.agency import revoke_agency
from broker.cli import main as broker_main
from broker.devfed import create_dev_federation
from broker.fedstate import FederationLayout, federation_lock, load_state
from broker.keys_report import load_manifest
from broker.resign import RESIGN_LOG, resign_if_due, resign_loop

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
VALIDITY = timedelta(days=7)
BEFORE = timedelta(hours=72)
AGENCIES = ["police-scotland", "assist"]


@pytest.fixture(scope="module")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("resign") / "fed"
    create_dev_federation(
        root, policies=REPO / "policies", now=NOW, agencies=AGENCIES,
        vhost="syn-unit-never-provisioned", manifest_validity=VALIDITY,
    )  # fmt: skip
    return root


@pytest.fixture
def layout(_template: Path, tmp_path: Path) -> FederationLayout:
    shutil.copytree(_template, tmp_path / "fed")
    return FederationLayout(tmp_path / "fed")


class SteppedClock:
    """A clock the test moves by hand; it counts the loop's checks (one reading each)."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.readings = 0
        self.target = 0
        self.reached = asyncio.Event()

    def __call__(self) -> datetime:
        self.readings += 1
        if self.readings >= self.target:
            self.reached.set()
        return self.now


async def _loop_checks(layout: FederationLayout, clock: SteppedClock, checks: int) -> None:
    """Run the re-signing loop (interval 1 ms) until it has made ``checks`` more checks."""
    clock.target, clock.reached = clock.readings + checks + 1, asyncio.Event()
    task = asyncio.create_task(resign_loop(layout, clock, before=BEFORE, interval=0.001))
    async with asyncio.timeout(30):  # +1 reading: the last check has then finished
        await clock.reached.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class TestResignIfDue:
    def test_not_resigned_one_second_before_the_lead_time(self, layout: FederationLayout) -> None:
        """A manifest with a second more than the lead time left is left alone."""
        serial = load_manifest(layout).serial
        at = NOW + VALIDITY - BEFORE - timedelta(seconds=1)
        assert (resign_if_due(layout, at, BEFORE), load_manifest(layout).serial) == (None, serial)

    def test_resigned_at_the_lead_time_with_the_next_serial_and_a_fresh_expiry(
        self, layout: FederationLayout
    ) -> None:
        """At the lead time the next serial is published, valid for the full period from now."""
        serial = load_manifest(layout).serial
        at = NOW + VALIDITY - BEFORE
        assert resign_if_due(layout, at, BEFORE) == serial + 1
        fresh = load_manifest(layout)
        assert (fresh.serial, fresh.expires_at) == (serial + 1, at + VALIDITY)

    def test_each_resign_is_recorded_in_the_resign_log(self, layout: FederationLayout) -> None:
        """The re-sign appends one JSON line with the old and new serial and expiry."""
        serial = load_manifest(layout).serial
        at = NOW + VALIDITY - BEFORE
        resign_if_due(layout, at, BEFORE)
        lines = (layout.root / RESIGN_LOG).read_text().splitlines()
        assert [json.loads(line) for line in lines] == [{
            "at": "2026-11-28T12:00:00Z", "previous_serial": serial, "serial": serial + 1,
            "previous_expires_at": "2026-12-01T12:00:00Z", "expires_at": "2026-12-05T12:00:00Z",
        }]  # fmt: skip

    def test_resign_waits_for_a_writer_holding_the_lock_in_another_process(
        self, layout: FederationLayout
    ) -> None:
        """While another process holds the federation lock, nothing is published."""
        serial = load_manifest(layout).serial
        result: list[int | None] = []
        worker = threading.Thread(
            target=lambda: result.append(resign_if_due(layout, NOW + VALIDITY, BEFORE))
        )
        with subprocess.Popen(
            [sys.executable, "-c", _HOLD_LOCK, str(layout.root)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO,
        ) as holder:  # fmt: skip
            assert holder.stdout is not None
            assert holder.stdin is not None
            assert holder.stdout.readline() == b"locked\n"
            worker.start()
            worker.join(timeout=0.5)
            blocked = (worker.is_alive(), load_state(layout).serial)
            holder.stdin.close()
            holder.wait()  # it exits once stdin closes (no timeout: pytest-timeout bounds it)
        worker.join(timeout=30)
        assert (blocked, result) == ((True, serial), [serial + 1])

    def test_revoke_racing_a_resign_does_not_reuse_its_serial(
        self, layout: FederationLayout
    ) -> None:
        """A revocation that read the state before a re-sign published still goes one higher."""
        serial = load_manifest(layout).serial
        with federation_lock(layout):
            worker = threading.Thread(
                target=revoke_agency,
                kwargs={"layout": layout, "agency_id": "assist", "reason": "left", "now": NOW},
            )
            worker.start()
            worker.join(timeout=0.3)  # it has read the state and waits for the lock
            resign_if_due(layout, NOW + VALIDITY, BEFORE)  # re-entrant: this thread holds it
        worker.join(timeout=30)
        state = load_state(layout)
        assert (state.serial, load_manifest(layout).serial) == (serial + 2, serial + 2)
        assert state.agency("assist") is not None
        assert state.agency("assist").revoked_at is not None  # type: ignore[union-attr]


_HOLD_LOCK = """
import sys
from pathlib import Path
from broker.fedstate import FederationLayout, federation_lock
with federation_lock(FederationLayout(Path(sys.argv[1]))):
    print("locked", flush=True)
    sys.stdin.read()
"""


class TestResignLoop:
    async def test_loop_does_not_resign_before_the_lead_time(
        self, layout: FederationLayout
    ) -> None:
        """Checks before the lead time publish nothing."""
        serial = load_manifest(layout).serial
        clock = SteppedClock(NOW + VALIDITY - BEFORE - timedelta(minutes=1))
        await _loop_checks(layout, clock, 5)
        assert load_manifest(layout).serial == serial

    async def test_loop_resigns_once_when_the_clock_enters_the_lead_time(
        self, layout: FederationLayout
    ) -> None:
        """Moving the clock into the lead time gets exactly one new serial, however many checks."""
        serial = load_manifest(layout).serial
        clock = SteppedClock(NOW + VALIDITY - BEFORE - timedelta(minutes=1))
        await _loop_checks(layout, clock, 3)
        clock.now += timedelta(minutes=2)
        await _loop_checks(layout, clock, 5)
        fresh = load_manifest(layout)
        assert (fresh.serial, fresh.expires_at) == (serial + 1, clock.now + VALIDITY)


class TestCommands:
    def test_manifest_resign_command_publishes_only_when_due(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``isa-broker manifest resign --before 72`` is a no-op early and re-signs when due."""
        serial = load_manifest(layout).serial
        argv = ["manifest", "resign", "--federation", str(layout.root), "--before", "72"]
        early = broker_main(argv, clock=lambda: NOW + timedelta(days=1))
        due = broker_main(argv, clock=lambda: NOW + timedelta(days=5))
        out = capsys.readouterr().out.splitlines()
        assert (early, due, load_manifest(layout).serial) == (0, 0, serial + 1)
        assert out == [
            f"manifest serial {serial} not due (expires 2026-12-01T12:00:00Z)",
            f"manifest re-signed: serial {serial + 1}, expires 2026-12-06T12:00:00Z",
        ]

    def test_serve_refuses_a_lead_time_not_shorter_than_the_validity(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``--resign-before 168`` on a 168-hour manifest would re-sign on every check: refused."""
        argv = ["serve", "--federation", str(layout.root), "--resign-before", "168"]
        assert broker_main(argv, clock=lambda: NOW) != 0
        assert "must be shorter than the manifest's validity" in capsys.readouterr().err
