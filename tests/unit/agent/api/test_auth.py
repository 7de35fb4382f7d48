"""Bearer tokens: random, stored only as SHA-256, compared in constant time, scoped."""

from __future__ import annotations

import hashlib

import pytest

from agent.auth import ApiClient, Authenticator, generate_token, hash_token
from agent.config import ApiClientSettings
from agent.errors import Forbidden, Unauthorized
from tests.unit.agent.api.conftest import CLIENTS, SEND


class TestGenerateToken:
    def test_the_digest_is_the_sha256_hex_of_the_token(self) -> None:
        """generate_token returns the token and exactly the digest the config stores."""
        token, digest = generate_token()
        assert digest == hashlib.sha256(token.encode()).hexdigest()

    def test_tokens_carry_256_bits(self) -> None:
        """A token is 32 random bytes in base64url (43 characters)."""
        token, _ = generate_token()
        assert len(token) == 43

    def test_two_tokens_differ(self) -> None:
        """Tokens are drawn fresh each time."""
        assert generate_token()[0] != generate_token()[0]


class TestAuthenticator:
    def test_a_valid_token_names_its_client(self) -> None:
        """The bearer token resolves to the client whose digest matches."""
        assert Authenticator(CLIENTS).authenticate(f"Bearer {SEND}").name == "case-send"

    def test_the_scheme_is_case_insensitive(self) -> None:
        """'bearer' and 'Bearer' are the same scheme (RFC 7235)."""
        assert Authenticator(CLIENTS).authenticate(f"bearer {SEND}").name == "case-send"

    @pytest.mark.parametrize(
        "header",
        [None, "", "Bearer", "Bearer ", f"Basic {SEND}", "Bearer not-a-token", "Bearer \udcff"],
    )
    def test_missing_or_wrong_tokens_are_unauthorized(self, header: str | None) -> None:
        """Anything but a known bearer token is a 401."""
        with pytest.raises(Unauthorized):
            Authenticator(CLIENTS).authenticate(header)

    def test_an_unknown_token_is_not_echoed(self) -> None:
        """The error never repeats the presented token."""
        with pytest.raises(Unauthorized) as caught:
            Authenticator(CLIENTS).authenticate("Bearer syn-guess-123")
        assert "syn-guess-123" not in str(caught.value)

    def test_a_missing_scope_is_forbidden(self) -> None:
        """A send-only token cannot receive."""
        with pytest.raises(Forbidden):
            Authenticator(CLIENTS).authorize(f"Bearer {SEND}", "receive")

    def test_scope_none_accepts_any_valid_token(self) -> None:
        """Endpoints open to every client pass scope None."""
        assert Authenticator(CLIENTS).authorize(f"Bearer {SEND}", None).name == "case-send"


class TestApiClient:
    def test_built_from_settings(self) -> None:
        """The TOML [[api.clients]] entries become ApiClients with a scope set."""
        settings = ApiClientSettings(name="cs", token_sha256=hash_token("t"), scopes=("send",))
        assert ApiClient.from_settings(settings).scopes == frozenset({"send"})

    def test_repr_hides_the_digest(self) -> None:
        """Neither the token nor its digest shows in a repr."""
        client = CLIENTS[0]
        assert client.token_sha256 not in repr(client)
        assert client.token_sha256 not in repr(Authenticator(CLIENTS))
