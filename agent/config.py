"""The agent's configuration: one TOML file, read once at the edge.

Rules:
1. ``load_settings(path, environ)`` is the only place that reads the file and the environment;
   everything inward receives a validated, frozen :class:`Settings`.
2. Relative paths are resolved against the config file's directory.
3. Every option can be set from the environment: ``[section] key`` by ``ISA_AGENT__SECTION__KEY``
   (e.g. ``ISA_AGENT__BROKER__PREFETCH=64``), with precedence environment > file > default
   (:mod:`agent.settings_env`). ``ISA_AGENT_BROKER_PASSWORD``, ``ISA_AGENT_KEY_PASSPHRASE`` and
   ``ISA_AGENT_WEBHOOK_SECRET`` keep working. A bad value's error names the variable.
4. Tests build settings from a dict with :func:`settings_from_dict`; they never patch os.environ.
5. Every field carries a ``description``: ``docs/configuration.md`` is generated from these models
   (``python -m agent.settings_doc``) and a test fails when it differs, so it cannot drift.
6. Settings that contradict each other are refused at load, naming both (``_coherent``):
   * ``[keys] grace_days`` must cover the time the last envelope sealed to a rotated-out key
     can still arrive: ``grace >= message_ttl + 2 x manifest_poll + housekeeping + 1 hour``.
     After a rotation the new announcement is posted at once and re-posted every housekeeping
     tick until the manifest server accepts it (one ``housekeeping``); a sender sees it at its
     next poll, and one more poll is allowed for a poll that failed or raced the publication
     (``2 x manifest_poll``); an envelope sealed to the old key just before may then travel for
     its whole ``message_ttl`` (the federation's TTL, the same for every agency); the hour
     covers clock skew. A shorter grace destroys the old key while envelopes for it are in
     flight (``key_retired``).
   * ``[keys] rotate_every_days`` must be longer than the rotation lead (``ROTATION_LEAD_DAYS``,
     3 days: a key is renewed that long before its period ends), else every tick rotates.
   * ``[limits] housekeeping_seconds`` must be shorter than the rotation lead, else the tick
     that rotates can come after the announced key has lapsed.

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
    # policies_dir = "../policies"             # only for a format-1 manifest (no ISAs in it)

    [audit]
    witness_seconds = 60                       # post the log's signed head (manifest_url only)

    [broker]
    urls = ["amqp://127.0.0.1:5672/isa-relay"]
    user = "assist"
    password = "..."                           # or ISA_AGENT__BROKER__PASSWORD
    prefetch = 32

    [api]
    listen = "127.0.0.1:8441"
    max_body_bytes = 262144
    require_actor = true                       # X-Actor-Id/-Role (and -Justification) needed

    [log]
    format = "text"                            # or "json": one JSON object per line

    [[api.clients]]
    name = "case-system"
    token_sha256 = "..."                       # sha256 hex of the bearer token
    scopes = ["send", "receive"]
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agent.settings_env import overrides
from federation.errors import ConfigError
from federation.topology import is_agency_id

__all__ = [
    "GRACE_MARGIN_SECONDS",
    "ROTATION_LEAD_DAYS",
    "ApiClientSettings",
    "ApiSettings",
    "AuditSettings",
    "BrokerSettings",
    "EnvelopeSettings",
    "KeySettings",
    "LimitSettings",
    "LogSettings",
    "Settings",
    "TrustSettings",
    "WebhookSettings",
    "grace_floor_days",
    "load_settings",
    "settings_from_dict",
]

Scope = Literal["send", "receive", "admin"]
ROTATION_LEAD_DAYS = 3  # rule 6: a key is renewed this long before its period ends
GRACE_MARGIN_SECONDS = 3600.0  # rule 6: clock skew between agencies, and some slack
_DAY = 86400.0
_MAX_GRACE = 366


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KeySettings(_Strict):
    """``[keys]``: where this agency's private keys are."""

    signing_key: Path = Field(description="the agency's Ed25519 signing key file (mode 0600)")
    encryption_dir: Path = Field(
        description="directory of the X25519 encryption keys, one file per kid (mode 0600)"
    )
    passphrase: str | None = Field(
        default=None, repr=False, description="passphrase of encrypted key files, if any"
    )
    rotate_every_days: int = Field(
        default=30, ge=1, le=366, description="a new encryption key is announced this often"
    )
    grace_days: int = Field(
        default=14, ge=0, le=_MAX_GRACE,
        description="an old encryption key still decrypts this long, then is destroyed; at "
        "least message_ttl_hours + 2 x manifest_poll_seconds + housekeeping_seconds + 1 hour",
    )  # fmt: skip


