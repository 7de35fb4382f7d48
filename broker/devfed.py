"""Build a complete local federation for development, tests and the demo (SYNTHETIC only).

``create_dev_federation`` makes, under one directory: the root CA and manifest signer, for each
agency a signing key + certificate, an X25519 encryption key + signed announcement, a broker
password (hash in ``broker.toml``), an API token for its case system (hash in its
``agent.toml``), its ``agent.toml``, and the first signed manifest. Randomness comes from the OS;
``now`` is passed in.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509

from broker.config import AgencyEntry as BrokerAgency
from broker.config import (
    BrokerConfig,
    RabbitSettings,
    default_user_prefix,
    rabbit_password_hash,
    render_broker_toml,
)
from broker.fedstate import (
    AgencyState,
    FederationLayout,
    FederationState,
    announcement_json,
    check_manifest_validity,
    load_policies,
    publish_manifest,
    save_state,
    write_private,
)
from federation import pki
from federation.canonical import canonical_json
from federation.errors import ConfigError
from federation.keyfile import dump_private_key
from federation.keys import EncryptionKey, Keyring, RotationPolicy, SigningKey, announce
from federation.topology import DEFAULT_VHOST

__all__ = ["DevAgency", "DevFederation", "agent_toml", "create_dev_federation"]

CERT_VALIDITY = timedelta(days=365)
ROOT_VALIDITY = timedelta(days=3650)
FIRST_API_PORT = 8441


@dataclass(frozen=True)
class DevAgency:
    id: str
    name: str
    config: Path
    api_url: str
    api_token: str  # the case system's bearer token (dev federation only)
    broker_password: str
    broker_user: str


@dataclass(frozen=True)
class DevFederation:
    layout: FederationLayout
    agencies: tuple[DevAgency, ...]
    serial: int
    isas: tuple[str, ...]

    def agency(self, agency_id: str) -> DevAgency:
        return next(a for a in self.agencies if a.id == agency_id)


def _party_names(policies: Path) -> dict[str, str]:
    names: dict[str, str] = {}
    for isa in load_policies(policies):
        for party in isa.doc.parties:
            names.setdefault(party.id, party.name)
    return names


def _prepare(out: Path, policies: Path, force: bool) -> FederationLayout:
    if out.exists() and any(out.iterdir()):
        if not force:
            raise ConfigError(f"{out} already holds files; pass --force to replace it")
        shutil.rmtree(out)
    layout = FederationLayout(out)
    for sub in ("ca", "certs", "announcements", "agencies"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    shutil.copytree(policies, layout.policies, ignore=shutil.ignore_patterns("*.md"))
    return layout


def _make_ca(layout: FederationLayout, now: datetime) -> tuple[SigningKey, x509.Certificate]:
    root_key, signer_key = SigningKey.generate(), SigningKey.generate()
    root = pki.make_root(
        root_key,
        name="ISA Relay DEV root (SYNTHETIC)",
        not_before=now,
        not_after=now + ROOT_VALIDITY,
    )
    signer = pki.issue_certificate(
        root_key=root_key,
        root_cert=root,
        subject="manifest-signer",
        public_key=signer_key.verify_key,
        role=pki.CertificateRole.MANIFEST_SIGNER,
        not_before=now,
        not_after=now + CERT_VALIDITY,
        serial=2,
    )
    write_private(layout.root_key, dump_private_key(root_key))
    write_private(layout.signer_key, dump_private_key(signer_key))
    layout.root_cert.write_bytes(pki.certificate_to_pem(root))
    layout.signer_cert.write_bytes(pki.certificate_to_pem(signer))
    return root_key, root


def agent_toml(
    *,
    agency: str,
    user: str,
    port: int,
    amqp: str,
    password: str,
    token_hash: str,
    fingerprint: str,
    header: str = "SYNTHETIC dev federation",
) -> str:
    """A dev agency's ``agent.toml`` (paths relative to ``agencies/<id>/``)."""
    return f"""# {header}: agent configuration for {agency}
agency = "{agency}"
data_dir = "data"

[keys]
signing_key = "keys/signing.key"
encryption_dir = "keys/encryption"

[trust]
root_certificate = "../../ca/root.pem"
root_fingerprint = "{fingerprint}"
manifest_file = "../../manifest.json"

[broker]
urls = ["{amqp}"]
user = "{user}"
password = "{password}"

[api]
listen = "127.0.0.1:{port}"
# SYNTHETIC dev federation: a call naming no person (no X-Actor-Id) is recorded as the system
# "system:case-system"; production keeps the default, true (flows with log: dpa2018_s62
# still need the person and a justification)
require_actor = false

[[api.clients]]
name = "case-system"
token_sha256 = "{token_hash}"
scopes = ["send", "receive", "admin"]
"""


