"""The agent's TOML configuration is validated once, at the edge."""

import os
import subprocess
import sys
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


def toml_file(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "agent.toml"
    config.write_text(TOML + extra)
    return config


class TestEnvironmentOverrides:
    def test_a_nested_option_is_set_by_its_variable(self, tmp_path: Path) -> None:
        """ISA_AGENT__BROKER__PREFETCH sets [broker] prefetch, which the file leaves out."""
        environ = {"ISA_AGENT__BROKER__PREFETCH": "64"}
        assert load_settings(toml_file(tmp_path), environ=environ).broker.prefetch == 64

    def test_the_environment_wins_over_the_file(self, tmp_path: Path) -> None:
        """Precedence: environment > file."""
        config = toml_file(tmp_path, "[limits]\nmessage_ttl_hours = 48\n")
        environ = {"ISA_AGENT__LIMITS__MESSAGE_TTL_HOURS": "6.5"}
        assert load_settings(config, environ=environ).limits.message_ttl_hours == 6.5

    def test_the_file_wins_over_the_default(self, tmp_path: Path) -> None:
        """Precedence: file > default, when the environment does not set the option."""
        config = toml_file(tmp_path, "[limits]\nmessage_ttl_hours = 48\n")
        environ = {"ISA_AGENT__BROKER__PREFETCH": "64"}
        assert load_settings(config, environ=environ).limits.message_ttl_hours == 48

    def test_a_bad_value_names_the_variable_and_not_the_value(self, tmp_path: Path) -> None:
        """A value that does not convert is a ConfigError with the variable, never the value."""
        environ = {"ISA_AGENT__BROKER__PREFETCH": "lots-of-them"}
        with pytest.raises(ConfigError) as refused:
            load_settings(toml_file(tmp_path), environ=environ)
        assert "ISA_AGENT__BROKER__PREFETCH (broker.prefetch): " in str(refused.value)
        assert "lots-of-them" not in str(refused.value)

    def test_an_unknown_variable_is_refused_not_ignored(self, tmp_path: Path) -> None:
        """A misspelt variable is an error: nothing set is silently dropped."""
        with pytest.raises(ConfigError, match="ISA_AGENT__BROKER__PREFECH: no such option"):
            load_settings(toml_file(tmp_path), environ={"ISA_AGENT__BROKER__PREFECH": "64"})

    def test_a_list_takes_comma_separated_items(self, tmp_path: Path) -> None:
        """[broker] urls from the environment: several URLs, comma-separated."""
        environ = {"ISA_AGENT__BROKER__URLS": "amqp://a:5672/v, amqp://b:5672/v"}
        urls = load_settings(toml_file(tmp_path), environ=environ).broker.urls
        assert urls == ("amqp://a:5672/v", "amqp://b:5672/v")

    def test_a_list_of_tables_takes_a_json_array(self, tmp_path: Path) -> None:
        """[[api.clients]] from the environment replaces the file's clients."""
        environ = {
            "ISA_AGENT__API__CLIENTS": f'[{{"name": "cms", "token_sha256": '
            f'"{"cd" * 32}", "scopes": ["send"]}}]'
        }
        clients = load_settings(toml_file(tmp_path), environ=environ).api.clients
        assert [(c.name, c.scopes) for c in clients] == [("cms", ("send",))]

    def test_a_numeric_choice_is_converted(self, tmp_path: Path) -> None:
        """ISA_AGENT__ENVELOPE__SEND_VERSION=1 is the number 1, which the model accepts."""
        environ = {"ISA_AGENT__ENVELOPE__SEND_VERSION": "1"}
        assert load_settings(toml_file(tmp_path), environ=environ).envelope.send_version == 1

    def test_a_relative_path_resolves_against_the_config_directory(self, tmp_path: Path) -> None:
        """A path from the environment is read like the file's: relative to the file."""
        environ = {"ISA_AGENT__DATA_DIR": "elsewhere"}
        settings = load_settings(toml_file(tmp_path), environ=environ)
        assert settings.data_dir == tmp_path / "elsewhere"

    def test_a_section_the_file_lacks_is_made(self, tmp_path: Path) -> None:
        """ISA_AGENT__WEBHOOK__URL alone turns the webhook on."""
        environ = {"ISA_AGENT__WEBHOOK__URL": "https://cms.example.invalid/hook"}
        webhook = load_settings(toml_file(tmp_path), environ=environ).webhook
        assert webhook is not None
        assert webhook.url == "https://cms.example.invalid/hook"

    def test_a_legacy_name_and_its_new_name_together_are_refused(self, tmp_path: Path) -> None:
        """ISA_AGENT_BROKER_PASSWORD and ISA_AGENT__BROKER__PASSWORD both set: which one? Error."""
        environ = {"ISA_AGENT_BROKER_PASSWORD": "a", "ISA_AGENT__BROKER__PASSWORD": "b"}
        with pytest.raises(ConfigError, match="set the same option"):
            load_settings(toml_file(tmp_path), environ=environ)

    def test_an_empty_variable_counts_as_unset(self, tmp_path: Path) -> None:
        """ISA_AGENT__BROKER__PREFETCH= leaves the default."""
        environ = {"ISA_AGENT__BROKER__PREFETCH": ""}
        assert load_settings(toml_file(tmp_path), environ=environ).broker.prefetch == 32

    def test_the_cli_reports_a_bad_value_without_a_traceback(self, tmp_path: Path) -> None:
        """isa-agent check with a bad variable: exit 1, the variable named, no traceback."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ISA_AGENT")}
        env["ISA_AGENT__API__MAX_BODY_BYTES"] = "huge"
        done = subprocess.run(
            [sys.executable, "-m", "agent.cli", "check", "--config", str(toml_file(tmp_path))],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip  # no timeout: a timed subprocess wait fails with EINVAL under faketime
        assert done.returncode == 1
        assert "ISA_AGENT__API__MAX_BODY_BYTES (api.max_body_bytes)" in done.stderr + done.stdout
        assert "Traceback" not in done.stderr


class TestContradictorySettings:
    """Settings that contradict each other are refused at load, naming both (config rule 6)."""

    @staticmethod
    def _with(**sections: dict[str, Any]) -> dict[str, Any]:
        raw = minimal()
        for name, values in sections.items():
            raw[name] = {**raw.get(name, {}), **values}
        return raw

    def test_grace_days_zero_is_refused_naming_the_ttl_it_contradicts(self) -> None:
        """grace_days = 0 (issue 15: key_retired during a rotation) is refused at load."""
        with pytest.raises(ConfigError, match=r"keys.grace_days \(0\) must be at least 6") as err:
            settings_from_dict(self._with(keys={"grace_days": 0}))
        assert "limits.message_ttl_hours (120)" in err.value.message

    def test_grace_shorter_than_ttl_plus_two_polls_is_refused(self) -> None:
        """A 2-day grace under a 47-hour TTL and 1-hour polls (floor 2.04 days) is refused."""
        raw = self._with(
            keys={"grace_days": 2}, limits={"message_ttl_hours": 47},
            trust={"manifest_poll_seconds": 3600},
        )  # fmt: skip
        with pytest.raises(ConfigError, match=r"trust.manifest_poll_seconds \(3600\)"):
            settings_from_dict(raw)

    def test_grace_at_the_floor_is_accepted(self) -> None:
        """A 3-day grace under a 47-hour TTL and 1-hour polls (floor 2.04 days) loads."""
        raw = self._with(
            keys={"grace_days": 3}, limits={"message_ttl_hours": 47},
            trust={"manifest_poll_seconds": 3600},
        )  # fmt: skip
        assert settings_from_dict(raw).keys.grace_days == 3

    def test_an_absurd_ttl_is_a_clear_error_not_an_overflow(self) -> None:
        """A TTL of 1e300 hours is refused with a message, not an OverflowError traceback."""
        with pytest.raises(ConfigError, match=r"at least over 366"):
            settings_from_dict(self._with(limits={"message_ttl_hours": 1e300}))

    def test_rotation_within_the_rotation_lead_is_refused(self) -> None:
        """rotate_every_days = 3 would make every housekeeping tick rotate: refused."""
        with pytest.raises(ConfigError, match=r"keys.rotate_every_days \(3\) must be longer"):
            settings_from_dict(self._with(keys={"rotate_every_days": 3}))

    def test_housekeeping_slower_than_the_rotation_lead_is_refused(self) -> None:
        """A housekeeping tick every 3 days could come after the key lapsed: refused."""
        with pytest.raises(ConfigError, match=r"limits.housekeeping_seconds \(259200\)"):
            settings_from_dict(self._with(limits={"housekeeping_seconds": 3 * 86400}))

    def test_the_dev_federation_agent_toml_passes(self, tmp_path: Path) -> None:
        """The agent.toml dev-federation and agency add --generate write loads unchanged."""
        from broker.devfed import agent_toml  # the shipped template; tests may import both

        text = agent_toml(
            agency="assist", user="assist", port=8441, amqp="amqp://127.0.0.1:5672/isa-relay",
            password="p", token_hash=FINGERPRINT, fingerprint=FINGERPRINT,
        )  # fmt: skip
        path = tmp_path / "agent.toml"
        path.write_text(text, encoding="utf-8")
        assert load_settings(path, environ={}).keys.grace_days == 14
