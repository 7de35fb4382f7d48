"""``isa-agent init``: everything a new agency makes on its own premises before its first start.

The agency's half of onboarding (README, "Deploy an agent"). The operator's half is
``isa-broker agency add --certificate-request`` and ``isa-broker agency announce``.

Rules:
1. Nothing is overwritten: if any file ``init`` would write already exists (the signing key, the
   encryption keyring, the certificate request, ``agent.toml``), it refuses before writing
   anything, naming the files, unless ``force`` is set; ``force`` replaces exactly those files
   and leaves ``data_dir`` and the store's own keys alone.
2. The Ed25519 signing key is generated here, or imported from a PKCS#8 PEM/DER file
   (``federation.keyfile.signing_key_from_pem``); either way it is written in the project's key
   file format (docs/protocol.md section 8), sealed with the passphrase when one is given. The
   key directories are 0700 and every file 0600 (``agent.private_files``, ``agent.keystore``).
3. The certificate request is a PKCS#10 request signed by that key with subject ``CN=<agency>``
   (``federation.pki.certificate_request``): the operator's ``agency add --certificate-request``.
4. The first X25519 encryption key enters a fresh keyring, current from ``now`` (whole seconds),
   and its announcement, signed by the signing key, is written where ``isa-agent keys rotate``
   writes later ones (``<data_dir>/announcements/<kid>.json``): the operator's
   ``agency announce``.
5. The root certificate the operator hands over must match the fingerprint given out of band,
   or nothing is written (fail closed); it is copied beside ``agent.toml`` and pinned there.
6. Each API client gets a fresh token. Only its SHA-256 goes into ``agent.toml``; the token
   itself is returned once (the command prints it) and stored nowhere.
7. ``agent.toml`` holds no secret: the broker password (issued by the operator after this step)
   and the key passphrase come from ``ISA_AGENT_BROKER_PASSWORD`` / ``ISA_AGENT_KEY_PASSPHRASE``.
   The written file is validated by the agent's own ``settings_from_dict`` before it is kept.
8. ``now`` is an argument; randomness comes from the OS.
"""

from __future__ import annotations

import shutil
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from agent.auth import generate_token, hash_token
from agent.config import settings_from_dict
from agent.keyrotation import announcement_path
from agent.keystore import save_keyring, write_key_file
from agent.private_files import private_dir, write_private_atomically
from federation import pki
from federation.canonical import canonical_json
from federation.errors import ConfigError, KeyFileError, ManifestRejected
from federation.keyfile import signing_key_from_pem
from federation.keys import EncryptionKey, KeyAnnouncement, Keyring, SigningKey, announce
from federation.topology import is_agency_id

__all__ = ["InitPlan", "InitResult", "IssuedToken", "init_agency", "parse_client"]

SCOPES = ("send", "receive", "admin")


@dataclass(frozen=True)
class InitPlan:
    """What ``isa-agent init`` was asked to make (every path absolute or relative to the cwd)."""

    agency: str
    home: Path  # agent.toml, root.pem, keys/, the certificate request
    root_certificate: Path  # as the operator handed it over
    root_fingerprint: str  # as the operator told it, out of band
    broker_urls: tuple[str, ...]
    broker_user: str
    policies_dir: Path | None  # only for a federation still on format-1 manifests
    clients: tuple[tuple[str, tuple[str, ...]], ...]  # (name, scopes): see parse_client
    manifest_url: str | None = None
    manifest_file: Path | None = None
    data_dir: Path | None = None  # default: <home>/data
    listen: str = "127.0.0.1:8441"
    import_key: Path | None = None
    passphrase: str | None = field(default=None, repr=False)
    force: bool = False

    @property
    def pinned(self) -> str:
        """The fingerprint as the agent pins it: lowercase hex (openssl's ``AB:CD:..`` too)."""
        return self.root_fingerprint.replace(":", "").strip().lower()

    @property
    def signing_key(self) -> Path:
        return self.home / "keys" / "signing.key"

    @property
    def encryption_dir(self) -> Path:
        return self.home / "keys" / "encryption"

    @property
    def request(self) -> Path:
        return self.home / f"{self.agency}.csr.pem"

    @property
    def config(self) -> Path:
        return self.home / "agent.toml"

    @property
    def root_copy(self) -> Path:
        return self.home / "root.pem"

    @property
    def data(self) -> Path:
        return self.data_dir if self.data_dir is not None else self.home / "data"


