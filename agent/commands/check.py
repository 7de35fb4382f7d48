"""``isa-agent check --config FILE``: is this agent ready to run? One line per check.

Checks, in order (one that needs an earlier result says ``skip`` when that one failed):

1. ``config``      the TOML file validates (environment secrets applied as ``run`` does);
2. ``signing-key`` the Ed25519 key file loads (mode 0600 or stricter; passphrase if set);
3. ``enc-keys``    the X25519 keyring loads and has a current key;
4. ``root``        the root certificate matches the pinned fingerprint;
5. ``manifest``    the manifest source (file or URL) chains to the root, is signed, has not
                   expired, and is not older than the one this agent already holds (rollback);
6. ``identity``    the manifest lists this agency, not revoked, with OUR signing key, our broker
                   user and our current encryption key announced;
7. ``isas``        a format-2 manifest carries the ISAs (``agent.trust`` rule 8): the line names
                   each one this agency is a party to in the version in force now, and any
                   earlier version still accepted with its deadline (``policies_dir`` is not
                   used). With a format-1 manifest, every ISA in ``policies_dir`` loads, and the
                   ISAs the manifest lists with this agency as a party are exactly the local
                   ones, with the same SHA-256; a local ISA the manifest leaves out because one
                   of its parties has not joined yet (``broker.fedstate.publish_manifest``) is
                   named, not a failure;
8. ``data-dir``    the data directory is (or can be made) a writable directory;
9. ``broker``      per broker URL: AMQP login with the agency's credentials and a passive check
                   of its inbox queue.

Then, with thresholds (the command line always passes them), one ``expires`` line per thing
this agent relies on that expires (``agent.expiry``: the manifest, the root, manifest-signer and
agency certificates, the current announced encryption key, each ISA in force's review and end
date) with its days left: ``FAIL`` once lapsed, ``WARN`` within ``--warn-days`` (default 30) or
``--critical-days`` (7), and the manifest within ``[trust] manifest_alert_hours``.

Rules: nothing is written (no manifest persisted, no directory made); no traceback and no secret
is printed (URLs show a masked password); exit 0 only when every check passed and nothing is
within a threshold, 1 when a check failed (or something expired), 3 when only ``WARN`` lines
remain (the keys report's code for "within the warning threshold"). ``run_checks`` takes the
environment and ``now``, so tests drive it directly.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import aio_pika
import aio_pika.exceptions
import aiohttp
import aiormq.exceptions
from cryptography import x509
from yarl import URL

from agent.config import Settings, load_settings
from agent.expiry import agent_deadlines
from agent.keystore import load_keyring, read_signing_key
from agent.runtime import broker_urls, load_registry
from federation import pki
from federation.canonical import format_time
from federation.deadlines import Thresholds, severity
from federation.errors import ConfigError, IsaRelayError, ManifestRejected
from federation.keys import RotationPolicy, SigningKey
from federation.keys import utc as _t
from federation.manifest import Manifest, reload_manifest, verify_manifest
from federation.topology import inbox_queue

__all__ = ["CheckResult", "register", "run_checks"]

Verdict = Literal["ok", "WARN", "FAIL", "skip"]
Outcome = tuple[Verdict, str]
BROKER_TIMEOUT = 10.0
MANIFEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class CheckResult:
    """One check: its name, ``ok`` / ``FAIL`` / ``skip``, and the reason in a few words."""

    name: str
    verdict: Verdict
    detail: str

    def line(self) -> str:
        return f"{self.verdict:<4}  {self.name:<11}  {self.detail}"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``isa-agent check`` to the parser."""
    parser = sub.add_parser(
        "check", help="validate config, keys, root, manifest, ISAs and broker access"
    )
    parser.add_argument("--config", type=Path, required=True, help="agent.toml")
    parser.add_argument(
        "--warn-days", type=_days, default=30.0, help="WARN below this many days (default 30)"
    )
    parser.add_argument(
        "--critical-days", type=_days, default=7.0, help="critical below this (default 7)"
    )
    parser.set_defaults(func=_check)


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not 0 < value <= 3660:
        raise argparse.ArgumentTypeError("days must be 0 < days <= 3660")
    return value


def _check(args: argparse.Namespace) -> int:
    for noisy in ("aio_pika", "aiormq"):  # their connection errors are our FAIL lines
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    if args.critical_days > args.warn_days:
        raise ConfigError("--critical-days must not be more than --warn-days")
    limits = (timedelta(days=args.warn_days), timedelta(days=args.critical_days))
    results = asyncio.run(run_checks(args.config, os.environ, args.clock(), limits=limits))
    for result in results:
        print(result.line())
    failed = sum(r.verdict in ("FAIL", "skip") for r in results)
    warned = sum(r.verdict == "WARN" for r in results)
    passed = len(results) - failed - warned
    print(f"{passed} of {len(results)} checks passed" if failed or warned
          else f"all {len(results)} checks passed")  # fmt: skip
    return 1 if failed else 3 if warned else 0


