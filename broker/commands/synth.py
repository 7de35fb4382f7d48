"""`isa-broker synth`: write synthetic referrals as JSON files (one per record).

Deterministic for a seed; every record is ``synthetic: true`` and is checked with
``parse_payload`` before it is written. A directory that cannot be written is a clear error
(``ConfigError``), never a traceback.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from federation.errors import ConfigError
from federation.referrals import MESSAGE_TYPES, parse_payload
from federation.synth import generate_batch

__all__ = ["register", "write_synthetic"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `synth` to the `isa-broker` parser."""
    synth = sub.add_parser("synth", help="write synthetic referrals (test data) as JSON files")
    synth.add_argument("--count", type=_count, default=10, help="how many records (default 10)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--out", type=Path, required=True, help="directory to write into")
    synth.add_argument(
        "--type", choices=sorted(MESSAGE_TYPES), help="only this message type (default: all)"
    )
    synth.set_defaults(func=_run)


def write_synthetic(count: int, seed: int, out: Path, message_type: str | None) -> list[Path]:
    """Generate, check and write ``count`` records; return the files written."""
    batch = generate_batch(count, seed, message_type)
    for kind, payload in batch:
        parse_payload(kind, payload)
    written = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for i, (kind, payload) in enumerate(batch):
            path = out / f"{i:05d}-{kind}.json"
            path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", "utf-8")
            written.append(path)
    except OSError as exc:
        raise ConfigError(f"cannot write synthetic data to {out}: {exc.strerror or exc}") from None
    return written


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number") from None
    if not 0 <= value <= 1_000_000:
        raise argparse.ArgumentTypeError("must be between 0 and 1000000")
    return value


def _run(args: argparse.Namespace) -> int:
    written = write_synthetic(args.count, args.seed, args.out, args.type)
    print(f"wrote {len(written)} synthetic referrals to {args.out}")
    return 0