@dataclass(frozen=True)
class IssuedToken:
    """A client's bearer token, shown once (never stored)."""

    client: str
    scopes: tuple[str, ...]
    token: str = field(repr=False)


@dataclass(frozen=True)
class InitResult:
    config: Path
    request: Path
    announcement: Path
    kid: str
    root_fingerprint: str
    tokens: tuple[IssuedToken, ...]


def parse_client(text: str) -> tuple[str, tuple[str, ...]]:
    """``NAME:SCOPE[,SCOPE...]`` (scopes: send, receive, admin) -> (name, scopes)."""
    name, sep, scopes = text.partition(":")
    chosen = tuple(s.strip() for s in scopes.split(",") if s.strip())
    if not sep or not name.strip() or not chosen or any(s not in SCOPES for s in chosen):
        raise ConfigError(f"--client {text!r}: write NAME:SCOPES, scopes among {', '.join(SCOPES)}")
    return name.strip(), chosen


def _check_inputs(plan: InitPlan) -> bytes:
    """Rule 5 and the arguments; returns the root certificate's bytes."""
    if not is_agency_id(plan.agency):
        raise ConfigError(f"{plan.agency!r}: an agency id is lowercase, like 'police-scotland'")
    if (plan.manifest_url is None) == (plan.manifest_file is None):
        raise ConfigError("give exactly one of --manifest-url and --manifest-file")
    if plan.policies_dir is not None and not plan.policies_dir.is_dir():
        raise ConfigError(f"{plan.policies_dir}: the federation's ISA directory does not exist")
    try:
        data = plan.root_certificate.read_bytes()
        root = pki.certificate_from_bytes(data)
    except OSError as exc:
        raise ConfigError(f"{plan.root_certificate}: cannot read ({exc.strerror})") from None
    except ManifestRejected:
        raise ConfigError(f"{plan.root_certificate}: not a certificate") from None
    try:
        pki.verify_root(root, plan.pinned)
    except ManifestRejected:
        raise ConfigError(
            f"{plan.root_certificate}: its fingerprint is {pki.fingerprint(root)}, not the "
            "--root-fingerprint given: ask the operator again before trusting it"
        ) from None
    return data


def _refuse_overwrite(plan: InitPlan) -> None:
    """Rule 1."""
    taken = [p for p in (plan.signing_key, plan.encryption_dir, plan.request, plan.config,
                         plan.root_copy) if p.exists()]  # fmt: skip
    if taken and not plan.force:
        names = ", ".join(str(p) for p in taken)
        raise ConfigError(f"already initialised: {names} exist; pass --force to replace them")
    for path in taken:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def _signing_key(plan: InitPlan) -> SigningKey:
    """Rule 2: generated, or imported from the operator-independent PEM the agency made."""
    if plan.import_key is None:
        return SigningKey.generate()
    try:
        data = plan.import_key.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{plan.import_key}: cannot read ({exc.strerror})") from None
    try:
        return signing_key_from_pem(data)
    except KeyFileError as exc:
        raise KeyFileError(f"{plan.import_key}: {exc.message}") from None


def _first_encryption_key(plan: InitPlan, signing: SigningKey, now: datetime) -> KeyAnnouncement:
    """Rule 4."""
    key = EncryptionKey.generate()
    write_key_file(plan.encryption_dir / f"{key.kid}.key", key, plan.passphrase)
    keyring = Keyring()
    entry = keyring.add(key, now.replace(microsecond=0))
    save_keyring(plan.encryption_dir, keyring)
    not_before, not_after = keyring.policy.announcement_window(entry.not_before)
    note = announce(signing, agency=plan.agency, public_key=key.public,
                    not_before=not_before, not_after=not_after)  # fmt: skip
    write_private_atomically(
        announcement_path(plan.data, note.kid), canonical_json(note.model_dump()) + b"\n"
    )
    return note


def init_agency(plan: InitPlan, now: datetime) -> InitResult:
    """Make the agency's keys, request, announcement, tokens and ``agent.toml`` (rules 1-8)."""
    root = _check_inputs(plan)
    signing = _signing_key(plan)  # before anything is written: a bad import changes nothing
    _refuse_overwrite(plan)
    private_dir(plan.home)
    private_dir(plan.data)
    write_key_file(plan.signing_key, signing, plan.passphrase)
    write_private_atomically(plan.request, pki.certificate_request(signing, plan.agency))
    write_private_atomically(plan.root_copy, root)
    note = _first_encryption_key(plan, signing, now)
    issued = tuple(IssuedToken(name, scopes, generate_token()[0]) for name, scopes in plan.clients)
    _write_config(plan, issued)
    return InitResult(
        config=plan.config, request=plan.request,
        announcement=announcement_path(plan.data, note.kid), kid=note.kid,
        root_fingerprint=plan.pinned, tokens=issued,
    )  # fmt: skip


