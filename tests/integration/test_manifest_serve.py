"""``isa-broker serve`` and running agents polling it: ETag/304, a new serial applied live,
and an older or forged manifest refused while the current one stays in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web

from broker.agency import revoke_agency
from broker.devfed import create_dev_federation
from broker.fedstate import FederationLayout, load_state, publish_manifest
from broker.serve import ManifestFile, Resigning, create_app, serve_manifest
from federation.keys import SigningKey
from tests.integration.test_revocation import (
    LiveFederation,
    build_live_federation,
    health,
    polling_agents,
    remove_live_federation,
    wait_for_serial,
)
from tests.support.federation import POLICIES, free_port
from tests.support.rabbitmq import RabbitServer
from tests.unit.agent.test_trust import next_serial_signed_by

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Recorder:
    """Every manifest request a server answered: (If-None-Match, status, served serial); the
    agents' audit-head posts to the same server (docs/protocol.md section 12) are not counted."""

    seen: list[tuple[str | None, int, str | None]] = field(default_factory=list)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if request.path != "/manifest":
            return response
        serial = response.headers.get("X-Manifest-Serial")
        self.seen.append((request.headers.get("If-None-Match"), response.status, serial))
        return response

    async def wait_for(self, status: int, serial: str, count: int = 1, within: float = 20) -> None:
        """Until ``count`` requests were answered with ``status`` for ``serial``."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            if sum(1 for _, s, n in self.seen if (s, n) == (status, serial)) >= count:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no {count}x {status} for serial {serial}: {self.seen}")
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def http_server(app: web.Application) -> AsyncIterator[str]:
    """Run ``app`` on a free loopback port; yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def replace_file(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` (as publish_manifest does)."""
    tmp = path.with_suffix(".swap")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@pytest.fixture
def federation(tmp_path: Path, rabbit_server: RabbitServer) -> Iterator[LiveFederation]:
    """A whole provisioned federation of this test's own (vhost and users removed after)."""
    fed = build_live_federation(tmp_path / "federation", rabbit_server)
    try:
        yield fed
    finally:
        remove_live_federation(fed)


@pytest.mark.rabbitmq
@pytest.mark.slow
class TestAgentsPollingServe:
    async def test_agents_apply_a_new_serial_without_restarting(
        self, federation: LiveFederation
    ) -> None:
        """Polls are answered 304 while nothing changes; a revocation's serial is applied live."""
        recorder = Recorder()
        held = load_state(federation.layout).serial  # what the agents start with
        app = create_app(ManifestFile(federation.layout))
        app.middlewares.append(recorder.middleware)
        async with http_server(app) as base:
            url = f"{base}/manifest"
            async with polling_agents(
                federation, "police-scotland", "marac-coordinator", manifest_url=url
            ) as agents:
                await recorder.wait_for(304, str(held), count=4)
                serial = revoke_agency(
                    federation.layout, agency_id="assist", reason="SYN", now=datetime.now(UTC)
                )
                for agent in agents.values():
                    await wait_for_serial(agent, serial)
                    assert (await health(agent))["manifest"]["valid"] is True
                await recorder.wait_for(304, str(serial), count=2)  # conditional again, new ETag
        assert [status for tag, status, _ in recorder.seen if tag is None] == [200, 200]
        assert sum(1 for _, status, n in recorder.seen if (status, n) == (200, str(serial))) == 2

    async def test_an_older_serial_served_later_is_refused_and_the_current_kept(
        self, federation: LiveFederation
    ) -> None:
        """The operator restores an old manifest: agents fetch it, refuse it, keep the newer."""
        layout = federation.layout
        old = layout.manifest.read_bytes()
        current = publish_manifest(layout, datetime.now(UTC))[0]
        recorder = Recorder()
        app = create_app(ManifestFile(layout))
        app.middlewares.append(recorder.middleware)
        async with (
            http_server(app) as base,
            polling_agents(
                federation, "police-scotland", "assist", manifest_url=f"{base}/manifest"
            ) as agents,
        ):
            replace_file(layout.manifest, old)
            await recorder.wait_for(200, str(current - 1), count=2)
            await recorder.wait_for(304, str(current - 1), count=4)
            for agent in agents.values():
                body = await health(agent)
                assert (body["manifest"]["serial"], body["manifest"]["valid"]) == (
                    current, True,
                )  # fmt: skip


@dataclass
class Mirror:
    """A compromised or confused manifest mirror: serves whatever bytes it is given."""

    data: bytes
    recorder: Recorder = field(default_factory=Recorder)
    version: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        etag = f'"v{self.version}"'
        headers = {"ETag": etag, "X-Manifest-Serial": f"v{self.version}"}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=self.data, headers=headers, content_type="application/json")

    def serve(self, data: bytes) -> None:
        self.data, self.version = data, self.version + 1

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.recorder.middleware])
        app.router.add_get("/manifest", self.handle)
        return app


@pytest.mark.rabbitmq
@pytest.mark.slow
class TestAgentFedABadManifest:
    async def test_keeps_its_manifest_when_fed_an_uncertified_signers_or_an_older_one(
        self, federation: LiveFederation
    ) -> None:
        """Forged (higher serial, rogue signer) and rolled-back files are both refused."""
        layout = federation.layout
        old = layout.manifest.read_bytes()
        held = publish_manifest(layout, datetime.now(UTC))[0]
        mirror = Mirror(layout.manifest.read_bytes())
        async with http_server(mirror.app()) as base:
            url = f"{base}/manifest"
            async with polling_agents(federation, "council-sw", manifest_url=url) as agents:
                agent = agents["council-sw"]
                await wait_for_serial(agent, held)
                for label, data in [
                    ("forged", next_serial_signed_by(layout, SigningKey.generate())),
                    ("older", old),
                ]:
                    mirror.serve(data)
                    await mirror.recorder.wait_for(200, f"v{mirror.version}")
                    await mirror.recorder.wait_for(304, f"v{mirror.version}", count=2)
                    body = await health(agent)
                    assert (label, body["manifest"]["serial"]) == (label, held)
                    assert body["manifest"]["valid"] is True
                publish_manifest(layout, datetime.now(UTC))
                mirror.serve(layout.manifest.read_bytes())
                await wait_for_serial(agent, held + 1)  # still polling, and a good one applies


class TestServeCommand:
    def test_serves_with_etag_picks_up_a_new_serial_and_stops_on_sigterm(
        self, tmp_path: Path
    ) -> None:
        """The real command: 200 + ETag, 304 on a match, serial 2 after a build, exit 0."""
        fed = create_dev_federation(
            tmp_path / "fed", policies=POLICIES, now=datetime.now(UTC), vhost="syn-never-used"
        )
        port = free_port()
        command = [sys.executable, "-m", "broker.cli", "serve", "--federation",
                   str(fed.layout.root), "--listen", f"127.0.0.1:{port}"]  # fmt: skip
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
            try:
                assert server.stdout is not None
                first = server.stdout.readline()
                assert first.startswith("serving manifest serial 1 at"), first
                url = f"http://127.0.0.1:{port}/manifest"
                etag = get(url)[1]
                assert get(url, etag)[0] == 304
                publish_manifest(FederationLayout(fed.layout.root), datetime.now(UTC))
                status, new_etag, serial = get(url, etag)
                assert (status, serial) == (200, "2")
                assert new_etag != etag
            finally:
                server.send_signal(signal.SIGTERM)
                code = server.wait(timeout=20)
        assert code == 0


class SteppedClock:
    """A clock the test moves by hand; ``read`` is set once it has been read ``wanted`` more
    times (by the re-signing loop's checks)."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.wanted = 0
        self.read = asyncio.Event()

    def __call__(self) -> datetime:
        self.wanted -= 1
        if self.wanted <= 0:
            self.read.set()
        return self.now


class TestServeResigns:
    async def test_serve_publishes_the_next_serial_only_once_within_the_lead_time(
        self, tmp_path: Path
    ) -> None:
        """``serve_manifest`` with re-signing: serial 1 served until the clock is 72 h from
        expiry, then serial 2, valid for a full week from that clock."""
        made = datetime(2026, 11, 24, 12, tzinfo=UTC)
        fed = create_dev_federation(
            tmp_path / "fed", policies=POLICIES, now=made, vhost="syn-never-used",
            agencies=["police-scotland", "assist"],
        )  # fmt: skip
        clock = SteppedClock(made + timedelta(days=4) - timedelta(minutes=1))
        stop, ready, port = asyncio.Event(), asyncio.Event(), free_port()
        resigning = Resigning(before=timedelta(hours=72), interval=0.01)
        server = asyncio.create_task(serve_manifest(
            fed.layout, "127.0.0.1", port, stop=stop, ready=ready, clock=clock, resigning=resigning,
        ))  # fmt: skip
        url = f"http://127.0.0.1:{port}/healthz"
        try:
            await asyncio.wait_for(ready.wait(), 10)
            clock.wanted, clock.read = 20, asyncio.Event()
            await asyncio.wait_for(clock.read.wait(), 20)  # twenty checks, none due
            before = json.loads(await asyncio.to_thread(_read, url))
            clock.now += timedelta(minutes=2)
            for _ in range(1000):
                after = json.loads(await asyncio.to_thread(_read, url))
                if after["serial"] != 1:
                    break
                await asyncio.sleep(0.02)
        finally:
            stop.set()
            await server
        assert (before["serial"], before["status"]) == (1, "ok")
        assert (after["serial"], after["expires_at"]) == (2, "2026-12-05T12:01:00Z")


def _read(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        data: bytes = response.read()
        return data


def get(url: str, etag: str | None = None) -> tuple[int, str, str]:
    """GET ``url`` (conditionally); (status, ETag, X-Manifest-Serial)."""
    request = urllib.request.Request(url, headers={"If-None-Match": etag} if etag else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            headers, status = response.headers, response.status
    except urllib.error.HTTPError as exc:
        headers, status = exc.headers, exc.code
    return status, headers["ETag"], headers["X-Manifest-Serial"]