def _make_agency(
    layout: FederationLayout,
    ca: tuple[SigningKey, x509.Certificate],
    agency: str,
    name: str,
    index: int,
    amqp_vhost_url: str,
    now: datetime,
    user: str,
) -> DevAgency:
    root_key, root = ca
    home = layout.agency_dir(agency)
    signing, encryption = SigningKey.generate(), EncryptionKey.generate()
    cert = pki.issue_certificate(
        root_key=root_key,
        root_cert=root,
        subject=agency,
        public_key=signing.verify_key,
        role=pki.CertificateRole.AGENCY,
        not_before=now,
        not_after=now + CERT_VALIDITY,
        serial=100 + index,
    )
    layout.agency_cert(agency).write_bytes(pki.certificate_to_pem(cert))
    write_private(home / "keys" / "signing.key", dump_private_key(signing))
    keyring = Keyring(RotationPolicy())
    entry = keyring.add(encryption, now)
    enc_dir = home / "keys" / "encryption"
    write_private(enc_dir / f"{entry.kid}.key", dump_private_key(encryption))
    write_private(  # the agent's key directory: 0600 files (agent/private_files.py)
        enc_dir / "keyring.json",
        canonical_json([e.model_dump(mode="json") for e in keyring.entries()]),
    )
    note = announce(
        signing,
        agency=agency,
        public_key=encryption.public,
        not_before=entry.not_before,
        not_after=entry.retire_at,
    )
    layout.announcements(agency).mkdir(parents=True, exist_ok=True)
    (layout.announcements(agency) / f"{note.kid}.json").write_bytes(announcement_json(note))
    password, token = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
    port = FIRST_API_PORT + index
    config = home / "agent.toml"
    token_hash = hashlib.sha256(token.encode()).hexdigest()
    config.write_text(
        agent_toml(
            agency=agency, user=user, port=port, amqp=amqp_vhost_url, password=password,
            token_hash=token_hash, fingerprint=pki.fingerprint(root),
        )
    )  # fmt: skip
    config.chmod(0o600)
    write_private(home / "api-token", token.encode() + b"\n")
    (home / "data").mkdir(mode=0o700, exist_ok=True)
    return DevAgency(agency, name, config, f"http://127.0.0.1:{port}", token, password, user)


def create_dev_federation(
    out: Path,
    *,
    policies: Path,
    now: datetime,
    agencies: list[str] | None = None,
    amqp_url: str = "amqp://127.0.0.1:5672/",
    management_url: str = "http://127.0.0.1:15672",
    vhost: str = DEFAULT_VHOST,
    admin_user: str = "guest",
    admin_password: str = "guest",  # noqa: S107 - the dev broker's loopback-only guest account
    manifest_validity: timedelta = timedelta(days=7),
    force: bool = False,
    user_prefix: str | None = None,
) -> DevFederation:
    """Create a whole dev federation under ``out`` and publish manifest serial 1.

    Broker users are ``user_prefix + agency id``; the prefix defaults to ``<vhost>.``
    (:func:`broker.config.default_user_prefix`: RabbitMQ users are broker-wide, so federations
    sharing a broker must not share user names) and is kept in ``broker.toml`` for
    ``agency add``.
    """
    hours = check_manifest_validity(manifest_validity.total_seconds() / 3600, "--manifest-days")
    if user_prefix is None:
        user_prefix = default_user_prefix(vhost)
    names = _party_names(policies)
    chosen = agencies or sorted(names)
    layout = _prepare(out, policies, force)
    ca = _make_ca(layout, now)
    vhost_url = amqp_url.rstrip("/") + "/" + vhost.replace("/", "%2F")
    made = [
        _make_agency(layout, ca, a, names.get(a, a), i, vhost_url, now, user_prefix + a)
        for i, a in enumerate(chosen)
    ]
    state = FederationState(
        name="ISA Relay DEV federation (SYNTHETIC)",
        manifest_validity_hours=hours,
        manifest_format=2,  # the manifest carries the ISAs (broker.fedstate rule 6)
        agencies=tuple(AgencyState(id=a.id, name=a.name, broker_user=a.broker_user) for a in made),
    )
    save_state(layout, state)
    broker = BrokerConfig(
        rabbitmq=RabbitSettings(
            management_url=management_url,
            amqp_url=amqp_url,
            vhost=vhost,
            admin_user=admin_user,
            admin_password=admin_password,
            user_prefix=user_prefix,
        ),
        agencies=tuple(
            BrokerAgency(
                id=a.id,
                name=a.name,
                broker_user=a.broker_user,
                password_hash=rabbit_password_hash(a.broker_password),
            )
            for a in made
        ),
    )
    layout.broker_toml.write_text(render_broker_toml(broker))
    serial, isas = publish_manifest(layout, now)
    return DevFederation(layout, tuple(made), serial, tuple(isas))
