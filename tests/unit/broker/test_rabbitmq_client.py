"""ManagementClient translates every HTTP failure into BrokerApiError, without credentials.

A tiny local aiohttp server plays a misbehaving management API (answers the real RabbitMQ
never gives: 500s, HTML, wrong shapes); the real broker is exercised in tests/integration.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from broker.rabbitmq import BrokerApiError, ManagementClient

SECRET = "synthetic-admin-secret"


@pytest.fixture
async def fake_api() -> AsyncIterator[tuple[str, list[str]]]:
    """A local HTTP server: returns (base URL, raw request paths seen)."""
    seen: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.raw_path)
        tail = request.match_info["tail"]
        if tail.startswith("users"):
            return web.json_response({"unexpected": "shape"})
        if tail.startswith("exchanges"):
            return web.Response(text="<html>proxy error</html>", content_type="text/html")
        if tail.startswith("queues"):
            return web.json_response({"error": "x", "reason": "inequivalent arg"}, status=400)
        if tail.startswith("vhosts"):
            return web.json_response([], status=200)
        if tail == "connections" and request.method == "GET":
            return web.json_response([{"name": "still-open", "user": "u", "vhost": "v"}])
        return web.json_response({"error": "boom"}, status=500)

    app = web.Application()
    app.router.add_route("*", "/api/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


class TestManagementClientErrors:
    async def test_http_500_becomes_broker_api_error_with_status(
        self, fake_api: tuple[str, list[str]]
    ) -> None:
        """An internal error is reported with its status and the request line."""
        async with ManagementClient(fake_api[0], "admin", SECRET) as api:
            with pytest.raises(BrokerApiError, match=r"answered HTTP 500 \(GET /api/overview\)") \
                    as info:
                await api.overview()
        assert info.value.status == 500

    async def test_rabbitmq_reason_is_passed_on(self, fake_api: tuple[str, list[str]]) -> None:
        """RabbitMQ's own 'reason' text is kept: it says what was wrong."""
        async with ManagementClient(fake_api[0], "admin", SECRET) as api:
            with pytest.raises(BrokerApiError, match="HTTP 400: inequivalent arg"):
                await api.put_queue("v", "q", arguments={})

    async def test_non_json_answer_is_an_error(self, fake_api: tuple[str, list[str]]) -> None:
        """An HTML page from a proxy is not parsed as a broker answer."""
        async with ManagementClient(fake_api[0], "admin", SECRET) as api:
            with pytest.raises(BrokerApiError, match="non-JSON"):
                await api.list_exchanges("v")

    async def test_unexpected_shape_is_an_error(self, fake_api: tuple[str, list[str]]) -> None:
        """A JSON object where a list belongs is refused, not half-read."""
        async with ManagementClient(fake_api[0], "admin", SECRET) as api:
            with pytest.raises(BrokerApiError, match="unexpected shape"):
                await api.list_users()

    async def test_credentials_in_the_url_are_never_shown(
        self, fake_api: tuple[str, list[str]]
    ) -> None:
        """Userinfo in management_url is dropped from messages and the repr."""
        base = fake_api[0].replace("http://", f"http://admin:{SECRET}@")
        async with ManagementClient(base, "admin", SECRET) as api:
            with pytest.raises(BrokerApiError) as info:
                await api.overview()
        assert SECRET not in str(info.value)
        assert SECRET not in repr(api)

    async def test_unreachable_port_is_an_error_not_an_aiohttp_exception(self) -> None:
        """A refused TCP connection becomes BrokerApiError naming the URL."""
        async with ManagementClient("http://127.0.0.1:9", "admin", SECRET, timeout=5) as api:
            with pytest.raises(BrokerApiError, match=r"at http://127\.0\.0\.1:9 is unreachable"):
                await api.overview()

    async def test_use_outside_async_with_is_an_error(self) -> None:
        """The session exists only inside 'async with'."""
        with pytest.raises(BrokerApiError, match="outside 'async with'"):
            await ManagementClient("http://127.0.0.1:9", "admin", SECRET).overview()


class TestPathEncoding:
    async def test_every_segment_is_percent_encoded_slash_included(
        self, fake_api: tuple[str, list[str]]
    ) -> None:
        """The default vhost '/' travels as %2F and is not re-quoted."""
        async with ManagementClient(fake_api[0], "admin", SECRET) as api:
            await api.vhost_exists("/")
            await api.vhost_exists("a b/c")
        assert fake_api[1] == ["/api/vhosts/%2F", "/api/vhosts/a%20b%2Fc"]


class TestClosingConnections:
    async def test_a_500_for_a_connection_that_is_gone_is_success(
        self, fake_api: tuple[str, list[str]]
    ) -> None:
        """A DELETE racing RabbitMQ's own close (the user was just deleted) can be answered
        500: the connection is gone, which is what revocation wanted."""
        async with ManagementClient(fake_api[0], "admin", SECRET) as api:
            await api.close_connection("already-closed", reason="SYNTHETIC")

    async def test_a_500_for_a_connection_still_open_is_an_error(
        self, fake_api: tuple[str, list[str]]
    ) -> None:
        """The connection is still listed: the failure is real and reported."""
        async with ManagementClient(fake_api[0], "admin", SECRET) as api:
            with pytest.raises(BrokerApiError, match="HTTP 500"):
                await api.close_connection("still-open", reason="SYNTHETIC")