class TrustSettings(_Strict):
    """``[trust]``: the pinned root, the manifest and the ISAs."""

    root_certificate: Path = Field(description="the federation root CA certificate (PEM)")
    root_fingerprint: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 (hex) of the root certificate's DER: the pin",
    )
    manifest_file: Path | None = Field(
        default=None, description="the signed manifest as a file (this or manifest_url)"
    )
    manifest_url: str | None = Field(
        default=None,
        description="where isa-broker serve publishes the manifest; also the audit witness",
    )
    manifest_poll_seconds: float = Field(
        default=60.0, gt=0, description="how often the manifest is fetched again"
    )
    manifest_alert_hours: float = Field(
        default=48.0, gt=0, le=8760,
        description="warn (/healthz degraded, a log line, a gauge) this many hours before the "
        "held manifest expires (agent.trust rule 5)",
    )  # fmt: skip
    policies_dir: Path | None = Field(
        default=None,
        description="directory of the ISA YAML files, read only while the manifest is format 1 "
        "(a format-2 manifest carries the ISAs: agent.trust rule 8); unset: none",
    )
    renew_certificate_days: float = Field(
        default=60.0,
        ge=0,
        le=3650,
        description="ask the manifest server to renew this agency's signing certificate when it "
        "ends within this many days (0: never ask)",
    )
    next_root_certificate: Path | None = Field(
        default=None,
        description="during a root rotation: the new federation root certificate (PEM), "
        "trusted beside the current one",
    )
    next_root_fingerprint: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="during a root rotation: SHA-256 (hex) of the new root's DER, pinned too",
    )

    @model_validator(mode="after")
    def _next_root_paired(self) -> TrustSettings:
        if (self.next_root_certificate is None) != (self.next_root_fingerprint is None):
            raise ValueError("set next_root_certificate and next_root_fingerprint together")
        return self


class BrokerSettings(_Strict):
    """``[broker]``: the RabbitMQ this agent connects to."""

    urls: tuple[str, ...] = Field(
        min_length=1, description="amqp:// or amqps:// URLs with the vhost, tried in turn"
    )
    user: str = Field(description="this agency's RabbitMQ user (the manifest's broker_user)")
    password: str = Field(default="", repr=False, description="its RabbitMQ password")
    prefetch: int = Field(
        default=32, ge=1, le=10_000, description="unacknowledged deliveries held at once"
    )

    @field_validator("urls")
    @classmethod
    def _amqp_only(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for url in urls:
            if not url.startswith(("amqp://", "amqps://")):
                raise ValueError("broker urls must start with amqp:// or amqps://")
        return urls


class ApiClientSettings(_Strict):
    """One ``[[api.clients]]`` entry: a case system allowed to call the local API."""

    name: str = Field(min_length=1, max_length=100, description="the client's name (audit)")
    token_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="SHA-256 (hex) of its bearer token, never the token"
    )
    scopes: tuple[Scope, ...] = Field(min_length=1, description="what the token may do")


