"""Property-based fuzzing of the local API against its own OpenAPI document (schemathesis).

A live aiohttp server (over the in-memory FakeService) runs on a loopback port in a thread;
schemathesis generates valid and invalid requests for every operation and checks each answer:
no 5xx, every status documented for that operation, content types and bodies matching their
schemas, auth really enforced, undefined methods answered 405.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from agent.api import create_app, serving
from agent.openapi import build_openapi
from tests.unit.agent_api.conftest import ALL, CLIENTS, MAX_BODY
from tests.unit.agent_api.fake_service import FakeService

#: - The token has every scope; schemathesis sends it where the document says a token is needed
#:   and leaves it out (or spoils it) when it checks that auth is enforced.
#: - Invalid requests may be refused as too large (413) before their content is looked at.
#: - Schema-valid requests may still be refused by the agent's semantics, each documented: the
#:   ISA denies (403), the payload breaks its message type (422), the idempotency key was used
#:   for another body (409), or it is too large (413).
_CONFIG = schemathesis.Config.from_dict(
    {
        "auth": {"openapi": {"bearer": {"bearer": ALL}}},
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422]
            },
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", 401, 403, 404, 409, 413, 422]
            },
        },
    }
)
T = TypeVar("T")
schema = schemathesis.openapi.from_dict(build_openapi(max_body_bytes=MAX_BODY), config=_CONFIG)


class _LiveServer:
    """The API on 127.0.0.1:<free port>, served from its own event loop in a thread."""

    def __init__(self) -> None:
        self.service = FakeService(deliveries=200)
        self._app = create_app(self.service, CLIENTS, max_body_bytes=MAX_BODY)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stack = contextlib.AsyncExitStack()
        self.base_url = ""

    def __enter__(self) -> _LiveServer:
        self._thread.start()
        port = self._in_loop(self._stack.enter_async_context(serving(self._app, "127.0.0.1", 0)))
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._in_loop(self._stack.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _in_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)


@pytest.fixture(scope="module")
def live_server() -> Iterator[_LiveServer]:
    with _LiveServer() as server:
        yield server


@pytest.fixture
def live_api(live_server: _LiveServer) -> str:
    return live_server.base_url


@schema.parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_openapi_contract(case: schemathesis.Case[Any], live_api: str) -> None:
    """For generated requests: no 500, only documented statuses, bodies match their schemas."""
    case.call_and_validate(base_url=live_api)


def test_linked_workflows_keep_the_contract(live_server: _LiveServer) -> None:
    """Submit then read its status, list the inbox then ack: every step keeps the contract."""
    base_url = live_server.base_url
    waiting = len(live_server.service.inbox_items)

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
            return {"base_url": base_url}

    Workflow.run(
        settings=settings(
            max_examples=30,
            stateful_step_count=6,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    assert len(live_server.service.inbox_items) < waiting, "the inbox -> ack link was never used"
