"""Issue 15 point 1, the agent's side: within ``[trust] manifest_alert_hours`` of the held
manifest's expiry the agent warns once (log), reports ``degraded`` on ``/healthz`` (still 200)
with the reason, and exports the time left; at expiry it says so once and fails closed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.actor import Caller
from agent.config import Settings, TrustSettings, load_settings
from agent.runtime import open_agent
from agent.service import Service
from agent.trust import TrustHolder
from broker.agency import revoke_agency
from broker.fedstate import FederationLayout
from tests.unit.agent.test_trust import settings
from tests.unit.broker.conftest import NOW, _template, layout

__all__ = ["_template", "layout"]  # the broker tests' dev federation, copied per test

EXPIRES = NOW + timedelta(days=7)  # the dev federation's manifest validity
LEAD = timedelta(hours=48)


class SteppedClock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class CountingClock(SteppedClock):
    """A fixed clock that sets ``reached`` once it has been read ``readings`` times."""

    def __init__(self, now: datetime, readings: int) -> None:
        super().__init__(now)
        self.left = readings
        self.reached = asyncio.Event()

    def __call__(self) -> datetime:
        self.left -= 1
        if self.left <= 0:
            self.reached.set()
        return self.now


def holder(layout: FederationLayout, tmp_path: Path, clock: SteppedClock) -> TrustHolder:
    held = TrustHolder(settings(layout, layout.manifest), tmp_path / "data", clock=clock)
    assert held.offer(layout.manifest.read_bytes(), NOW)
    return held


def alerts(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "agent.trust"
            and r.levelno == logging.WARNING]  # fmt: skip


class TestManifestAlert:
    def test_no_alert_a_second_before_the_lead_time(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """With a second more than 48 hours left there is nothing to say."""
        clock = SteppedClock(EXPIRES - LEAD - timedelta(seconds=1))
        assert holder(layout, tmp_path, clock).manifest_alert(clock.now) is None

    def test_within_the_lead_time_the_alert_names_the_hours_left(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """47 hours before expiry the alert says so and points at the re-signing job."""
        clock = SteppedClock(EXPIRES - timedelta(hours=47, minutes=30))
        assert holder(layout, tmp_path, clock).manifest_alert(clock.now) == (
            "the manifest (serial 1) expires in 47 h (at 2026-12-01T12:00:00Z):"
            " the operator's re-signing job is not running?"
        )

    def test_each_stage_is_logged_once(
        self, layout: FederationLayout, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Entering the lead time logs once, expiry logs once, however often it is asked."""
        clock = SteppedClock(EXPIRES - timedelta(hours=47))
        held = holder(layout, tmp_path, clock)
        with caplog.at_level(logging.WARNING, logger="agent.trust"):
            for at in (EXPIRES - timedelta(hours=47), EXPIRES - timedelta(hours=2), EXPIRES,
                       EXPIRES + timedelta(hours=5)):  # fmt: skip
                held.manifest_alert(at)
                held.manifest_alert(at)
        assert [m.split(":")[0] for m in alerts(caplog)] == [
            "the manifest (serial 1) expires in 47 h (at 2026-12-01T12",
            "the manifest (serial 1) expired at 2026-12-01T12",
        ]

    def test_a_newer_serial_ends_the_alert(self, layout: FederationLayout, tmp_path: Path) -> None:
        """Once the re-signed manifest arrives the alert is gone."""
        late = EXPIRES - timedelta(hours=10)
        clock = SteppedClock(late)
        held = holder(layout, tmp_path, clock)
        assert held.manifest_alert(late) is not None
        revoke_agency(layout, agency_id="assist", reason="SYN", now=late)  # the next serial
        assert held.offer(layout.manifest.read_bytes(), late)
        assert held.manifest_alert(late) is None

    async def test_poll_logs_the_alert_with_its_clock(
        self, layout: FederationLayout, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The poll loop checks after each refresh: the warning is logged once, with no request."""
        clock = CountingClock(EXPIRES - timedelta(hours=20), readings=10)
        held = TrustHolder(
            settings(layout, layout.manifest, poll=0.01), tmp_path / "data", clock=clock
        )
        assert held.offer(layout.manifest.read_bytes(), NOW)
        with caplog.at_level(logging.WARNING, logger="agent.trust"):
            task = asyncio.create_task(held.poll())
            async with asyncio.timeout(10):
                await clock.reached.wait()  # several polls, each reading the clock twice
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert [m.split(" (at")[0] for m in alerts(caplog)] == [
            "the manifest (serial 1) expires in 20 h"
        ]

    def test_alert_hours_must_be_positive(self, layout: FederationLayout) -> None:
        """``manifest_alert_hours = 0`` is a configuration error, not a silent no-alert."""
        base = settings(layout, layout.manifest).model_dump()
        with pytest.raises(ValidationError, match="greater than 0"):
            TrustSettings.model_validate(base | {"manifest_alert_hours": 0})


class _Connected:
    """Stands in for the AMQP transport: only its ``connected`` flag is read by health."""

    connected = True
    consuming = True

    async def publish(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("health publishes nothing")


@contextlib.asynccontextmanager
async def service_at(layout: FederationLayout, clock: SteppedClock) -> AsyncIterator[Service]:
    config: Settings = load_settings(layout.agency_dir("assist") / "agent.toml", {})
    async with open_agent(config, clock=clock) as agent:
        with agent.publisher.attached(_Connected()):  # type: ignore[arg-type]
            yield agent.service()


class TestHealth:
    async def test_health_is_ok_before_the_lead_time(self, layout: FederationLayout) -> None:
        """Three days before expiry: ok, 200, no warning."""
        async with service_at(layout, SteppedClock(EXPIRES - timedelta(days=3))) as service:
            health = await service.health()
        assert (health.status, health.http_status, health.manifest.warning) == ("ok", 200, None)

    async def test_health_is_degraded_but_200_within_the_lead_time(
        self, layout: FederationLayout
    ) -> None:
        """47 hours before expiry: degraded with the reason, still 200 (everything works)."""
        async with service_at(layout, SteppedClock(EXPIRES - timedelta(hours=47))) as service:
            health = await service.health()
        assert (health.status, health.http_status) == ("degraded", 200)
        assert health.manifest.warning is not None
        assert health.manifest.warning.startswith("the manifest (serial 1) expires in 47 h")

    async def test_health_is_fail_closed_at_expiry_and_says_why(
        self, layout: FederationLayout
    ) -> None:
        """At expiry: fail_closed, 503, and the warning says the manifest expired (it was
        fail_closed with manifest.error null and nothing else)."""
        clock = SteppedClock(EXPIRES - timedelta(days=3))  # running since before expiry
        async with service_at(layout, clock) as service:
            clock.now = EXPIRES
            health = await service.health()
        assert (health.status, health.http_status, health.manifest.valid) == (
            "fail_closed",
            503,
            False,
        )
        assert health.manifest.warning is not None
        assert "expired at 2026-12-01T12:00:00Z" in health.manifest.warning

    async def test_metrics_export_the_seconds_left_on_everything(
        self, layout: FederationLayout
    ) -> None:
        """The gauges carry the manifest's, the certificates', the key's and the ISAs' times."""
        now = EXPIRES - timedelta(days=1)
        async with service_at(layout, SteppedClock(now)) as service:
            text = await service.metrics_text(Caller.system("case-system"))
        samples = {
            name: float(value)
            for name, value in (line.rsplit(" ", 1) for line in text.splitlines() if line[0] != "#")
        }
        assert samples["isa_agent_manifest_expires_in_seconds"] == 86400
        assert samples['isa_agent_certificate_expires_in_seconds{certificate="agency"}'] == (
            (358 + 1) * 86400
        )
        assert samples["isa_agent_encryption_key_expires_in_seconds"] == 24 * 86400
        review = samples['isa_agent_isa_review_in_seconds{isa="isa-police-assist-advocacy"}']
        assert review == (datetime(2027, 6, 30, tzinfo=NOW.tzinfo) - now).total_seconds()
        assert text.count("# TYPE isa_agent_isa_review_in_seconds gauge") == 1
