"""The agent's configuration: one TOML file, read once at the edge.

Rules:
1. ``load_settings(path, environ)`` is the only place that reads the file and the environment;
   everything inward receives a validated, frozen :class:`Settings`.
2. Relative paths are resolved against the config file's directory.
3. Secrets may come from the environment instead of the file (never both required):
   ``ISA_AGENT_BROKER_PASSWORD``, ``ISA_AGENT_KEY_PASSPHRASE``, ``ISA_AGENT_WEBHOOK_SECRET``.
4. Tests build settings from a dict with :func:`settings_from_dict`; they never patch os.environ.

Example (``isa-broker dev-federation`` writes one per agency)::

    agency = "assist"
    data_dir = "data"

    [keys]
    signing_key = "keys/signing.key"          # Ed25519, mode 0600
    encryption_dir = "keys/encryption"        # X25519 keys, one file per kid, mode 0600

    [trust]
    root_certificate = "../ca/root.pem"
    root_fingerprint = "9f2c..."               # SHA-256 of the root certificate (DER), hex
    manifest_file = "../manifest.json"         # or manifest_url = "http://127.0.0.1:8440/manifest"
    manifest_poll_seconds = 60
    policies_dir = "../policies"

    [audit]
    witness_seconds = 60                       # post the log's signed head (manifest_url only)

    [broker]
    urls = ["amqp://127.0.0.1:5672/isa-relay"]
    user = "assist"
    password = "..."                           # or ISA_AGENT_BROKER_PASSWORD
    prefetch = 32

    [api]
    listen = "127.0.0.1:8441"
    max_body_bytes = 262144

    [[api.clients]]
    name = "case-system"
    token_sha256 = "..."                       # sha256 hex of the bearer token
    scopes = ["send", "receive"]
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from federation.errors import ConfigError
from federation.topology import is_agency_id

__all__ = [
    "ApiClientSettings",
    "ApiSettings",
    "AuditSettings",
    "BrokerSettings",
    "EnvelopeSettings",
    "KeySettings",
    "LimitSettings",
    "Settings",
    "TrustSettings",
    "WebhookSettings",
    "load_settings",
    "settings_from_dict",
]

Scope = Literal["send", "receive", "admin"]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KeySettings(_Strict):
    signing_key: Path
    encryption_dir: Path
    passphrase: str | None = Field(default=None, repr=False)
    rotate_every_days: int = Field(default=30, ge=1, le=366)
    grace_days: int = Field(default=14, ge=0, le=366)


class TrustSettings(_Strict):
    root_certificate: Path
    root_fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")
    manifest_file: Path | None = None
    manifest_url: str | None = None
    manifest_poll_seconds: float = Field(default=60.0, gt=0)
    manifest_alert_hours: float = Field(default=48.0, gt=0, le=8760)  # see agent.trust rule 5
    policies_dir: Path


class BrokerSettings(_Strict):
    urls: tuple[str, ...] = Field(min_length=1)
    user: str
    password: str = Field(default="", repr=False)
    prefetch: int = Field(default=32, ge=1, le=10_000)

    @field_validator("urls")
    @classmethod
    def _amqp_only(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for url in urls:
            if not url.startswith(("amqp://", "amqps://")):
                raise ValueError("broker urls must start with amqp:// or amqps://")
        return urls


class ApiClientSettings(_Strict):
    name: str = Field(min_length=1, max_length=100)
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: tuple[Scope, ...] = Field(min_length=1)


class ApiSettings(_Strict):
    listen: str = "127.0.0.1:8441"
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=64 * 1024 * 1024)
    clients: tuple[ApiClientSettings, ...] = ()

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError("listen must be HOST:PORT")
        return value


class WebhookSettings(_Strict):
    url: str
    secret: str = Field(default="", repr=False)
    max_backoff_seconds: float = Field(default=300.0, gt=0)


class LimitSettings(_Strict):
    max_ciphertext_bytes: int = Field(default=1024 * 1024, ge=1024)
    message_ttl_hours: float = Field(default=120.0, gt=0)
    max_clock_skew_seconds: float = Field(default=300.0, ge=0)
    #: how often expiry, retention and key lifecycle are checked
    housekeeping_seconds: float = Field(default=30.0, gt=0)


class EnvelopeSettings(_Strict):
    #: the envelope version this agency sends: 2 (the meta sealed); 1 only while a recipient
    #: still runs an agent that cannot read v2 (docs/protocol.md section 5, "Transition")
    send_version: Literal[1, 2] = 2


class AuditSettings(_Strict):
    #: audit entries older than this are removed (a signed checkpoint stays as the anchor);
    #: unset keeps them for ever (DPA 2018 s62 logs: set it to the period your APD states)
    keep_days: float | None = Field(default=None, gt=0)
    checkpoint_every: int = Field(default=256, ge=1, le=1_000_000)
    #: how often the log's signed head is posted to the witness (``[trust] manifest_url``'s
    #: server); entries written since the last posted head can be cut without detection
    witness_seconds: float = Field(default=60.0, gt=0)


class Settings(_Strict):
    agency: str
    data_dir: Path
    keys: KeySettings
    trust: TrustSettings
    broker: BrokerSettings
    api: ApiSettings = ApiSettings()
    webhook: WebhookSettings | None = None
    limits: LimitSettings = LimitSettings()
    envelope: EnvelopeSettings = EnvelopeSettings()
    audit: AuditSettings = AuditSettings()

    @field_validator("agency")
    @classmethod
    def _agency_id(cls, value: str) -> str:
        if not is_agency_id(value):
            raise ValueError("agency must be a lowercase id like 'police-scotland'")
        return value


_PATH_FIELDS = (
    ("data_dir",),
    ("keys", "signing_key"),
    ("keys", "encryption_dir"),
    ("trust", "root_certificate"),
    ("trust", "manifest_file"),
    ("trust", "policies_dir"),
)

_ENV_SECRETS = (
    ("ISA_AGENT_BROKER_PASSWORD", ("broker", "password")),
    ("ISA_AGENT_KEY_PASSPHRASE", ("keys", "passphrase")),
    ("ISA_AGENT_WEBHOOK_SECRET", ("webhook", "secret")),
)


def settings_from_dict(
    raw: Mapping[str, Any], *, base_dir: Path | None = None, source: str = "<settings>"
) -> Settings:
    """Validate a settings mapping; relative paths resolve against ``base_dir``."""
    data = _resolve_paths(raw, base_dir) if base_dir is not None else dict(raw)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{source}: {problems}") from None


def load_settings(path: Path, environ: Mapping[str, str]) -> Settings:
    """Read the TOML file at ``path``, apply environment secrets, validate."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.__class__.__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    for variable, (section, key) in _ENV_SECRETS:
        if environ.get(variable) and isinstance(raw.get(section), dict):
            raw[section] = {**raw[section], key: environ[variable]}
    return settings_from_dict(raw, base_dir=path.resolve().parent, source=str(path))


def _resolve_paths(raw: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for field_path in _PATH_FIELDS:
        holder: Any = data
        for part in field_path[:-1]:
            holder = holder.get(part) if isinstance(holder, dict) else None
        leaf = field_path[-1]
        if isinstance(holder, dict) and isinstance(holder.get(leaf), str):
            holder[leaf] = str((base_dir / holder[leaf]).resolve())
    return data