class ApiSettings(_Strict):
    """``[api]``: the local HTTP API the case system calls."""

    listen: str = Field(default="127.0.0.1:8441", description="HOST:PORT to listen on")
    max_body_bytes: int = Field(
        default=256 * 1024, ge=1024, le=64 * 1024 * 1024,
        description="larger request bodies are refused with 413",
    )  # fmt: skip
    require_actor: bool = Field(
        default=True,
        description="calls about messages must name the person acting (X-Actor-Id, "
        "X-Actor-Role) and disclosures why (X-Actor-Justification), else 400; false records "
        "such calls as the system `system:<client>` (a flow with `log: dpa2018_s62` still "
        "needs both). DPA 2018 s62 logs who consulted or disclosed: keep true in production",
    )
    clients: tuple[ApiClientSettings, ...] = Field(
        default=(), description="the case systems and their tokens (none: the API refuses all)"
    )

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
    """``[webhook]`` (optional): push deliveries to the case system."""

    url: str = Field(description="where deliveries are POSTed")
    secret: str = Field(default="", repr=False, description="HMAC key signing each push")
    max_backoff_seconds: float = Field(
        default=300.0, gt=0, description="longest wait between retries of a failed push"
    )
    status_events: bool = Field(
        default=True,
        description="also push status events (delivered, rejected, expired, reviews) to url",
    )


class LimitSettings(_Strict):
    """``[limits]``: sizes and times."""

    max_ciphertext_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="largest envelope ciphertext sent or accepted"
    )
    message_ttl_hours: float = Field(
        default=120.0, gt=0, description="a message not collected by then expires (NDR)"
    )
    max_clock_skew_seconds: float = Field(
        default=300.0, ge=0, description="how far ahead an envelope's created_at may be"
    )
    housekeeping_seconds: float = Field(
        default=30.0, gt=0, description="how often expiry, retention and key lifecycle are checked"
    )
    review_hold_hours: float = Field(
        default=336.0,
        gt=0,
        description="a referral held for review this long without a decision expires, unsent",
    )


class EnvelopeSettings(_Strict):
    """``[envelope]``: the wire format this agency sends."""

    send_version: Literal[1, 2] = Field(
        default=2,
        description="2 seals the meta; 1 only while a recipient's agent cannot read v2 "
        "(docs/protocol.md section 5, Transition)",
    )


class AuditSettings(_Strict):
    """``[audit]``: the hash-chained audit log."""

    keep_days: float | None = Field(
        default=None, gt=0,
        description="entries older are removed (a signed checkpoint stays); unset keeps them "
        "for ever (DPA 2018 s62: set the period your policy document states)",
    )  # fmt: skip
    checkpoint_every: int = Field(
        default=256, ge=1, le=1_000_000, description="entries between signed checkpoints"
    )
    witness_seconds: float = Field(
        default=60.0, gt=0,
        description="how often the log's signed head is posted to the witness (manifest_url's "
        "server); entries since the last posted head could be cut undetected",
    )  # fmt: skip


class LogSettings(_Strict):
    """``[log]``: how ``isa-agent run`` writes its log (to stderr)."""

    format: Literal["text", "json"] = Field(
        default="text",
        description="text lines, or JSON lines (time, level, logger, message and request_id "
        "for API requests) for a log collector; `isa-agent run --log-format` overrides it",
    )


