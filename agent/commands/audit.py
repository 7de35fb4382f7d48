"""``isa-agent audit verify|export|search --config FILE``: the DPO's and reviewer's view of the log.

Rules:
1. ``verify`` is read-only: it never appends to the log or signs a checkpoint. ``export`` and
   ``search`` consult the log (DPA 2018 s62), so each appends one ``consult`` entry naming the
   person (``--actor-id``, ``--actor-role``, ``--justification``: the rules of the API's
   ``X-Actor-*`` headers, ``agent.actor``) and signs a checkpoint over it; they may still run
   beside a running agent (the writer re-reads the chain's end in every transaction). With
   ``[api] require_actor`` (the default) ``search`` needs all three and ``export`` the id and
   role; without, a run naming nobody is recorded as ``system:cli``. The entry is written
   after the read and before anything is printed: if it cannot be written, nothing is shown.
2. ``verify`` exits 0 when the chain and every signed checkpoint hold, a signed checkpoint
   covers the last entry and the witness (if any) agrees; 1 naming the first broken entry (its
   sequence number and what is wrong), or the head the witness holds (its seq and hash) when
   the local log is behind it or disagrees with it; 3 (NOT ATTESTED) when the chain holds but
   its end is not covered by a signed checkpoint (deleted, or an agent still running or killed),
   or the witness holds no head or cannot be reached. With a manifest FILE there is no witness:
   ``verify`` says so and judges by the local checkpoints alone.
3. ``export`` writes entries with ``since <= at < until`` to stdout as JSON lines or CSV.
4. ``search`` computes the keyed hash of the person's normalised name and date of birth with the
   agency's subject key, and lists what was shared about that person, with whom, under which ISA
   and purpose, and when. The name is never written anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from agent.actor import ACTOR_HEADERS, Actor, parse_actor
from agent.audit import (
    AUDIT_FILENAME,
    AuditEvent,
    AuditLog,
    LogState,
    SubjectMatch,
    fetch_head,
    load_subject_secret,
    subject_key_path,
    witness_url,
)
from agent.clock import Clock
from agent.config import Settings, load_settings
from agent.errors import ActorInvalid, WitnessUnavailable
from agent.keystore import read_signing_key
from federation.audit_chain import AuditEntry
from federation.audit_head import head_disagreement, verify_head
from federation.errors import ConfigError, KeyFileError
from federation.subjects import search_keys

__all__ = [
    "EXIT_BROKEN",
    "EXIT_INTACT",
    "EXIT_UNATTESTED",
    "open_audit_log",
    "parse_when",
    "register",
]

EXIT_INTACT, EXIT_BROKEN, EXIT_UNATTESTED = 0, 1, 3

CSV_COLUMNS = (
    "seq", "at", "agency", "action", "actor", "message_id", "counterparty", "isa_id",
    "isa_version", "purpose", "message_type", "risk", "lawful_basis", "outcome",
    "fields_shared", "fields_withheld", "detail", "subject_keys", "actor_id", "actor_role",
    "justification", "fields_altered",
)  # fmt: skip


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``audit verify|export|search`` to the `isa-agent` parser."""
    parser = sub.add_parser("audit", help="verify, export or search the audit log")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    verify = actions.add_parser("verify", help="check the hash chain and signed checkpoints")
    _config(verify)
    verify.set_defaults(func=_verify)
    export = actions.add_parser("export", help="write entries as JSON lines or CSV to stdout")
    _config(export)
    export.add_argument("--since", type=parse_when, help="YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ")
    export.add_argument("--until", type=parse_when, help="exclusive; same formats")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    _actor(export)
    export.set_defaults(func=_export)
    search = actions.add_parser("search", help="subject access: what was shared about a person")
    _config(search)
    search.add_argument("--subject-name", required=True, help="the person's full name")
    search.add_argument("--subject-dob", help="date of birth, YYYY-MM-DD")
    search.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    _actor(search)
    search.set_defaults(func=_search)


def _config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="agent.toml")


def _actor(parser: argparse.ArgumentParser) -> None:
    """Rule 1: who consults the log, and why (recorded in the log itself)."""
    parser.add_argument("--actor-id", help="your staff identifier (never your name)")
    parser.add_argument("--actor-role", help="the role you act in, e.g. dpo")
    parser.add_argument("--justification", help="why (e.g. the SAR's reference); no names")


