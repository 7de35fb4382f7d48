"""The network operator's configuration: ``broker.toml``, read once at the edge.

Rules:
1. :func:`load_broker_config` is the only place that reads the file; everything inward receives a
   validated, frozen :class:`BrokerConfig`. It does not read the environment: the CLI applies
   ``ISA_BROKER_ADMIN_PASSWORD`` with :func:`with_admin_password` (tests build configs from a
   dict with :func:`broker_config_from_dict`).
2. ``broker.toml`` holds no agency plaintext password: only RabbitMQ's
   ``rabbit_password_hashing_sha256`` hash, ``base64(salt4 + sha256(salt4 + password))``.
3. :func:`render_broker_toml` writes a file that loads back to an equal config.
4. Secrets never appear in a repr or an error message.
5. RabbitMQ user names are global to the broker, shared by every vhost. So a federation's agency
   users all start with ``[rabbitmq] user_prefix`` (a config naming any other user is refused),
   and provisioning creates, changes and deletes only the users the config names: two
   federations with distinct prefixes on one broker never touch each other's users.
   :func:`default_user_prefix` is ``<vhost>.``: provisioning owns its vhost, so one vhost holds
   one federation, and its name is already unique on the broker. An empty prefix (users named by
   the bare agency id) is only for a broker that serves one federation.

Example (``isa-broker dev-federation`` writes one)::

    [rabbitmq]
    management_url = "http://127.0.0.1:15672"
    amqp_url = "amqp://127.0.0.1:5672/"        # for docs and checks; provisioning uses the API
    vhost = "isa-relay"
    admin_user = "guest"
    admin_password = "guest"                   # or ISA_BROKER_ADMIN_PASSWORD
    delivery_limit = 100
    user_prefix = "isa-relay."                 # every agency's broker user starts with it

    [[agencies]]
    id = "assist"
    name = "ASSIST (synthetic)"
    broker_user = "isa-relay.assist"           # default: user_prefix + the agency id
    password_hash = "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"
    revoked = false
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from federation.errors import ConfigError
from federation.topology import DEFAULT_DELIVERY_LIMIT, DEFAULT_VHOST, is_agency_id

__all__ = [
    "ADMIN_PASSWORD_ENV",
    "AgencyEntry",
    "BrokerConfig",
    "RabbitSettings",
    "broker_config_from_dict",
    "default_user_prefix",
    "load_broker_config",
    "rabbit_password_hash",
    "render_broker_toml",
    "verify_rabbit_password",
    "with_admin_password",
]

ADMIN_PASSWORD_ENV = "ISA_BROKER_ADMIN_PASSWORD"  # noqa: S105 - a variable name

_HASH_B64_LEN = 48  # base64 of 4 salt bytes + 32 digest bytes
_USER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$"
_PREFIX_PATTERN = r"^$|^[A-Za-z0-9][A-Za-z0-9._@-]{0,31}$"
MAX_BROKER_USER = 64  # the manifest's limit (federation.manifest.AgencyEntry.broker_user)


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class RabbitSettings(_Strict):
    """``[rabbitmq]``: where the broker is and how provisioning administers it."""

    management_url: str = Field(
        default="http://127.0.0.1:15672", pattern=r"^https?://\S+$",
        description="RabbitMQ's management HTTP API, which provisioning uses",
    )  # fmt: skip
    amqp_url: str = Field(
        default="amqp://127.0.0.1:5672/", pattern=r"^amqps?://\S+$",
        description="the AMQP address agents use (for docs and checks)",
    )  # fmt: skip
    vhost: str = Field(
        default=DEFAULT_VHOST, min_length=1, max_length=255, pattern=r"^[^\s]+$",
        description="the federation's vhost: provisioning owns everything in it",
    )  # fmt: skip
    admin_user: str = Field(
        default="guest", pattern=_USER_PATTERN, description="the RabbitMQ administrator"
    )
    admin_password: str = Field(
        default="", repr=False, description="its password (better from the environment)"
    )
    delivery_limit: int = Field(
        default=DEFAULT_DELIVERY_LIMIT, ge=1, le=1000,
        description="deliveries of one message before it is dead-lettered",
    )  # fmt: skip
    user_prefix: str = Field(
        default="", pattern=_PREFIX_PATTERN,
        description="every agency's broker user starts with it (dev-federation: the vhost "
        "and a dot); empty only on a broker of its own",
    )  # fmt: skip


class AgencyEntry(_Strict):
    """One ``[[agencies]]`` entry: an agency's broker identity."""

    id: str = Field(description="the agency id, as in the manifest")
    name: str = Field(default="", max_length=200, description="its display name")
    broker_user: str = Field(
        default="", pattern=r"^$|" + _USER_PATTERN,
        description="its RabbitMQ user (default: user_prefix + id)",
    )  # fmt: skip
    password_hash: str = Field(
        repr=False, description="RabbitMQ's rabbit_password_hashing_sha256 hash of its password"
    )
    revoked: bool = Field(
        default=False, description="true: provisioning deletes its user and closes its connections"
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if not is_agency_id(self.id):
            raise ValueError("id must be a lowercase agency id like 'police-scotland'")
        if not _is_rabbit_hash(self.password_hash):
            raise ValueError("password_hash must be base64(salt4 + sha256(salt4 + password))")
        if not self.broker_user:
            object.__setattr__(self, "broker_user", self.id)
        return self


class BrokerConfig(_Strict):
    """The whole of ``broker.toml``."""

    rabbitmq: RabbitSettings = RabbitSettings()
    agencies: tuple[AgencyEntry, ...] = Field(
        default=(), strict=False, description="one table per agency"
    )  # TOML gives a list

    @model_validator(mode="before")
    @classmethod
    def _default_users(cls, raw: Any) -> Any:
        """An agency without ``broker_user`` gets ``user_prefix`` + its id (rule 5)."""
        if not isinstance(raw, dict) or not isinstance(raw.get("agencies"), list | tuple):
            return raw
        rabbitmq = raw.get("rabbitmq")
        prefix = rabbitmq.get("user_prefix", "") if isinstance(rabbitmq, dict) else ""
        if not isinstance(prefix, str):
            return raw
        agencies = [
            a | {"broker_user": f"{prefix}{a['id']}"}
            if isinstance(a, dict) and not a.get("broker_user") and _an_id(a.get("id")) else a
            for a in raw["agencies"]
        ]
        return raw | {"agencies": agencies}

    @model_validator(mode="after")
    def _unique(self) -> Self:
        ids = [a.id for a in self.agencies]
        users = [a.broker_user for a in self.agencies]
        for label, values in (("agency id", ids), ("broker_user", users)):
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"duplicate {label}: {', '.join(dupes)}")
        if self.rabbitmq.admin_user in users:
            raise ValueError("an agency's broker_user must not be the admin_user")
        prefix = self.rabbitmq.user_prefix
        for user in users:
            if not user.startswith(prefix):
                raise ValueError(f"broker_user {user!r} does not start with user_prefix "
                                 f"{prefix!r} (rule 5: a federation touches only its own users)")
            if len(user) > MAX_BROKER_USER:
                raise ValueError(f"broker_user {user!r} is longer than {MAX_BROKER_USER} "
                                 "characters (the manifest's limit)")
        return self

    @property
    def active_agencies(self) -> tuple[AgencyEntry, ...]:
        return tuple(a for a in self.agencies if not a.revoked)

    @property
    def revoked_agencies(self) -> tuple[AgencyEntry, ...]:
        return tuple(a for a in self.agencies if a.revoked)


