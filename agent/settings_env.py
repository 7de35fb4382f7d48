"""Every option of a settings model, and its override from the environment.

Rules:
1. :func:`options` walks a pydantic settings model and yields each option once: its path
   (section, key), its type, its default and its description. The reference
   (``docs/configuration.md``) and the environment overrides both come from this walk, so
   neither can leave an option out.
2. Each option ``section.key`` is overridden by the variable ``ISA_AGENT__SECTION__KEY``
   (upper case, levels joined by a double underscore; a top-level key is ``ISA_AGENT__KEY``).
   Precedence: environment > file > default. An empty variable counts as unset.
3. Values are text, converted by the model's own validation (numbers, ``true``/``false``,
   paths, which resolve against the config file's directory like the file's). A list option
   takes a JSON array or comma-separated items; a list of tables (``api.clients``) takes a JSON
   array of objects.
4. Nothing set is silently dropped: a variable beginning ``ISA_AGENT__`` that names no option is
   an error, and so is setting an option under both its name and a legacy one. An error names
   the variable, never its value (it may be a secret).
5. The legacy names (``LEGACY_NAMES``) keep working: each is the same override under another name.
6. This module reads no environment itself: :func:`overrides` is handed the mapping.
"""

from __future__ import annotations

import json
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from federation.errors import ConfigError

__all__ = ["ENV_PREFIX", "LEGACY_NAMES", "Option", "env_name", "options", "overrides", "type_name"]

ENV_PREFIX = "ISA_AGENT__"
LEGACY_NAMES = {  # rule 5: names documented before the scheme, kept working
    "ISA_AGENT_BROKER_PASSWORD": ("broker", "password"),
    "ISA_AGENT_KEY_PASSPHRASE": ("keys", "passphrase"),
    "ISA_AGENT_WEBHOOK_SECRET": ("webhook", "secret"),
}


def env_name(path: tuple[str, ...]) -> str:
    """The variable that overrides the option at ``path`` (rule 2)."""
    return ENV_PREFIX + "__".join(part.upper() for part in path)


@dataclass(frozen=True)
class Option:
    """One option of the settings (rule 1). ``env`` is None for a key inside a list of tables,
    which is set as part of its list."""

    path: tuple[str, ...]
    annotation: Any
    field: FieldInfo
    env: str | None

    @property
    def is_list(self) -> bool:
        return get_origin(_optional_inner(self.annotation)) is tuple

    @property
    def is_table_list(self) -> bool:
        return self.is_list and _model_of(get_args(_optional_inner(self.annotation))[0]) is not None


def options(model: type[BaseModel], path: tuple[str, ...] = ()) -> Iterator[Option]:
    """Every option of ``model``, depth first, in declaration order (rule 1)."""
    for name, field in model.model_fields.items():
        here = (*path, name)
        inner = _optional_inner(field.annotation)
        section = _model_of(inner)
        if section is not None:
            yield from options(section, here)
            continue
        yield Option(here, field.annotation, field, env_name(here))
        table = _model_of(get_args(inner)[0]) if get_origin(inner) is tuple else None
        if table is not None:
            for sub in options(table, (*here[:-1], f"{name}[]")):
                yield Option(sub.path, sub.annotation, sub.field, None)


def _optional_inner(annotation: Any) -> Any:
    """``X`` for ``X | None``; anything else unchanged."""
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def overrides(
    model: type[BaseModel], environ: Mapping[str, str]
) -> dict[tuple[str, ...], tuple[str, Any]]:
    """``{path: (variable, value)}`` for every option the environment sets (rules 2-5)."""
    known = {o.env: o for o in options(model) if o.env is not None}
    legacy = {name: env_name(path) for name, path in LEGACY_NAMES.items()}
    found: dict[tuple[str, ...], tuple[str, Any]] = {}
    for variable, text in sorted(environ.items()):
        name = legacy.get(variable, variable)
        if not text or not name.startswith(ENV_PREFIX):
            continue
        option = known.get(name)
        if option is None:
            raise ConfigError(f"{variable}: no such option (see docs/configuration.md)")
        if option.path in found:
            raise ConfigError(f"{found[option.path][0]} and {variable} set the same option")
        found[option.path] = (variable, _parse(option, variable, text))
    return found


def _parse(option: Option, variable: str, text: str) -> Any:
    """The value to validate: text as is, a literal's own value, or a list (rule 3)."""
    inner = _optional_inner(option.annotation)
    if get_origin(inner) is Literal:  # "1" for Literal[1, 2]: the model would not coerce it
        return next((a for a in get_args(inner) if str(a) == text), text)
    if not option.is_list:
        return text
    if option.is_table_list or text.lstrip().startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            raise ConfigError(f"{variable}: not a JSON array") from None
        if not isinstance(value, list):
            raise ConfigError(f"{variable}: not a JSON array")
        return value
    return [item.strip() for item in text.split(",") if item.strip()]


def type_name(annotation: Any) -> str:
    """A reader's name for an option's type: ``integer``, ``list of strings``..."""
    inner = _optional_inner(annotation)
    optional = " (optional)" if inner is not annotation else ""
    if get_origin(inner) is tuple:
        item = get_args(inner)[0]
        if _model_of(item) is not None:
            return "list of tables" + optional
        return f"list of {_plural(item)}" + optional
    return _single(inner) + optional


def _single(annotation: Any) -> str:
    if get_origin(annotation) is Literal:
        return " | ".join(json.dumps(a) for a in get_args(annotation))
    return _NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _plural(annotation: Any) -> str:
    if get_origin(annotation) is Literal:
        return "(" + _single(annotation) + ")"
    return _single(annotation) + "s"


_NAMES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean",
                          Path: "path"}  # fmt: skip