def consultant(args: argparse.Namespace, settings: Settings, *, justified: bool) -> Actor:
    """Rule 1: the person the options name (the X-Actor-* rules), or ``system:cli`` where
    ``[api] require_actor`` is off. Raises a one-line ``ConfigError``."""
    given = (args.actor_id, args.actor_role, args.justification)
    headers = {h: [v] if v is not None else [] for h, v in zip(ACTOR_HEADERS, given, strict=True)}
    try:
        actor = parse_actor(headers)
    except ActorInvalid as exc:
        options = dict(zip(ACTOR_HEADERS, _ACTOR_OPTIONS, strict=True))
        raise ConfigError(_renamed(exc.message, options)) from None
    needed = _ACTOR_OPTIONS if justified else _ACTOR_OPTIONS[:2]
    missing = actor is None or (justified and actor.justification is None)
    if settings.api.require_actor and missing:
        raise ConfigError(
            f"{settings.agency} records who consults its audit log and why "
            f"([api] require_actor): give {', '.join(needed)}"
        )
    return Actor.system("cli") if actor is None else actor


_ACTOR_OPTIONS = ("--actor-id", "--actor-role", "--justification")


def _renamed(message: str, names: dict[str, str]) -> str:
    for header, option in names.items():
        message = message.replace(header, option)
    return message


async def _record_consultation(log: AuditLog, actor: Actor, what: str, detail: str,
                               at: datetime) -> None:  # fmt: skip
    """Rule 1: the ``consult`` entry of this run (then a checkpoint signed on close)."""
    await log.record(AuditEvent("consult", "cli", outcome=what, detail=detail, person=actor), at)