def _an_id(value: object) -> bool:
    return isinstance(value, str) and is_agency_id(value)


def default_user_prefix(vhost: str) -> str:
    """``<vhost>.``: the user prefix a federation on ``vhost`` gets unless told otherwise."""
    prefix = f"{vhost}."
    if re.fullmatch(_PREFIX_PATTERN, prefix) is None:
        raise ConfigError(
            f"vhost {vhost!r} does not make a RabbitMQ user prefix (letters, digits and ._@-, "
            "at most 31 characters): pass --user-prefix"
        )
    return prefix


def rabbit_password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password))."""
    salt = os.urandom(4) if salt is None else salt
    if len(salt) != 4:
        raise ValueError("the salt must be 4 bytes")
    digest = hashlib.sha256(salt + password.encode("utf-8")).digest()
    return base64.b64encode(salt + digest).decode("ascii")


def verify_rabbit_password(password: str, password_hash: str) -> bool:
    """True when ``password`` matches a ``rabbit_password_hashing_sha256`` hash."""
    if not _is_rabbit_hash(password_hash):
        return False
    salt = base64.b64decode(password_hash)[:4]
    return hmac.compare_digest(rabbit_password_hash(password, salt), password_hash)


def _is_rabbit_hash(value: str) -> bool:
    if len(value) != _HASH_B64_LEN:
        return False
    try:
        return len(base64.b64decode(value, validate=True)) == 36
    except ValueError:
        return False


def broker_config_from_dict(raw: Mapping[str, Any], *, source: str = "<config>") -> BrokerConfig:
    """Validate a ``broker.toml`` mapping; errors name the source and the key."""
    try:
        return BrokerConfig.model_validate(dict(raw))
    except ValidationError as exc:
        problems = "; ".join(_describe(err) for err in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None


def _describe(err: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for part in err["loc"]:
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1] if parts else ''}[{part}]"]
        else:
            parts.append(str(part))
    where = ".".join(parts) or "(top level)"
    return f"{where}: {err['msg']}"


def load_broker_config(path: Path) -> BrokerConfig:
    """Read and validate ``broker.toml`` (no environment: see :func:`with_admin_password`)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.__class__.__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return broker_config_from_dict(raw, source=str(path))