class Settings(_Strict):
    """The whole of ``agent.toml``."""

    agency: str = Field(description="this agency's id, as in the manifest")
    data_dir: Path = Field(description="the SQLite store: outbox, inbox, receipts, audit")
    keys: KeySettings
    trust: TrustSettings
    broker: BrokerSettings
    api: ApiSettings = ApiSettings()
    webhook: WebhookSettings | None = None
    limits: LimitSettings = LimitSettings()
    envelope: EnvelopeSettings = EnvelopeSettings()
    audit: AuditSettings = AuditSettings()
    log: LogSettings = LogSettings()

    @field_validator("agency")
    @classmethod
    def _agency_id(cls, value: str) -> str:
        if not is_agency_id(value):
            raise ValueError("agency must be a lowercase id like 'police-scotland'")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        """Rule 6: refuse settings that contradict each other, naming both."""
        floor = grace_floor_days(self.limits, self.trust)
        if self.keys.grace_days < floor:
            least = math.ceil(floor) if floor <= _MAX_GRACE else f"over {_MAX_GRACE} (the most)"
            raise ValueError(
                f"keys.grace_days ({self.keys.grace_days}) must be at least {least}: "
                f"limits.message_ttl_hours ({self.limits.message_ttl_hours:g}) + 2 x "
                f"trust.manifest_poll_seconds ({self.trust.manifest_poll_seconds:g}) + "
                f"limits.housekeeping_seconds ({self.limits.housekeeping_seconds:g}) + 1 hour, "
                "or envelopes still in flight to a rotated-out key are refused (key_retired)"
            )
        if self.keys.rotate_every_days <= ROTATION_LEAD_DAYS:
            raise ValueError(
                f"keys.rotate_every_days ({self.keys.rotate_every_days}) must be longer than "
                f"the {ROTATION_LEAD_DAYS}-day rotation lead, or every housekeeping tick rotates"
            )
        if self.limits.housekeeping_seconds >= ROTATION_LEAD_DAYS * _DAY:
            raise ValueError(
                f"limits.housekeeping_seconds ({self.limits.housekeeping_seconds:g}) must be "
                f"shorter than the {ROTATION_LEAD_DAYS}-day rotation lead of "
                "keys.rotate_every_days, or a key can lapse before the tick that renews it"
            )
        return self


def grace_floor_days(limits: LimitSettings, trust: TrustSettings) -> float:
    """Rule 6: the shortest key grace, in days, that outlives every envelope sealed to a
    rotated-out key (floats, not timedeltas: absurd values must not overflow)."""
    seconds = (
        limits.message_ttl_hours * 3600
        + 2 * trust.manifest_poll_seconds
        + limits.housekeeping_seconds
        + GRACE_MARGIN_SECONDS
    )
    return seconds / _DAY


_PATH_FIELDS = (
    ("data_dir",),
    ("keys", "signing_key"),
    ("keys", "encryption_dir"),
    ("trust", "root_certificate"),
    ("trust", "manifest_file"),
    ("trust", "policies_dir"),
)


def settings_from_dict(
    raw: Mapping[str, Any],
    *,
    base_dir: Path | None = None,
    source: str = "<settings>",
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Validate a settings mapping, with ``environ``'s overrides applied (rule 3); relative
    paths resolve against ``base_dir``."""
    found = overrides(Settings, environ or {})
    data = _overridden(raw, found)
    data = _resolve_paths(data, base_dir) if base_dir is not None else data
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        names = {path: variable for path, (variable, _) in found.items()}
        problems = "; ".join(_describe(err["loc"], err["msg"], names) for err in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None


def _overridden(
    raw: Mapping[str, Any], found: Mapping[tuple[str, ...], tuple[str, Any]]
) -> dict[str, Any]:
    """``raw`` with each environment override set at its path (environment > file)."""
    data: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for path, (variable, value) in found.items():
        holder = data
        for part in path[:-1]:
            holder = holder.setdefault(part, {})
            if not isinstance(holder, dict):
                raise ConfigError(f"{variable}: {part} in the config file is not a table")
        holder[path[-1]] = value
    return data


def _describe(loc: tuple[int | str, ...], msg: str, names: Mapping[tuple[str, ...], str]) -> str:
    """``where: what``; where an override caused it, the variable too (never its value)."""
    where = ".".join(str(p) for p in loc)
    variable = next((v for path, v in names.items() if loc[: len(path)] == path), None)
    msg = msg.removeprefix("Value error, ")
    if not where:  # a model validator (rule 6): the message names its settings
        return msg
    return f"{variable} ({where}): {msg}" if variable else f"{where}: {msg}"


def load_settings(path: Path, environ: Mapping[str, str]) -> Settings:
    """Read the TOML file at ``path``, apply ``environ``'s overrides (rule 3), validate."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.__class__.__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return settings_from_dict(
        raw, base_dir=path.resolve().parent, source=str(path), environ=environ
    )


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