# -- the sequence ------------------------------------------------------------------------------


@dataclass
class _Facts:
    """What earlier checks established, for the later ones (None = that check failed)."""

    signing_key: SigningKey | None = None
    root: x509.Certificate | None = None
    manifest: Manifest | None = None


async def run_checks(
    path: Path,
    environ: Mapping[str, str],
    now: datetime,
    *,
    limits: tuple[timedelta, timedelta] | None = None,
) -> list[CheckResult]:
    """Every check for the config at ``path``, in order, then with ``limits`` (warn, critical)
    one ``expires`` line per deadline. Never raises for a failed check."""
    try:
        settings = load_settings(path, environ)
    except IsaRelayError as exc:
        skipped = [CheckResult(n, "skip", "needs a valid config") for n in _AFTER_CONFIG]
        return [CheckResult("config", "FAIL", exc.message), *skipped]
    facts = _Facts()
    steps: list[tuple[str, Callable[[], Awaitable[Outcome]]]] = [
        ("signing-key", lambda: _sync(_signing_key, settings, facts)),
        ("enc-keys", lambda: _sync(_encryption_keys, settings, now)),
        ("root", lambda: _sync(_root, settings, facts)),
        ("manifest", lambda: _manifest(settings, facts, now)),
        ("identity", lambda: _sync(_identity, settings, facts, now)),
        ("isas", lambda: _sync(_isas, settings, facts, now)),
        ("data-dir", lambda: _sync(_data_dir, settings.data_dir)),
    ]
    for number, url in enumerate(broker_urls(settings), start=1):
        name = "broker" if len(settings.broker.urls) == 1 else f"broker #{number}"
        steps.append((name, functools.partial(_broker, settings, url)))
    results = [CheckResult("config", "ok", f"{path} (agency {settings.agency})")]
    for name, step in steps:
        results.append(await _guarded(name, step))
    if limits is not None:
        renewal = timedelta(hours=settings.trust.manifest_alert_hours)
        results += _expiry(settings, facts, now, Thresholds(*limits, renewal=renewal))
    return results


# -- expiry ------------------------------------------------------------------------------------

_VERDICT: dict[str, Verdict] = {"ok": "ok", "warning": "WARN", "critical": "WARN",
                                "expired": "FAIL"}  # fmt: skip


def _expiry(
    settings: Settings, facts: _Facts, now: datetime, thresholds: Thresholds
) -> list[CheckResult]:
    """One line per deadline this agent relies on, with its days left."""
    if facts.manifest is None or facts.root is None:
        return [CheckResult("expires", "skip", "needs a valid manifest")]
    try:
        carried = facts.manifest.isas_at(now)
        registry = carried if carried is not None else load_registry(settings.trust.policies_dir)
    except IsaRelayError as exc:
        return [CheckResult("expires", "FAIL", exc.message)]
    found = agent_deadlines(facts.manifest, facts.root, settings.agency, registry, now)
    return [
        CheckResult("expires", _VERDICT[severity(d, now, thresholds)], d.line(now))
        for d in found
    ]


_AFTER_CONFIG = ("signing-key", "enc-keys", "root", "manifest", "identity", "isas", "data-dir",
                 "broker")  # fmt: skip


async def _sync(fn: Callable[..., Outcome], *args: object) -> Outcome:
    return fn(*args)


async def _guarded(name: str, step: Callable[[], Awaitable[Outcome]]) -> CheckResult:
    """Run one check; a project error or an OS error is its FAIL line, never a traceback."""
    try:
        verdict, detail = await step()
    except IsaRelayError as exc:
        verdict, detail = "FAIL", exc.message
    except OSError as exc:
        verdict, detail = "FAIL", f"{exc.__class__.__name__}: {exc.strerror or exc}"
    return CheckResult(name, verdict, detail)


# -- keys --------------------------------------------------------------------------------------


def _signing_key(settings: Settings, facts: _Facts) -> Outcome:
    key = read_signing_key(settings.keys.signing_key, settings.keys.passphrase)
    facts.signing_key = key
    return "ok", f"{settings.keys.signing_key} (Ed25519, key id {key.key_id[:16]}...)"


def _encryption_keys(settings: Settings, now: datetime) -> Outcome:
    keys = settings.keys
    policy = RotationPolicy(
        rotate_every=timedelta(days=keys.rotate_every_days), grace=timedelta(days=keys.grace_days)
    )
    keyring = load_keyring(keys.encryption_dir, policy, keys.passphrase)
    current = keyring.current(now)
    if current is None:
        return "FAIL", f"{keys.encryption_dir}: no current encryption key (rotate the keys)"
    return "ok", f"{keys.encryption_dir} (current kid {current.kid})"


