"""Property-based fuzzing of the local API against its own OpenAPI document (schemathesis).

A live aiohttp server (over the in-memory FakeService) runs on a loopback port in a thread;
schemathesis generates valid and invalid requests for every operation and checks each answer:
no 5xx, every status documented for that operation, content types and bodies matching their
schemas, auth really enforced, undefined methods answered 405.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings

from agent.api import create_app
from agent.openapi import build_openapi
from tests.unit.agent_api.conftest import ALL, CLIENTS, MAX_BODY
from tests.unit.agent_api.fake_service import FakeService

#: The token has every scope; schemathesis sends it where the document says a token is needed
#: and leaves it out (or spoils it) when it checks that auth is enforced.
_CONFIG = schemathesis.Config.from_dict({"auth": {"openapi": {"bearer": {"bearer": ALL}}}})
schema = schemathesis.openapi.from_dict(build_openapi(max_body_bytes=MAX_BODY), config=_CONFIG)


class _LiveServer:
    """The API on 127.0.0.1:<free port>, served from its own event loop in a thread."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        app = create_app(FakeService(deliveries=20), CLIENTS, max_body_bytes=MAX_BODY)
        self._runner = web.AppRunner(app)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.base_url = ""

    def __enter__(self) -> _LiveServer:
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def _start(self) -> int:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture(scope="module")
def live_api() -> Iterator[str]:
    with _LiveServer() as server:
        yield server.base_url


@schema.parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_openapi_contract(case: schemathesis.Case, live_api: str) -> None:
    """For generated requests: no 500, only documented statuses, bodies match their schemas."""
    case.call_and_validate(base_url=live_api)
