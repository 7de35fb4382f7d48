"""Serving the API: an explicit async lifetime, configured from the agent's settings."""

from __future__ import annotations

import aiohttp
import pytest

from agent.api import create_app, serving
from agent.auth import clients_from_settings, hash_token
from agent.config import ApiClientSettings
from tests.unit.agent.api.conftest import CLIENTS
from tests.unit.agent.api.fake_service import FakeService


class TestServing:
    async def test_serves_on_the_bound_port_then_closes(self) -> None:
        """Inside the block /healthz answers on the yielded port; after it, nothing listens."""
        app = create_app(FakeService(), CLIENTS)
        async with aiohttp.ClientSession() as session:
            async with (
                serving(app, "127.0.0.1", 0) as port,
                session.get(f"http://127.0.0.1:{port}/healthz") as response,
            ):
                assert response.status == 200
            with pytest.raises(aiohttp.ClientConnectionError):
                await session.get(f"http://127.0.0.1:{port}/healthz")


class TestClientsFromSettings:
    def test_each_configured_client_keeps_its_name_digest_and_scopes(self) -> None:
        """[[api.clients]] entries become ApiClients one for one."""
        settings = [
            ApiClientSettings(name="cs", token_sha256=hash_token("a"), scopes=("send", "receive")),
            ApiClientSettings(name="prom", token_sha256=hash_token("b"), scopes=("admin",)),
        ]
        clients = clients_from_settings(settings)
        assert [(c.name, c.token_sha256, c.scopes) for c in clients] == [
            ("cs", hash_token("a"), frozenset({"send", "receive"})),
            ("prom", hash_token("b"), frozenset({"admin"})),
        ]
