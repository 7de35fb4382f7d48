"""`isa-broker schemas export DIR`: JSON Schema files for case-system integrators.

Writes one ``<type>.schema.json`` per referral message type and an ``index.json`` listing them
with the paths a sender must supply. A directory that cannot be written is a clear error
(``ConfigError``), never a traceback.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from federation.errors import ConfigError
from federation.referrals import MESSAGE_TYPES, REQUIRED_ON_SUBMIT

__all__ = ["export_schemas", "register", "type_schema"]

_NOTE = (
    "Every field except `synthetic` is optional because recipients receive minimised payloads; "
    "x-required-on-submit lists what a sender must supply. Age bands, postcode districts and "
    "years are accepted in place of dates of birth, postcodes/addresses and dates only in a "
    "minimised payload."
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `schemas export` to the `isa-broker` parser."""
    schemas = sub.add_parser("schemas", help="referral JSON Schemas for integrators")
    actions = schemas.add_subparsers(dest="schemas_command", metavar="ACTION", required=True)
    export = actions.add_parser("export", help="write one JSON Schema per message type")
    export.add_argument("dir", type=Path, help="directory to write the schema files into")
    export.set_defaults(func=_run_export)


def type_schema(message_type: str) -> dict[str, Any]:
    """The JSON Schema of one message type, with its submit-time requirements."""
    schema = MESSAGE_TYPES[message_type].model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"urn:isa-relay:schema:{message_type}:v1"
    schema["x-message-type"] = message_type
    schema["x-required-on-submit"] = list(REQUIRED_ON_SUBMIT[message_type])
    schema["$comment"] = _NOTE
    return schema


def export_schemas(directory: Path) -> list[Path]:
    """Write every schema and ``index.json`` into ``directory``; return the files written."""
    entries = []
    files: dict[Path, dict[str, Any]] = {}
    for message_type in sorted(MESSAGE_TYPES):
        name = f"{message_type}.schema.json"
        files[directory / name] = type_schema(message_type)
        doc = (MESSAGE_TYPES[message_type].__doc__ or "").strip().splitlines()
        entries.append(
            {
                "type": message_type,
                "file": name,
                "title": doc[0] if doc else message_type,
                "required_on_submit": list(REQUIRED_ON_SUBMIT[message_type]),
            }
        )
    files[directory / "index.json"] = {"version": 1, "note": _NOTE, "types": entries}
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for path, content in files.items():
            path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", "utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write schemas to {directory}: {exc.strerror or exc}") from None
    return list(files)


def _run_export(args: argparse.Namespace) -> int:
    written = export_schemas(args.dir)
    print(f"wrote {len(written) - 1} schemas and index.json to {args.dir}")
    return 0