# -- trust -------------------------------------------------------------------------------------


def _root(settings: Settings, facts: _Facts) -> Outcome:
    path = settings.trust.root_certificate
    try:
        root = pki.certificate_from_bytes(path.read_bytes())
        pki.verify_root(root, settings.trust.root_fingerprint)
    except ManifestRejected as exc:
        return "FAIL", f"{path}: {_ROOT_REASONS.get(exc.reason, exc.reason)}"
    facts.root = root
    return "ok", f"{path} (fingerprint matches the pin)"


_ROOT_REASONS = {
    "certificate_malformed": "not a certificate",
    "root_not_pinned": "does not match the pinned root_fingerprint",
    "root_not_ca": "not a CA certificate",
}


async def _manifest(settings: Settings, facts: _Facts, now: datetime) -> Outcome:
    if facts.root is None:
        return "skip", "needs the root certificate"
    trust, source = settings.trust, settings.trust.manifest_url or settings.trust.manifest_file
    held = _held_serial(settings, facts.root)
    try:
        data = await _fetch_manifest(settings)
        manifest = verify_manifest(
            data, root_cert=facts.root, pinned_fingerprint=trust.root_fingerprint, now=now,
            current_serial=0,
        )  # fmt: skip
    except ManifestRejected as exc:
        return "FAIL", f"{source}: {exc.message}"
    if manifest.serial < held:
        return "FAIL", f"{source}: serial {manifest.serial} is older than the held {held}"
    facts.manifest = manifest
    left = manifest.expires_at - now
    return "ok", (f"{source} (serial {manifest.serial}, expires {format_time(manifest.expires_at)},"
                  f" in {left.days}d {left.seconds // 3600}h)")  # fmt: skip


def _held_serial(settings: Settings, root: x509.Certificate) -> int:
    """The serial of the manifest this agent accepted before (0 if none or unreadable)."""
    try:
        data = (settings.data_dir / "manifest.json").read_bytes()
        held = reload_manifest(
            data, root_cert=root, pinned_fingerprint=settings.trust.root_fingerprint
        )
    except (OSError, ManifestRejected):
        return 0
    return held.serial


async def _fetch_manifest(settings: Settings) -> bytes:
    url, path = settings.trust.manifest_url, settings.trust.manifest_file
    if url:
        timeout = aiohttp.ClientTimeout(total=MANIFEST_TIMEOUT)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
                if resp.status != 200:
                    raise ManifestRejected("unreachable", f"HTTP {resp.status}")
                return await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ManifestRejected("unreachable", exc.__class__.__name__) from None
    if path is None:
        raise ManifestRejected("no_source", "set trust.manifest_file or trust.manifest_url")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ManifestRejected("unreadable", exc.strerror or exc.__class__.__name__) from None


def _identity(settings: Settings, facts: _Facts, now: datetime) -> Outcome:
    manifest, agency = facts.manifest, settings.agency
    if manifest is None:
        return "skip", "needs a valid manifest"
    entry, identity = manifest.agency(agency), manifest.signing_key_of(agency)
    if entry is None or identity is None:
        return "FAIL", f"the manifest does not list agency {agency!r}"
    problems = []
    if identity.revoked:
        problems.append("this agency is revoked")
    key = facts.signing_key
    if key is not None and bytes(key.verify_key) != bytes(identity.verify_key):
        problems.append("our signing key is not the one certified in the manifest")
    if entry.broker_user != settings.broker.user:
        problems.append(f"broker user is {entry.broker_user!r} in the manifest")
    announced = manifest.current_encryption_key(agency, now)
    if announced is None:
        problems.append("no current encryption key announced")
    if problems:
        return "FAIL", "; ".join(problems)
    unchecked = " (signing key not compared: it did not load)" if key is None else ""
    return "ok", f"{agency} certified until {format_time(identity.not_after)}{unchecked}"


