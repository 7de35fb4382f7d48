"""isa-broker dev-federation: a complete, verifiable local federation in one directory."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.config import load_settings
from broker.cli import main
from broker.config import load_broker_config
from broker.devfed import create_dev_federation
from federation import pki
from federation.manifest import verify_manifest

POLICIES = Path(__file__).resolve().parents[3] / "policies"
NOW = datetime(2026, 6, 1, tzinfo=UTC)


class TestDevFederation:
    def test_every_party_of_the_shipped_isas_gets_an_agent_and_the_manifest_verifies(
        self, tmp_path: Path
    ) -> None:
        """Serial 1 verifies against the pinned root and lists every ISA and agency."""
        fed = create_dev_federation(tmp_path / "f", policies=POLICIES, now=NOW)
        root = pki.certificate_from_bytes(fed.layout.root_cert.read_bytes())
        manifest = verify_manifest(
            fed.layout.manifest.read_bytes(), root_cert=root,
            pinned_fingerprint=pki.fingerprint(root), now=NOW, current_serial=0,
        )  # fmt: skip
        assert manifest.serial == 1
        assert {a.id for a in manifest.document.agencies} == {a.id for a in fed.agencies}
        assert len(manifest.document.isas) == len(list(POLICIES.glob("*.yaml")))

    def test_each_agent_toml_loads_and_pins_the_root(self, tmp_path: Path) -> None:
        """The generated configs are valid settings pointing at the federation's files."""
        fed = create_dev_federation(tmp_path / "f", policies=POLICIES, now=NOW)
        root = pki.certificate_from_bytes(fed.layout.root_cert.read_bytes())
        for agency in fed.agencies:
            settings = load_settings(agency.config, environ={})
            assert settings.trust.root_fingerprint == pki.fingerprint(root)
            assert settings.broker.user == agency.broker_user

    def test_private_keys_and_configs_are_owner_only(self, tmp_path: Path) -> None:
        """Key files, agent.toml and API tokens are mode 0600."""
        fed = create_dev_federation(tmp_path / "f", policies=POLICIES, now=NOW)
        secrets = [fed.layout.root_key, fed.layout.signer_key]
        for agency in fed.agencies:
            home = fed.layout.agency_dir(agency.id)
            secrets += [home / "agent.toml", home / "api-token", home / "keys" / "signing.key"]
            secrets += list((home / "keys" / "encryption").glob("*.key"))
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in secrets)

    def test_a_subset_federation_publishes_only_the_isas_its_members_can_honour(
        self, tmp_path: Path
    ) -> None:
        """Two agencies: only the ISA whose parties are both of them is in the manifest."""
        fed = create_dev_federation(
            tmp_path / "f", policies=POLICIES, now=NOW, agencies=["police-scotland", "assist"]
        )
        assert fed.isas == ("isa-police-assist-advocacy",)

    def test_broker_users_take_the_prefix(self, tmp_path: Path) -> None:
        """RabbitMQ users are global: a prefix keeps federations on one broker apart."""
        fed = create_dev_federation(tmp_path / "f", policies=POLICIES, now=NOW, user_prefix="t1-")
        assert {a.broker_user for a in fed.agencies} == {f"t1-{a.id}" for a in fed.agencies}

    def test_bare_agency_ids_as_broker_users_regression(self, tmp_path: Path) -> None:
        """By default users are ``<vhost>.<agency>``, not the bare id another federation uses."""
        fed = create_dev_federation(tmp_path / "f", policies=POLICIES, now=NOW, vhost="fed-a")
        assert {a.broker_user for a in fed.agencies} == {f"fed-a.{a.id}" for a in fed.agencies}

    def test_the_cli_takes_a_user_prefix(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``--user-prefix`` names the users and is kept in broker.toml for ``agency add``."""
        out = tmp_path / "f"
        argv = ["dev-federation", "--out", str(out), "--policies", str(POLICIES),
                "--agencies", "assist", "police-scotland", "--user-prefix", "x-"]  # fmt: skip
        assert main(argv) == 0
        config = load_broker_config(out / "broker.toml")
        assert config.rabbitmq.user_prefix == "x-"
        assert {a.broker_user for a in config.agencies} == {"x-assist", "x-police-scotland"}

    def test_a_manifest_lifetime_beyond_90_days_is_refused(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--manifest-days 91 is outside the sane range: exit 1, nothing built."""
        out = tmp_path / "f"
        argv = ["dev-federation", "--out", str(out), "--policies", str(POLICIES),
                "--manifest-days", "91"]  # fmt: skip
        assert main(argv) == 1
        assert "--manifest-days: a manifest lifetime is 1 to 2160 hours" in capsys.readouterr().err
        assert not out.exists()

    def test_an_existing_federation_is_not_overwritten_without_force(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A second run into the same directory is a clear error, exit 1, no traceback."""
        out = tmp_path / "f"
        assert main(["dev-federation", "--out", str(out), "--policies", str(POLICIES)]) == 0
        capsys.readouterr()
        assert main(["dev-federation", "--out", str(out), "--policies", str(POLICIES)]) == 1
        assert "--force" in capsys.readouterr().err
