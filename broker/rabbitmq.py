"""A thin, typed async client for RabbitMQ's management HTTP API (aiohttp).

Rules:
1. This is an adapter: it does the HTTP and nothing else. Every aiohttp error, timeout, HTTP
   error status or unparseable answer becomes one :class:`BrokerApiError`; aiohttp exceptions
   never escape.
2. No credential ever appears in an error message or a repr: URLs are shown without userinfo,
   request bodies (which carry password hashes) are never echoed.
3. Every path segment (vhost, queue, user...) is percent-encoded, ``/`` included, and the URL is
   passed to aiohttp already encoded so it is not re-quoted.
4. ``get_*`` return ``None`` for 404; ``delete_*`` treat 404 as "already gone".
5. The client is an async context manager whose close always closes its session.

Response models keep only the fields provisioning compares and ignore the rest (the API returns
dozens); they are frozen so that a read state cannot be edited by accident.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Mapping
from types import TracebackType
from typing import Any, ClassVar, Self

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from yarl import URL

from federation.errors import LocalError

__all__ = [
    "BindingInfo",
    "BrokerApiError",
    "ConnectionInfo",
    "ExchangeInfo",
    "ManagementClient",
    "PermissionInfo",
    "QueueInfo",
    "UserInfo",
]


class BrokerApiError(LocalError):
    """The RabbitMQ management API is unreachable, refused a request or answered nonsense."""

    http_status = 502
    title = "Broker management API error"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Info(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ExchangeInfo(_Info):
    name: str
    type: str
    durable: bool
    auto_delete: bool = False
    internal: bool = False
    arguments: dict[str, Any] = Field(default_factory=dict)


class QueueInfo(_Info):
    name: str
    durable: bool
    auto_delete: bool = False
    arguments: dict[str, Any] = Field(default_factory=dict)
    messages: int | None = None  # from statistics: may lag a few seconds behind the broker


class BindingInfo(_Info):
    source: str
    destination: str
    destination_type: str
    routing_key: str
    properties_key: str = ""
    arguments: dict[str, Any] = Field(default_factory=dict)


class UserInfo(_Info):
    name: str
    password_hash: str = Field(default="", repr=False)
    hashing_algorithm: str = ""
    tags: tuple[str, ...] = ()

    @field_validator("tags", mode="before")
    @classmethod
    def _split_tags(cls, value: Any) -> Any:
        if isinstance(value, str):  # RabbitMQ < 3.9 answers "a,b"; 3.9+ a list
            return tuple(t for t in value.split(",") if t)
        return value


class PermissionInfo(_Info):
    user: str
    vhost: str
    configure: str
    write: str
    read: str


class ConnectionInfo(_Info):
    name: str
    user: str = ""
    vhost: str = ""


class ManagementClient:
    """``async with ManagementClient(url, user, password) as api: await api.list_queues(vh)``."""

    _REASON_HEADER: ClassVar[str] = "X-Reason"

    def __init__(
        self, base_url: str, user: str, password: str, *, timeout: float = 10.0
    ) -> None:
        parts = urllib.parse.urlsplit(base_url)
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        self._base = f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}/api"
        self.display_url = f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"
        self._user = user
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {token}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"ManagementClient({self.display_url!r}, user={self._user!r})"

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- the one place that does HTTP ------------------------------------------------------

    async def _call(
        self, method: str, *segments: str, body: Any = None,
        params: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None,
        missing_ok: bool = False,
    ) -> Any:
        if self._session is None:
            raise BrokerApiError("management client used outside 'async with'")
        path = "/".join(urllib.parse.quote(s, safe="") for s in segments)
        query = "?" + urllib.parse.urlencode(params) if params else ""
        url = URL(f"{self._base}/{path}{query}", encoded=True)
        what = f"{method} /api/{path}"
        try:
            async with self._session.request(
                method, url, json=body, headers=dict(headers or {})
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise BrokerApiError(
                f"RabbitMQ management API at {self.display_url} is unreachable "
                f"({exc.__class__.__name__}) during {what}"
            ) from None
        if status == 404 and missing_ok:
            return None
        if status >= 400:
            raise self._refused(status, what, raw)
        return self._parse(raw, what)

    def _refused(self, status: int, what: str, raw: bytes) -> BrokerApiError:
        if status == 401:
            detail = f"refused the credentials of admin user {self._user!r}"
        elif status == 403:
            detail = f"admin user {self._user!r} is not allowed to do this"
        else:
            detail = f"answered HTTP {status}"
            reason = _reason(raw)
            if reason:
                detail += f": {reason}"
        return BrokerApiError(
            f"RabbitMQ management API at {self.display_url} {detail} ({what})", status
        )

    def _parse(self, raw: bytes, what: str) -> Any:
        if not raw:
            return None
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BrokerApiError(
                f"RabbitMQ management API at {self.display_url} answered non-JSON ({what})"
            ) from None

    async def _list(self, model: type[_Info], *segments: str, missing_ok: bool = True) -> Any:
        data = await self._call("GET", *segments, missing_ok=missing_ok)
        if data is None:
            return []
        try:
            return [model.model_validate(item) for item in data]
        except (ValidationError, TypeError):
            raise BrokerApiError(
                f"RabbitMQ management API at {self.display_url} answered an unexpected "
                f"shape for GET /api/{'/'.join(segments)}"
            ) from None

    # -- the API -------------------------------------------------------------------------

    async def request(self, method: str, *segments: str, body: Any = None) -> Any:
        """Any other call, by its path segments (the tools' and tests' escape hatch): parsed
        JSON or None, under rules 1-3; a 404 is an error here, like any other refusal."""
        return await self._call(method, *segments, body=body)

    async def overview(self) -> dict[str, Any]:
        data = await self._call("GET", "overview")
        return data if isinstance(data, dict) else {}

    async def vhost_exists(self, vhost: str) -> bool:
        return await self._call("GET", "vhosts", vhost, missing_ok=True) is not None

    async def put_vhost(self, vhost: str) -> None:
        await self._call("PUT", "vhosts", vhost, body={})

    async def delete_vhost(self, vhost: str) -> None:
        await self._call("DELETE", "vhosts", vhost, missing_ok=True)

    async def list_exchanges(self, vhost: str) -> list[ExchangeInfo]:
        result: list[ExchangeInfo] = await self._list(ExchangeInfo, "exchanges", vhost)
        return result

    async def put_exchange(
        self, vhost: str, name: str, type_: str, *, durable: bool = True,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        body = {"type": type_, "durable": durable, "auto_delete": False, "internal": False,
                "arguments": dict(arguments or {})}
        await self._call("PUT", "exchanges", vhost, name, body=body)

    async def delete_exchange(self, vhost: str, name: str) -> None:
        await self._call("DELETE", "exchanges", vhost, name, missing_ok=True)

    async def list_queues(self, vhost: str) -> list[QueueInfo]:
        result: list[QueueInfo] = await self._list(QueueInfo, "queues", vhost)
        return result

    async def get_queue(self, vhost: str, name: str) -> QueueInfo | None:
        data = await self._call("GET", "queues", vhost, name, missing_ok=True)
        return None if data is None else QueueInfo.model_validate(data)

    async def put_queue(
        self, vhost: str, name: str, *, arguments: Mapping[str, Any], durable: bool = True
    ) -> None:
        body = {"durable": durable, "auto_delete": False, "arguments": dict(arguments)}
        await self._call("PUT", "queues", vhost, name, body=body)

    async def delete_queue(self, vhost: str, name: str, *, if_empty: bool = True) -> None:
        """Delete a queue; with ``if_empty`` (the default) the broker refuses if it has messages."""
        params = {"if-empty": "true"} if if_empty else None
        await self._call("DELETE", "queues", vhost, name, params=params, missing_ok=True)

    async def list_bindings(self, vhost: str) -> list[BindingInfo]:
        result: list[BindingInfo] = await self._list(BindingInfo, "bindings", vhost)
        return result

    async def put_binding(
        self, vhost: str, exchange: str, queue: str, routing_key: str
    ) -> None:
        body = {"routing_key": routing_key, "arguments": {}}
        await self._call("POST", "bindings", vhost, "e", exchange, "q", queue, body=body)

    async def delete_binding(
        self, vhost: str, exchange: str, destination: str, properties_key: str, *,
        destination_type: str = "queue",
    ) -> None:
        kind = "e" if destination_type == "exchange" else "q"
        await self._call(
            "DELETE", "bindings", vhost, "e", exchange, kind, destination, properties_key,
            missing_ok=True,
        )

    async def list_users(self) -> list[UserInfo]:
        result: list[UserInfo] = await self._list(UserInfo, "users", missing_ok=False)
        return result

    async def get_user(self, name: str) -> UserInfo | None:
        data = await self._call("GET", "users", name, missing_ok=True)
        return None if data is None else UserInfo.model_validate(data)

    async def put_user(
        self, name: str, *, password_hash: str, tags: tuple[str, ...] = (),
        hashing_algorithm: str = "rabbit_password_hashing_sha256",
    ) -> None:
        body = {"password_hash": password_hash, "hashing_algorithm": hashing_algorithm,
                "tags": ",".join(tags)}
        await self._call("PUT", "users", name, body=body)

    async def delete_user(self, name: str) -> None:
        await self._call("DELETE", "users", name, missing_ok=True)

    async def list_permissions(self, vhost: str) -> list[PermissionInfo]:
        result: list[PermissionInfo] = await self._list(
            PermissionInfo, "vhosts", vhost, "permissions"
        )
        return result

    async def put_permissions(
        self, vhost: str, user: str, *, configure: str, write: str, read: str
    ) -> None:
        body = {"configure": configure, "write": write, "read": read}
        await self._call("PUT", "permissions", vhost, user, body=body)

    async def delete_permissions(self, vhost: str, user: str) -> None:
        await self._call("DELETE", "permissions", vhost, user, missing_ok=True)

    async def list_connections(self) -> list[ConnectionInfo]:
        result: list[ConnectionInfo] = await self._list(
            ConnectionInfo, "connections", missing_ok=False
        )
        return result

    async def close_connection(self, name: str, reason: str) -> None:
        """Close a client connection (404, already closed, is fine).

        Deleting a user makes RabbitMQ force-close its connections itself; a DELETE that races
        with that close can be answered 500. Then the connection is looked for again: gone is
        what we wanted, still there is the error.
        """
        try:
            await self._call(
                "DELETE", "connections", name, headers={self._REASON_HEADER: reason},
                missing_ok=True,
            )
        except BrokerApiError:
            if any(c.name == name for c in await self.list_connections()):
                raise


def _reason(raw: bytes) -> str:
    """The ``reason`` RabbitMQ gives with an error, trimmed; never the request body."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return ""
    reason = data.get("reason") if isinstance(data, dict) else None
    return str(reason)[:300] if reason else ""