def _write_config(plan: InitPlan, issued: tuple[IssuedToken, ...]) -> None:
    """Rule 7: render, check with the agent's own validation, then write."""
    text = render_agent_toml(plan, [(t, hash_token(t.token)) for t in issued])
    settings_from_dict(tomllib.loads(text), base_dir=plan.home.resolve(), source="agent.toml")
    write_private_atomically(plan.config, text.encode("utf-8"))


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _path(plan: InitPlan, path: Path) -> str:
    """Inside ``home``: relative to it (the directory can move); elsewhere: absolute."""
    absolute, home = path.resolve(), plan.home.resolve()
    return _quote(str(absolute.relative_to(home) if absolute.is_relative_to(home) else absolute))


def _policies_line(plan: InitPlan) -> str:
    """``policies_dir`` only when given: a format-2 manifest carries the ISAs itself."""
    if plan.policies_dir is None:
        return '# policies_dir = "policies"   # only while the manifest carries no ISAs (format 1)'
    return f"policies_dir = {_path(plan, plan.policies_dir)}   # the ISAs, for a format-1 manifest"


def render_agent_toml(plan: InitPlan, tokens: list[tuple[IssuedToken, str]]) -> str:
    """The commented ``agent.toml`` for ``plan`` (``tokens``: each client with its hash)."""
    source = (
        f"manifest_url = {_quote(plan.manifest_url)}   # isa-broker serve: polled; also the "
        "audit witness"
        if plan.manifest_url is not None
        else f"manifest_file = {_path(plan, plan.manifest_file or plan.home)}  # re-read each poll"
    )
    urls = ", ".join(_quote(u) for u in plan.broker_urls)
    clients = "".join(
        f'\n[[api.clients]]\nname = {_quote(t.client)}\ntoken_sha256 = "{digest}"'
        f"   # SHA-256 of the token shown once by isa-agent init\n"
        f"scopes = [{', '.join(_quote(s) for s in t.scopes)}]\n"
        for t, digest in tokens
    )
    return f"""# ISA Relay agent configuration for {plan.agency}, written by isa-agent init.
# Relative paths are resolved against this file's directory. Holds no secret: the broker
# password comes from ISA_AGENT_BROKER_PASSWORD (and a key passphrase, if the keys were
# sealed with one, from ISA_AGENT_KEY_PASSPHRASE). Reference: README, "Using the agent".
agency = {_quote(plan.agency)}
data_dir = {_path(plan, plan.data)}   # SQLite store: outbox, inbox, receipts, audit (0700)

[keys]
signing_key = {_path(plan, plan.signing_key)}   # Ed25519, 0600; certified in the manifest
encryption_dir = {_path(plan, plan.encryption_dir)}   # X25519 keys, one file per kid
# rotate_every_days = 30                 # a new encryption key, announced, every N days
# grace_days = 14                        # an old key keeps decrypting this long, then is destroyed

[trust]
root_certificate = {_path(plan, plan.root_copy)}   # the federation root, from the operator
root_fingerprint = "{plan.pinned}"   # SHA-256 (DER), checked out of band
{source}
# manifest_poll_seconds = 60
{_policies_line(plan)}

[broker]
urls = [{urls}]   # several URLs for failover; amqps:// for TLS
user = {_quote(plan.broker_user)}   # the user the operator created (isa-broker agency add)
# password: set ISA_AGENT_BROKER_PASSWORD in the agent's environment
# prefetch = 32

[api]
listen = {_quote(plan.listen)}
# max_body_bytes = 262144
# require_actor = true                   # calls name the person (X-Actor-Id, X-Actor-Role)
{clients}
# [envelope]
# send_version = 1                       # only while a recipient's agent cannot read v2

# [audit]
# keep_days = 2190                       # audit retention; unset keeps entries for ever
# checkpoint_every = 256
# witness_seconds = 60                   # how often the log's signed head is posted

# [limits]
# max_ciphertext_bytes = 1048576
# message_ttl_hours = 120
# max_clock_skew_seconds = 300
# housekeeping_seconds = 30

# [webhook]                              # optional push of deliveries to the case system
# url = "https://case-system.example.invalid/isa-relay"
# secret = "..."                         # or ISA_AGENT_WEBHOOK_SECRET
"""