def parse_when(text: str) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC) or ``YYYY-MM-DDTHH:MM:SSZ``."""
    for shape in ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text, shape).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise argparse.ArgumentTypeError(f"{text!r} is not YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ")


@asynccontextmanager
async def open_audit_log(
    settings: Settings, *, subject_secret: bytes, clock: Clock, writes: bool = False
) -> AsyncIterator[AuditLog]:
    """The agent's audit log, opened to read (no checkpoint is signed on close), or for a
    consultation that ``writes`` its entry (a checkpoint is signed on close)."""
    if not (settings.data_dir / AUDIT_FILENAME).is_file():
        raise ConfigError(
            f"{settings.data_dir / AUDIT_FILENAME}: no audit log (has the agent run?)"
        )
    key = read_signing_key(settings.keys.signing_key, settings.keys.passphrase)
    log = AuditLog(
        settings.data_dir,
        agency=settings.agency,
        signing_key=key,
        subject_secret=subject_secret,
        clock=clock,
        checkpoint_on_close=writes,
    )
    async with log:
        yield log


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config, os.environ)


def _secret(settings: Settings) -> bytes:
    path = subject_key_path(settings.keys.encryption_dir)
    if not path.is_file():
        raise KeyFileError(f"{path}: no subject key (it is created when the agent first starts)")
    return load_subject_secret(path)


def _verify(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def run() -> int:
        async with open_audit_log(settings, subject_secret=bytes(32), clock=args.clock) as log:
            found, count, state = await log.verify(), await log.count(), await log.state()
            if found is not None:
                print(
                    f"audit log of {settings.agency}: BROKEN at entry {found.seq}: {found.problem}"
                )
                return EXIT_BROKEN
            code, notes = await _witness(settings, log, state)
        if code != EXIT_BROKEN and state.end > state.covered:
            code, notes = EXIT_UNATTESTED, [_uncovered(state), *notes]
        verdict = {EXIT_INTACT: "chain and checkpoints intact", EXIT_BROKEN: "BROKEN",
                   EXIT_UNATTESTED: "chain intact but NOT ATTESTED"}[code]  # fmt: skip
        print(f"audit log of {settings.agency}: {count} entries, {verdict}")
        for note in notes:
            print(f"  {note}")
        return code

    return asyncio.run(run())


def _uncovered(state: LogState) -> str:
    return (
        f"entries {state.covered + 1}..{state.end} are covered by no signed checkpoint: they "
        "could have been cut or rewritten (checkpoints deleted, or the agent is running or was "
        "killed; a clean stop signs one)"
    )


async def _witness(settings: Settings, log: AuditLog, state: LogState) -> tuple[int, list[str]]:
    """Check the log against the head the witness holds (rule 2)."""
    url = witness_url(settings.trust, settings.agency)
    if url is None:
        return EXIT_INTACT, ["no witness is configured (the manifest comes from a file): only "
                             "the local checkpoints vouch for the log's end"]  # fmt: skip
    try:
        async with aiohttp.ClientSession() as session:
            head = await fetch_head(session, url)
    except WitnessUnavailable as exc:
        return EXIT_UNATTESTED, [f"the witness could not be checked: {exc.message}"]
    if head is None:
        return EXIT_UNATTESTED, [f"the witness at {url} holds no audit head of this agency"]
    if not verify_head(head, log.verify_key):
        return EXIT_BROKEN, [f"the witness's head at entry {head.seq} is not signed by our key"]
    problem = head_disagreement(
        head, local_end=state.end, hash_at_seq=await log.hash_at(head.seq), anchor_seq=state.anchor
    )
    if problem is not None:
        return EXIT_BROKEN, [problem]
    return EXIT_INTACT, [f"the witness holds entry {head.seq} ({head.entry_hash}): it agrees"]


def _export(args: argparse.Namespace) -> int:
    settings = _settings(args)
    actor = consultant(args, settings, justified=False)

    async def run() -> list[AuditEntry]:
        async with open_audit_log(settings, subject_secret=bytes(32), clock=args.clock,
                                  writes=True) as log:  # fmt: skip
            entries = await log.entries(args.since, args.until)
            await _record_consultation(
                log, actor, "audit_export", f"{len(entries)} entries exported", args.clock()
            )
            return entries

    entries = asyncio.run(run())
    if args.format == "jsonl":
        for entry in entries:
            sys.stdout.write(entry.model_dump_json() + "\n")
    else:
        writer = csv.writer(sys.stdout)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_row(entry) for entry in entries)
    return 0


def csv_row(entry: AuditEntry) -> list[str]:
    """One CSV row: lists joined with ``;``, withheld as ``path:reason``, basis as JSON."""
    data = entry.model_dump(mode="json")
    data["lawful_basis"] = json.dumps(data["lawful_basis"], sort_keys=True)
    data["fields_shared"] = ";".join(entry.fields_shared)
    data["fields_withheld"] = ";".join(f"{w.path}:{w.reason}" for w in entry.fields_withheld)
    data["subject_keys"] = ";".join(entry.subject_keys)
    data["fields_altered"] = ";".join(f"{a.path}:{a.how}" for a in entry.fields_altered)
    return ["" if data[c] is None else str(data[c]) for c in CSV_COLUMNS]


def _search(args: argparse.Namespace) -> int:
    settings = _settings(args)
    actor = consultant(args, settings, justified=True)
    try:
        keys = search_keys(_secret(settings), args.subject_name, args.subject_dob)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

    async def run() -> list[SubjectMatch]:
        async with open_audit_log(settings, subject_secret=bytes(32), clock=args.clock,
                                  writes=True) as log:  # fmt: skip
            found = await log.search(keys)
            await _record_consultation(
                log, actor, "audit_search", f"subject search: {len(found)} entries", args.clock()
            )
            return found

    matches = asyncio.run(run())
    if args.json:
        for match in matches:
            sys.stdout.write(match.model_dump_json(exclude={"subject_keys"}) + "\n")
        return 0
    print(f"{len(matches)} audit entries about this person ({settings.agency}):")
    for m in matches:
        print(
            f"  {m.at} #{m.seq} {m.action:<8} message {m.message_id or '-'} with "
            f"{m.counterparty or '-'} under {m.isa_id or '-'} {m.isa_version or ''} for "
            f"{m.purpose or '-'} ({m.outcome or '-'}; match {m.match})"
        )
        if m.fields_shared or m.fields_withheld:
            print(f"      shared: {', '.join(m.fields_shared) or '-'}")
            withheld = [f"{w.path} ({w.reason})" for w in m.fields_withheld]
            print(f"      withheld: {', '.join(withheld) or '-'}")
        if m.fields_altered:
            print(
                f"      generalised: {', '.join(f'{a.path} ({a.how})' for a in m.fields_altered)}"
            )
        if m.actor_id is not None:
            why = f"; why: {m.justification}" if m.justification else ""
            print(f"      by: {m.actor_id} ({m.actor_role}){why}")
    return 0
