"""Logs as JSON lines with a request id: every API response and every line logged while
handling a request carry the same ``X-Request-Id`` (agent.logs, agent.api rule 6)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from agent.logs import configure_logging
from tests.unit.agent.api.conftest import SEND, bearer

Client = TestClient[web.Request, web.Application]


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The root logger writing JSON lines at DEBUG into a buffer (restored afterwards)."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream)
    yield stream
    root.handlers[:] = saved[1]
    root.setLevel(saved[0])


def access_lines(stream: io.StringIO) -> list[dict[str, object]]:
    """Every line parsed as JSON (any line that is not JSON fails the test), access lines only."""
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line["logger"] == "agent.api"]


class TestJsonLines:
    async def test_a_request_line_parses_and_carries_the_response_request_id(
        self, client: Client, json_log: io.StringIO
    ) -> None:
        """The access line is one JSON object with time, level, logger, message and request_id."""
        response = await client.get("/v1/isas", headers=bearer(SEND))
        [line] = access_lines(json_log)
        assert set(line) == {"time", "level", "logger", "message", "request_id"}
        assert line["request_id"] == response.headers["X-Request-Id"]
        assert line["message"] == f"GET /v1/isas -> {response.status}"

    async def test_a_sane_incoming_request_id_is_kept(
        self, client: Client, json_log: io.StringIO
    ) -> None:
        """A case system's own X-Request-Id is echoed and logged, so it can follow its request."""
        response = await client.get("/healthz", headers={"X-Request-Id": "case-4711.a:b_c"})
        assert response.headers["X-Request-Id"] == "case-4711.a:b_c"
        assert access_lines(json_log)[0]["request_id"] == "case-4711.a:b_c"

    async def test_an_unsafe_incoming_request_id_is_replaced(
        self, client: Client, json_log: io.StringIO
    ) -> None:
        """An id with spaces or markup is never echoed nor logged: a fresh one replaces it."""
        response = await client.get("/healthz", headers={"X-Request-Id": "SYN Jane <b>Doe</b>"})
        request_id = response.headers["X-Request-Id"]
        assert len(request_id) == 32
        assert int(request_id, 16) >= 0
        assert "Jane" not in json_log.getvalue()

    async def test_an_error_response_has_a_request_id_too(
        self, client: Client, json_log: io.StringIO
    ) -> None:
        """A 401 problem response carries the id its log line names."""
        response = await client.get("/v1/isas")
        assert response.status == 401
        assert access_lines(json_log)[0]["request_id"] == response.headers["X-Request-Id"]
