"""The agent's TOML configuration is validated once, at the edge."""

from pathlib import Path
from typing import Any

import pytest

from agent.config import load_settings, settings_from_dict
from federation.errors import ConfigError

FINGERPRINT = "ab" * 32


def minimal(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "agency": "assist",
        "data_dir": "data",
        "keys": {"signing_key": "keys/signing.key", "encryption_dir": "keys/enc"},
        "trust": {
            "root_certificate": "root.pem",
            "root_fingerprint": FINGERPRINT,
            "manifest_file": "manifest.json",
            "policies_dir": "policies",
        },
        "broker": {"urls": ["amqp://127.0.0.1:5672/isa-relay"], "user": "assist"},
    }
    raw.update(overrides)
    return raw


TOML = f"""
agency = "assist"
data_dir = "data"
[keys]
signing_key = "keys/signing.key"
encryption_dir = "keys/enc"
[trust]
root_certificate = "root.pem"
root_fingerprint = "{FINGERPRINT}"
manifest_file = "manifest.json"
policies_dir = "policies"
[broker]
urls = ["amqp://127.0.0.1:5672/isa-relay"]
user = "assist"
password = "from-file"
[[api.clients]]
name = "case-system"
token_sha256 = "{FINGERPRINT}"
scopes = ["send", "receive"]
"""


class TestSettings:
    def test_minimal_settings_get_documented_defaults(self) -> None:
        """A minimal config gets the API on 127.0.0.1:8441 and a 30-day rotation."""
        settings = settings_from_dict(minimal())
        assert (settings.api.host, settings.api.port) == ("127.0.0.1", 8441)
        assert settings.keys.rotate_every_days == 30
        assert settings.keys.grace_days == 14

    def test_envelope_v2_is_sent_by_default(self) -> None:
        """Without an [envelope] section the agent sends envelope v2 (the meta sealed)."""
        assert settings_from_dict(minimal()).envelope.send_version == 2

    def test_envelope_v1_can_be_kept_for_the_transition(self) -> None:
        """[envelope] send_version = 1 keeps the agent sending v1."""
        settings = settings_from_dict(minimal(envelope={"send_version": 1}))
        assert settings.envelope.send_version == 1

    @pytest.mark.parametrize("version", [0, 3, "2"])
    def test_unknown_envelope_version_is_a_config_error_naming_it(self, version: Any) -> None:
        """An envelope version other than 1 or 2 is refused at start-up with its key named."""
        with pytest.raises(ConfigError, match="send_version"):
            settings_from_dict(minimal(envelope={"send_version": version}))

    def test_relative_paths_resolve_against_the_config_directory(self, tmp_path: Path) -> None:
        """Paths in the file are relative to the file, not to the working directory."""
        config = tmp_path / "agent.toml"
        config.write_text(TOML)
        settings = load_settings(config, environ={})
        assert settings.data_dir == tmp_path / "data"
        assert settings.keys.signing_key == tmp_path / "keys" / "signing.key"

    def test_environment_secret_overrides_the_file(self, tmp_path: Path) -> None:
        """ISA_AGENT_BROKER_PASSWORD replaces the broker password from the file."""
        config = tmp_path / "agent.toml"
        config.write_text(TOML)
        settings = load_settings(config, environ={"ISA_AGENT_BROKER_PASSWORD": "from-env"})
        assert settings.broker.password == "from-env"

    def test_secrets_never_appear_in_repr(self, tmp_path: Path) -> None:
        """The broker password is not shown when settings are printed."""
        config = tmp_path / "agent.toml"
        config.write_text(TOML)
        assert "from-file" not in repr(load_settings(config, environ={}))

    def test_unknown_key_is_a_config_error_naming_it(self) -> None:
        """A misspelt key is reported, not ignored."""
        with pytest.raises(ConfigError, match="brokr"):
            settings_from_dict(minimal(brokr={}))

    def test_invalid_agency_id_is_rejected(self) -> None:
        """Agency ids are lowercase slugs."""
        with pytest.raises(ConfigError, match="agency"):
            settings_from_dict(minimal(agency="Police Scotland"))

    def test_non_amqp_broker_url_is_rejected(self) -> None:
        """Broker URLs must be amqp:// or amqps://."""
        with pytest.raises(ConfigError, match="amqp"):
            settings_from_dict(minimal(broker={"urls": ["http://x"], "user": "assist"}))

    def test_malformed_toml_is_a_config_error_with_the_file(self, tmp_path: Path) -> None:
        """A syntax error names the file instead of raising a traceback."""
        config = tmp_path / "agent.toml"
        config.write_text("agency = ")
        with pytest.raises(ConfigError, match="invalid TOML"):
            load_settings(config, environ={})

    def test_missing_file_is_a_config_error(self, tmp_path: Path) -> None:
        """A missing config file is a clear error."""
        with pytest.raises(ConfigError, match="not found"):
            load_settings(tmp_path / "nope.toml", environ={})
