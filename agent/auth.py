"""Bearer tokens for the agent's local API: one per case-system client, stored hashed.

Rules:
1. A token is 32 random bytes (256 bits) as base64url; only its SHA-256 hex digest is kept
   (config, memory). A fast hash is enough for tokens of that entropy: there is nothing to
   brute-force that a slow hash would protect.
2. Lookup compares the presented token's digest with EVERY client's digest using
   :func:`hmac.compare_digest`, so timing reveals neither which client matched nor how much of a
   digest did.
3. Scopes: ``send`` (submit, preview, message status), ``receive`` (inbox, ack), ``admin``
   (metrics). ``GET /v1/isas`` needs any valid token; the probes
   (``/livez``, ``/readyz``, ``/healthz``) and ``/v1/openapi.json`` none.
4. Tokens never appear in an error message, a log line or a ``repr``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.config import ApiClientSettings
from agent.errors import Forbidden, Unauthorized

__all__ = [
    "ApiClient",
    "Authenticator",
    "Scope",
    "clients_from_settings",
    "generate_token",
    "hash_token",
]

Scope = Literal["send", "receive", "admin"]
_MAX_TOKEN_CHARS: Final = 512


class ApiClient(BaseModel):
    """One case-system client: a name for the audit log, its token digest and its scopes."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=100)
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", repr=False)
    scopes: frozenset[Scope] = Field(min_length=1)

    @classmethod
    def from_settings(cls, settings: ApiClientSettings) -> ApiClient:
        return cls(
            name=settings.name,
            token_sha256=settings.token_sha256,
            scopes=frozenset(settings.scopes),
        )


def clients_from_settings(clients: Iterable[ApiClientSettings]) -> tuple[ApiClient, ...]:
    """The ``[[api.clients]]`` of the agent's config as :class:`ApiClient` values."""
    return tuple(ApiClient.from_settings(c) for c in clients)


def hash_token(token: str) -> str:
    """SHA-256 hex digest of a bearer token (what the config stores)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def generate_token() -> tuple[str, str]:
    """A fresh 256-bit token and its SHA-256 hex digest: ``(token, token_sha256)``."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


class Authenticator:
    """Resolves an ``Authorization`` header to an :class:`ApiClient` and checks scopes."""

    def __init__(self, clients: Iterable[ApiClient]) -> None:
        self._clients: Sequence[ApiClient] = tuple(clients)

    def __repr__(self) -> str:
        return f"Authenticator(clients={[c.name for c in self._clients]!r})"

    def authenticate(self, authorization: str | None) -> ApiClient:
        """The client whose token this is. Raises Unauthorized (never saying why in detail)."""
        token = _bearer_token(authorization)
        digest = hash_token(token).encode("ascii")
        found: ApiClient | None = None
        for client in self._clients:
            if hmac.compare_digest(digest, client.token_sha256.encode("ascii")):
                found = client
        if found is None:
            raise Unauthorized("the bearer token is not valid")
        return found

    def authorize(self, authorization: str | None, scope: Scope | None) -> ApiClient:
        """Authenticate, then require ``scope`` (``None``: any valid token will do)."""
        client = self.authenticate(authorization)
        if scope is not None and scope not in client.scopes:
            raise Forbidden(f"this client lacks the {scope!r} scope")
        return client


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > _MAX_TOKEN_CHARS:
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return token
