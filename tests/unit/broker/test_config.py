"""broker.toml: strict loading, clear errors, a faithful writer and RabbitMQ's password hash."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.config import (
    BrokerConfig,
    broker_config_from_dict,
    default_user_prefix,
    load_broker_config,
    rabbit_password_hash,
    render_broker_toml,
    verify_rabbit_password,
    with_admin_password,
)
from federation.errors import ConfigError

# RabbitMQ's documented example: password "test12", salt 0x908DC60A.
KNOWN_SALT = bytes.fromhex("908DC60A")
KNOWN_HASH = "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"
HASH_A = rabbit_password_hash("synthetic-a", b"\x00\x01\x02\x03")


def raw_config(**rabbitmq: Any) -> dict[str, Any]:
    return {
        "rabbitmq": {"vhost": "isa-relay", **rabbitmq},
        "agencies": [{"id": "assist", "name": "ASSIST (synthetic)", "password_hash": HASH_A}],
    }


class TestRabbitPasswordHash:
    def test_matches_rabbitmq_documented_example(self) -> None:
        """The hash of 'test12' with salt 908DC60A is the one in RabbitMQ's documentation."""
        assert rabbit_password_hash("test12", KNOWN_SALT) == KNOWN_HASH

    def test_random_salt_gives_different_hashes_that_both_verify(self) -> None:
        """Two hashes of one password differ by salt but both verify."""
        first, second = rabbit_password_hash("pw"), rabbit_password_hash("pw")
        assert first != second
        assert verify_rabbit_password("pw", first)
        assert verify_rabbit_password("pw", second)

    def test_wrong_password_does_not_verify(self) -> None:
        """A different password does not match the documented hash."""
        assert not verify_rabbit_password("test13", KNOWN_HASH)

    def test_salt_must_be_four_bytes(self) -> None:
        """RabbitMQ's scheme has a 32-bit salt; anything else is refused."""
        with pytest.raises(ValueError, match="4 bytes"):
            rabbit_password_hash("pw", b"\x00" * 5)


class TestBrokerConfigFromDict:
    def test_defaults_follow_the_topology_contract(self) -> None:
        """vhost isa-relay and delivery limit 100 when not given; broker_user defaults to the id."""
        config = broker_config_from_dict({"agencies": [{"id": "assist", "password_hash": HASH_A}]})
        assert config.rabbitmq.vhost == "isa-relay"
        assert config.rabbitmq.delivery_limit == 100
        assert config.agencies[0].broker_user == "assist"

    def test_unknown_key_is_named_in_the_error(self) -> None:
        """A typo in a key is refused with its path."""
        with pytest.raises(ConfigError, match=r"rabbitmq\.vhsot"):
            broker_config_from_dict({"rabbitmq": {"vhsot": "x"}}, source="broker.toml")

    def test_plaintext_password_instead_of_hash_is_refused(self) -> None:
        """password_hash must be RabbitMQ's salted SHA-256, so no plaintext sits in the file."""
        raw = {"agencies": [{"id": "assist", "password_hash": "hunter2"}]}
        with pytest.raises(ConfigError, match=r"agencies\[0\]: .*password_hash") as info:
            broker_config_from_dict(raw)
        assert "hunter2" not in str(info.value)

    def test_bad_agency_id_is_refused(self) -> None:
        """Agency ids are lowercase slugs; 'Bad Id' is named as the problem."""
        raw = {"agencies": [{"id": "Bad Id", "password_hash": HASH_A}]}
        with pytest.raises(ConfigError, match=r"agencies\[0\]: .*lowercase agency id"):
            broker_config_from_dict(raw)

    def test_duplicate_broker_users_are_refused(self) -> None:
        """Two agencies cannot share a RabbitMQ user (user_id would no longer identify one)."""
        raw = {"agencies": [
            {"id": "one", "broker_user": "shared", "password_hash": HASH_A},
            {"id": "two", "broker_user": "shared", "password_hash": HASH_A},
        ]}
        with pytest.raises(ConfigError, match="duplicate broker_user: shared"):
            broker_config_from_dict(raw)

    def test_admin_user_cannot_be_an_agency(self) -> None:
        """An agency using the admin account would have every permission."""
        raw = {"rabbitmq": {"admin_user": "assist"},
               "agencies": [{"id": "assist", "password_hash": HASH_A}]}
        with pytest.raises(ConfigError, match="must not be the admin_user"):
            broker_config_from_dict(raw)

    def test_delivery_limit_must_be_positive(self) -> None:
        """A delivery limit of 0 would dead-letter every message at once."""
        with pytest.raises(ConfigError, match=r"rabbitmq\.delivery_limit"):
            broker_config_from_dict(raw_config(delivery_limit=0))

    def test_secrets_stay_out_of_the_repr(self) -> None:
        """Neither the admin password nor a password hash shows in a repr."""
        config = broker_config_from_dict(raw_config(admin_password="s3cret-admin"))
        assert "s3cret-admin" not in repr(config)
        assert HASH_A not in repr(config)