def _isas(settings: Settings, facts: _Facts, now: datetime) -> Outcome:
    if facts.manifest is not None and facts.manifest.carries_isas:
        return _carried_isas(settings, facts.manifest, now)
    folder = settings.trust.policies_dir
    if folder is None:
        if facts.manifest is None:
            return "skip", "needs a valid manifest (no [trust] policies_dir is set)"
        return "FAIL", ("the manifest carries no ISAs (format 1) and [trust] policies_dir is not"
                        " set: no ISA would be in force")  # fmt: skip
    registry = load_registry(folder)  # PolicyError: file:line problems
    if facts.manifest is None:
        return "skip", f"{len(registry.ids())} ISAs load; the manifest is needed to compare"
    ours = {i.id: i for i in facts.manifest.document.isas if settings.agency in i.parties}
    problems = [f"{i} is in the manifest but not in {settings.trust.policies_dir}"
                for i in sorted(set(ours) - set(registry.ids()))]  # fmt: skip
    members = {a.id for a in facts.manifest.document.agencies}
    waiting: list[str] = []
    for isa_id in registry.ids():
        isa, entry = registry.get(isa_id), ours.get(isa_id)
        if isa is None or entry is None:
            absent = sorted({p.id for p in isa.doc.parties} - members) if isa else []
            if facts.manifest.isa(isa_id) is None and absent:
                waiting.append(f"{isa_id} (until {', '.join(absent)} join)")
            elif facts.manifest.isa(isa_id) is None:
                problems.append(f"{isa_id} is not in the manifest")
            continue
        if (isa.version, isa.sha256) != (entry.version, entry.sha256):
            problems.append(
                f"{isa_id}: local {isa.version} sha256 {isa.sha256[:12]}... differs from the"
                f" manifest's {entry.version} {entry.sha256[:12]}..."
            )
    if problems:
        return "FAIL", "; ".join(problems)
    unpublished = f"; not published yet: {'; '.join(waiting)}" if waiting else ""
    return "ok", f"{len(ours)} ISAs with this agency as a party match the manifest{unpublished}"


def _carried_isas(settings: Settings, manifest: Manifest, now: datetime) -> Outcome:
    """Rule 7, format 2: the versions in force now, and the other versions listed."""
    registry = manifest.isas_at(now)
    assert registry is not None  # a format-2 manifest
    ours = [isa for isa in registry.in_force() if isa.party(settings.agency) is not None]
    if not ours:
        return "FAIL", f"the manifest carries no ISA with {settings.agency} as a party"
    shown = ", ".join(_versions_line(manifest, isa.id, isa.version, now) for isa in ours)
    unused = "" if settings.trust.policies_dir is None else " (policies_dir is not used)"
    return "ok", f"in force from the manifest: {shown}{unused}"


def _versions_line(manifest: Manifest, isa_id: str, version: str, now: datetime) -> str:
    """``id version`` and what the manifest says of its other versions."""
    notes = []
    for entry in manifest.isa_versions(isa_id):
        if entry.version == version:
            if entry.superseded_at is not None:
                notes.append(f"until {entry.superseded_at}")
        elif entry.superseded_at is None or _t(entry.superseded_at) > now:
            notes.append(f"then {entry.version}")
        else:
            notes.append(f"{entry.version} accepted until {entry.accept_until} if sealed before"
                         f" {entry.superseded_at}")  # fmt: skip
    return f"{isa_id} {version}" + (f" ({'; '.join(notes)})" if notes else "")


def _data_dir(path: Path) -> Outcome:
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return "FAIL", f"{path}: {existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return "FAIL", f"{path}: {existing} is not writable by this user"
    return "ok", str(path) if existing == path else f"{path} (will be created)"


# -- broker ------------------------------------------------------------------------------------


async def _broker(settings: Settings, url: str) -> Outcome:
    shown, queue_name = _masked(url), inbox_queue(settings.agency)
    try:
        async with asyncio.timeout(BROKER_TIMEOUT):
            connection = await aio_pika.connect(url, timeout=BROKER_TIMEOUT)
            try:
                channel = await connection.channel()
                queue = await channel.declare_queue(queue_name, passive=True)
                waiting = queue.declaration_result.message_count
            finally:
                await connection.close()
    except TimeoutError:
        return "FAIL", f"{shown}: no answer within {BROKER_TIMEOUT:g}s"
    except aiormq.exceptions.ProbableAuthenticationError:
        return "FAIL", f"{shown}: login refused for user {settings.broker.user!r} (password?)"
    except aiormq.exceptions.ChannelNotFoundEntity:
        return "FAIL", f"{shown}: queue {queue_name} does not exist (broker not provisioned?)"
    except aiormq.exceptions.ChannelAccessRefused:
        return "FAIL", f"{shown}: user {settings.broker.user!r} may not read {queue_name}"
    except aiormq.exceptions.InvalidFrameError:  # Connection.Close instead of OpenOk
        vhost = URL(url).path.lstrip("/") or "/"
        return "FAIL", f"{shown}: the broker refused vhost {vhost!r} (missing, or no permission)"
    except aio_pika.exceptions.CONNECTION_EXCEPTIONS as exc:
        return "FAIL", f"{shown}: cannot connect ({exc.__class__.__name__})"
    return "ok", f"{shown}: logged in as {settings.broker.user}; {queue_name} holds {waiting}"


def _masked(url: str) -> str:
    parsed = URL(url)
    return str(parsed.with_password("******")) if parsed.password else str(parsed)