def with_admin_password(config: BrokerConfig, environ: Mapping[str, str]) -> BrokerConfig:
    """Apply ``ISA_BROKER_ADMIN_PASSWORD`` when set (the CLI calls this at the edge)."""
    password = environ.get(ADMIN_PASSWORD_ENV)
    if not password:
        return config
    rabbitmq = config.rabbitmq.model_copy(update={"admin_password": password})
    return config.model_copy(update={"rabbitmq": rabbitmq})


def render_broker_toml(config: BrokerConfig) -> str:
    """``broker.toml`` text that :func:`load_broker_config` reads back to ``config``."""
    r = config.rabbitmq
    lines = [
        "# ISA Relay broker configuration (isa-broker provision --config THIS_FILE)",
        "[rabbitmq]",
        f"management_url = {_toml_str(r.management_url)}",
        f"amqp_url = {_toml_str(r.amqp_url)}",
        f"vhost = {_toml_str(r.vhost)}",
        f"admin_user = {_toml_str(r.admin_user)}",
    ]
    if r.admin_password:
        lines.append(f"admin_password = {_toml_str(r.admin_password)}")
    lines.append(f"delivery_limit = {r.delivery_limit}")
    lines.append(f"user_prefix = {_toml_str(r.user_prefix)}")
    for agency in config.agencies:
        lines += [
            "",
            "[[agencies]]",
            f"id = {_toml_str(agency.id)}",
            f"name = {_toml_str(agency.name)}",
            f"broker_user = {_toml_str(agency.broker_user)}",
            f"password_hash = {_toml_str(agency.password_hash)}",
            f"revoked = {'true' if agency.revoked else 'false'}",
        ]
    return "\n".join(lines) + "\n"


_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n"}
_TOML_ESCAPES |= {"\f": "\\f", "\r": "\\r"}


def _toml_str(value: str) -> str:
    """A TOML basic string: quote, backslash and control characters escaped."""
    out = []
    for ch in value:
        if ch in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