class TestUserPrefix:
    def test_an_agency_without_broker_user_is_named_by_prefix_and_id(self) -> None:
        """With ``user_prefix`` set, the default broker user is the prefix + the agency id."""
        config = broker_config_from_dict(raw_config(user_prefix="fed-a."))
        assert config.agencies[0].broker_user == "fed-a.assist"

    def test_a_broker_user_without_the_prefix_is_refused(self) -> None:
        """A federation may name only users carrying its prefix (it must not touch others')."""
        raw = raw_config(user_prefix="fed-a.")
        raw["agencies"][0]["broker_user"] = "assist"
        with pytest.raises(ConfigError, match=r"does not start with user_prefix 'fed-a\.'"):
            broker_config_from_dict(raw)

    def test_a_broker_user_longer_than_the_manifest_allows_is_refused(self) -> None:
        """The manifest holds broker users of at most 64 characters."""
        with pytest.raises(ConfigError, match="longer than 64"):
            broker_config_from_dict(raw_config(user_prefix="p" * 30 + ".")
                                    | {"agencies": [{"id": "a" + "b" * 40,
                                                     "password_hash": HASH_A}]})  # fmt: skip

    def test_the_prefix_survives_a_render_and_load(self) -> None:
        """``agency add`` finds the prefix ``dev-federation`` wrote to broker.toml."""
        config = broker_config_from_dict(raw_config(user_prefix="fed-a."))
        again = broker_config_from_dict(tomllib.loads(render_broker_toml(config)))
        assert again.rabbitmq.user_prefix == "fed-a."

    def test_the_default_prefix_is_the_vhost_and_a_dot(self) -> None:
        """A vhost holds one federation, so ``<vhost>.`` is unique on the broker."""
        assert default_user_prefix("isa-relay") == "isa-relay."

    def test_a_vhost_that_makes_no_user_name_asks_for_a_prefix(self) -> None:
        """The default vhost ``/`` cannot start a RabbitMQ user name: a clear error."""
        with pytest.raises(ConfigError, match="--user-prefix"):
            default_user_prefix("/")


class TestAdminPasswordFromEnvironment:
    def test_environment_overrides_the_file(self) -> None:
        """ISA_BROKER_ADMIN_PASSWORD wins over [rabbitmq].admin_password."""
        config = broker_config_from_dict(raw_config(admin_password="from-file"))
        updated = with_admin_password(config, {"ISA_BROKER_ADMIN_PASSWORD": "from-env"})
        assert updated.rabbitmq.admin_password == "from-env"

    def test_unset_or_empty_variable_keeps_the_file_value(self) -> None:
        """An empty variable does not wipe the configured password."""
        config = broker_config_from_dict(raw_config(admin_password="from-file"))
        for environ in ({}, {"ISA_BROKER_ADMIN_PASSWORD": ""}):
            assert with_admin_password(config, environ).rabbitmq.admin_password == "from-file"


class TestLoadBrokerConfig:
    def test_missing_file_is_a_config_error(self, tmp_path: Path) -> None:
        """A missing file says so, with its path."""
        with pytest.raises(ConfigError, match="config file not found"):
            load_broker_config(tmp_path / "broker.toml")

    def test_malformed_toml_is_a_config_error_with_the_file(self, tmp_path: Path) -> None:
        """Broken TOML is reported with the file name and the parser's position."""
        path = tmp_path / "broker.toml"
        path.write_text("[rabbitmq\nvhost = 1\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=r"broker\.toml: invalid TOML"):
            load_broker_config(path)

    def test_wrong_type_names_file_and_key(self, tmp_path: Path) -> None:
        """A string where a number belongs names the file and the key."""
        path = tmp_path / "broker.toml"
        path.write_text('[rabbitmq]\ndelivery_limit = "five"\n', encoding="utf-8")
        with pytest.raises(ConfigError, match=r"broker\.toml: rabbitmq\.delivery_limit"):
            load_broker_config(path)


_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
_configs = st.builds(
    lambda vhost, name, password, limit, revoked: broker_config_from_dict({
        "rabbitmq": {"vhost": vhost, "admin_password": password, "delivery_limit": limit},
        "agencies": [{"id": "assist", "name": name, "password_hash": HASH_A,
                      "revoked": revoked}],
    }),
    st.from_regex(r"[a-z0-9/._-]{1,20}", fullmatch=True),
    _text,
    _text,
    st.integers(1, 1000),
    st.booleans(),
)


class TestRenderBrokerToml:
    def test_renders_what_the_example_describes(self) -> None:
        """The rendered file is valid TOML with one [[agencies]] table per agency."""
        config = broker_config_from_dict(raw_config())
        parsed = tomllib.loads(render_broker_toml(config))
        assert parsed["agencies"][0]["password_hash"] == HASH_A
        assert parsed["rabbitmq"]["vhost"] == "isa-relay"

    @settings(max_examples=60, deadline=None)
    @given(_configs)
    def test_load_of_render_is_the_same_config(self, config: BrokerConfig) -> None:
        """Any config, quotes and control characters included, survives a round trip."""
        again = broker_config_from_dict(tomllib.loads(render_broker_toml(config)))
        assert again == config
