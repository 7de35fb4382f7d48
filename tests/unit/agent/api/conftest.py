"""Fixtures: an app over a FakeService, clients with each scope, an aiohttp test client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agent.actor import actor_headers
from agent.api import create_app
from agent.auth import ApiClient, hash_token
from tests.unit.agent.api.fake_service import FakeService

SEND = "syn-token-send-0000000000000000000000000"
RECEIVE = "syn-token-receive-000000000000000000000"
ADMIN = "syn-token-admin-00000000000000000000000"
ALL = "syn-token-all-0000000000000000000000000"
MAX_BODY = 4096

CLIENTS = (
    ApiClient(name="case-send", token_sha256=hash_token(SEND), scopes=frozenset({"send"})),
    ApiClient(name="case-receive", token_sha256=hash_token(RECEIVE), scopes=frozenset({"receive"})),
    ApiClient(name="monitoring", token_sha256=hash_token(ADMIN), scopes=frozenset({"admin"})),
    ApiClient(
        name="case-all",
        token_sha256=hash_token(ALL),
        scopes=frozenset({"send", "receive", "admin"}),
    ),
)


#: The person every test call names (synthetic): the API requires one by default.
ACTOR = actor_headers("SYN-STAFF-0001", "case_worker", "SYNTHETIC test of the local API")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **ACTOR}


@pytest.fixture
def service() -> FakeService:
    return FakeService(deliveries=5)


@pytest.fixture
def app(service: FakeService) -> web.Application:
    return create_app(service, CLIENTS, max_body_bytes=MAX_BODY)


@pytest.fixture
async def client(app: web.Application) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(app)) as test_client:
        yield test_client
