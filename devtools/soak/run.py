"""The time-travel soak (issue 15, "Done when"): a federation left to run for simulated years.

Four agencies with ISA flows between them run as real ``isa-agent run`` processes on the real
RabbitMQ, beside the federation's ``isa-broker serve``, all under one fake clock that the soak
moves (:mod:`devtools.soak.clock`). The only operator actions are the scheduled jobs the README
("Nothing to remember") tells operators to install; everything else must happen by itself.

Steps of one run (:meth:`Soak.run`):
1. Build: the soak's ISA copies, a provisioned dev federation built at the real time
   (:mod:`devtools.soak.processes`); the clock is set to federation day ``first_day``; serve and
   the agents start and must all become ready (every key announced, every recipient reachable).
2. Each step (at most ``step_hours``; a simulated day by default):
   a. the clock moves to the step's moment; each agent's ``/healthz`` is sampled; referrals
      go out at once, on every flow, and each recipient's inbox is read and acknowledged;
   b. the processes get ``settle_seconds`` of real time to notice (polls, key rotation,
      announcements, renewal requests, re-signing all run on real-time intervals);
   c. the scheduled jobs run once under the fake clock: ``isa-broker agency renew --pending``
      and ``isa-broker manifest renew-signer --within-days 60`` (hourly in the README: once per
      step is less help than operators are told to give, never more);
   d. the provoked events due by then happen (``EVENTS``: the single-key revocation, the ISA
      version change);
   e. referrals go out again on every flow;
   f. the step ends once the processes have caught up with the simulated day (rule 4).
3. End: the inboxes are drained until every accepted referral arrived (or ``drain_seconds``
   pass); each sender's status of every accepted referral is read; the figures are gathered
   from the federation directory and the ledger (:mod:`devtools.soak.ledger`); the processes
   stop and the federation's vhost and users are removed from the broker.

Rules:
1. A refusal is provoked only if the soak caused it: a submit to the agency whose key it revoked,
   answered ``recipient-key-unavailable``, between the revocation and the moment every agent
   holds the manifest with that agency's new key. Everything else that is not a 202 counts as
   an unprovoked refusal.
2. Before provoking the revocation the soak waits until everything accepted so far has been
   delivered, and after it until every agent holds the revoking serial, so that no referral is
   sealed to the revoked key (those would be refused as ``key_revoked``, by design).
3. The ISA version change is a step function of its own (:func:`change_isa_version`): the
   operator's documented steps for a new version of one ISA (issue 15.5). Each delivery is
   counted by the ISA version it cites, so the figures show the switch.
4. Simulated time never outruns the processes. A simulated day passes in a second or two of
   real time, while serve checks whether to re-sign, agents poll the manifest and post their
   new keys every real second: a rotated key took 2-4 real seconds, two or three simulated
   days, to reach every sender, which in a deployment (polls every minute) takes minutes, and
   senders then refused a recipient whose previous key had lapsed meanwhile. So each step ends
   with :meth:`Soak.catch_up`: until serve has re-signed a manifest that is due, every agent's
   own current key is published, and every agent holds the newest serial, what 23 hours of
   polling would have done. Not catching up within 20 s is a problem of the run. ``/healthz``
   is sampled at the start of each step, after the clock moved and before anything else:
   the state an agency's monitoring would see on an ordinary day.
5. The monitoring the README tells operators to schedule stays quiet in a federation that
   maintains itself: ``isa-broker keys report`` runs every ``watch_every_days`` and at the end,
   each agency's ``isa-agent check`` at the end, both in this process under the fake clock.
   Any exit status but 0 (an expiry warning, an overdue rotation...) is a problem of the run.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from agent import cli as agent_cli
from broker import cli as broker_cli
from broker.devfed import DevFederation
from broker.keys_report import load_manifest
from broker.resign import resign_due
from devtools import federation as tools_federation
from devtools.localfed import Agent, RunError
from devtools.management import Broker
from devtools.soak import processes
from devtools.soak.clock import SteppedClock
from devtools.soak.isas import write_soak_isas
from devtools.soak.ledger import Figures, Ledger, Refusal
from federation.manifest import Manifest
from federation.synth import generate_referral

__all__ = ["AGENCIES", "EVENTS", "FLOWS", "Flow", "Soak", "SoakPlan", "change_isa_version",
           "revoke_one_key"]  # fmt: skip

AGENCIES = ["police-scotland", "assist", "council-sw", "womens-aid"]
ISA_FILES = ["police-to-assist.yaml", "police-to-council-sw.yaml", "womens-aid-to-police.yaml"]
REVOKED = "assist"  # whose current encryption key the soak revokes (keyCompromise)
CHANGED_ISA = "police-to-assist.yaml"  # the ISA whose version the soak changes
KEY_UNAVAILABLE = "urn:isa-relay:problem:recipient-key-unavailable"
SCHEDULED_JOBS = (
    ("agency", "renew", "--pending"),
    ("manifest", "renew-signer", "--within-days", "60"),
)
DAY = timedelta(days=1)
RESIGN_BEFORE = timedelta(hours=72)  # isa-broker serve's default --resign-before, as installed
T = TypeVar("T")
R = TypeVar("R")
CommandMain = Callable[..., int]  # isa-broker's / isa-agent's main(argv, *, clock)


@dataclass(frozen=True)
class Flow:
    """One flow an ISA permits: who sends what to whom, and at which risk level."""

    sender: str
    recipient: str
    isa: str
    purpose: str
    type: str
    risk: str

    def body(self, seed: int) -> dict[str, Any]:
        """A submit request the ISA permits, with a synthetic payload."""
        rng = random.Random(seed)  # noqa: S311 - synthetic test data
        payload = generate_referral(self.type, rng, risk_level=self.risk)  # type: ignore[arg-type]
        return {"to": self.recipient, "isa": self.isa, "purpose": self.purpose,
                "type": self.type, "payload": payload}  # fmt: skip


FLOWS = (
    Flow("police-scotland", "assist", "isa-police-assist-advocacy", "advocacy_after_charge",
         "police_concern", "high"),
    Flow("police-scotland", "council-sw", "isa-police-council-concerns",
         "child_and_adult_protection", "police_concern", "medium"),
    Flow("womens-aid", "police-scotland", "isa-womens-aid-police", "report_to_police",
         "support_referral", "medium"),
)  # fmt: skip


@dataclass(frozen=True)
class SoakPlan:
    """How long, in what steps, how much traffic, and when the provoked events happen."""

    days: float
    first_day: float = 0.0  # the federation day the soak starts on (0: the day it is built)
    # Less than a day: the serve re-signs with 72 h left and agents warn below 48 h; with steps of
    # exactly 24 h aligned on the moment a manifest was signed, one step lands a hair before the
    # 72 h mark and the next a hair after the 48 h one, and the agents warn before serve acts.
    step_hours: float = 23.0
    per_flow: int = 1  # referrals per flow in each of a step's two sends
    revoke_at: float | None = 0.4  # fraction of the run at which the key is revoked
    isa_change_at: float | None = 0.6
    settle_seconds: float = 1.0
    poll_seconds: float = 1.0
    housekeeping_seconds: float = 1.0
    drain_seconds: float = 120.0
    progress_every_days: float = 10.0
    watch_every_days: float = 10.0  # how often the operator's keys report runs (rule 5)

    @classmethod
    def short(cls) -> SoakPlan:
        """The short form (``scripts/test``): 50 days from federation day 297, so the agency
        and signer certificates (365 days) fall due for renewal (60 days ahead) on day 305; the
        agents start with the keys of day 0 long expired and rotate at once, then again after
        27 days."""
        return cls(days=50, first_day=297, progress_every_days=25)

    @classmethod
    def long(cls, days: float = 800) -> SoakPlan:
        """The long form: ``days`` from the day the federation is built."""
        return cls(days=days)

    @property
    def steps(self) -> int:
        return max(1, round(self.days * 24 / self.step_hours))


@dataclass(frozen=True)
class Event:
    """A provoked event (step 2d): at ``at`` (a fraction of the run), ``action`` says what it did
    and whether it happened (False: not available)."""

    name: str
    at: Callable[[SoakPlan], float | None]
    action: Callable[[Soak], tuple[bool, str]]


@dataclass
class Provocation:
    """A revoked key whose agency cannot be sent to until its new key is published (rule 1)."""

    agency: str
    kid: str
    serial: int
    started: float
    ended: float | None = None


def revoke_one_key(soak: Soak) -> tuple[bool, str]:
    """``isa-broker key revoke`` of one agency's current encryption key as compromised (the
    provoked single-key revocation, rule 2); its agent must rotate away by itself."""
    soak.quiesce()
    manifest = soak.manifest()
    current = manifest.current_encryption_key(REVOKED, soak.clock.now())
    if current is None:
        return False, f"{REVOKED} has no current key to revoke"
    soak.isa_broker("key", "revoke", "--federation", str(soak.fed.layout.root), "--agency",
                    REVOKED, "--kid", current.kid, "--reason", "keyCompromise",
                    "--note", "time-travel soak: provoked")  # fmt: skip
    serial = soak.manifest().serial
    soak.provocation = Provocation(REVOKED, current.kid, serial, time.monotonic())
    soak.wait_all_hold(serial)
    soak.watch_revocation(within=60.0)
    return True, f"{REVOKED}'s key {current.kid} revoked (keyCompromise) in serial {serial}"


def change_isa_version(soak: Soak) -> tuple[bool, str]:
    """The ISA version change (rule 3), as README "Publishing a new ISA version" tells the
    operator: a higher ``isa.version`` of one ISA in ``DIR/policies``, ``isa-broker policy
    lint``, ``isa-broker manifest build``. Agents take it with the manifest that carries it,
    without a restart; the new version governs ``--isa-switch-minutes`` (15) after the build,
    and referrals sealed under the old one before that are still accepted in its grace."""
    path = soak.fed.layout.policies / CHANGED_ISA
    text = path.read_text(encoding="utf-8")
    old = re.search(r"^  version: (\d+)\.(\d+)\.(\d+)$", text, re.MULTILINE)
    if old is None:
        return False, f"{CHANGED_ISA} has no version line"
    new = f"{old[1]}.{int(old[2]) + 1}.0"
    path.write_text(text.replace(old[0], f"  version: {new}", 1), encoding="utf-8")
    soak.isa_broker("policy", "lint", str(soak.fed.layout.policies))
    soak.isa_broker("manifest", "build", "--federation", str(soak.fed.layout.root))
    serial = soak.manifest().serial
    soak.wait_all_hold(serial)
    version = old[0].split(": ")[1]
    return True, f"{CHANGED_ISA} {version} -> {new} published in serial {serial}"


EVENTS = (
    Event("single-key revocation", lambda plan: plan.revoke_at, revoke_one_key),
    Event("ISA version change", lambda plan: plan.isa_change_at, change_isa_version),
)


@dataclass
class Soak:
    """One soak run in ``root`` (steps 1-3)."""

    root: Path
    plan: SoakPlan
    broker: Broker = field(default_factory=Broker.from_env)
    say: Callable[[str], None] = print
    ledger: Ledger = field(default_factory=Ledger)
    figures: Figures = field(default_factory=Figures)
    provocation: Provocation | None = None
    health: Counter[str] = field(default_factory=Counter)
    monitoring: Counter[str] = field(default_factory=Counter)  # command: exit status -> runs
    problems: list[str] = field(default_factory=list)
    _fed: DevFederation | None = None
    _clock: SteppedClock | None = None
    _agents: dict[str, Agent] = field(default_factory=dict)
    _cursors: Counter[str] = field(default_factory=Counter)
    _seed: int = 0
    _done: set[str] = field(default_factory=set)
    timings: dict[str, float] = field(default_factory=dict)  # real seconds spent per phase
    _built: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(8))

    @property
    def fed(self) -> DevFederation:
        assert self._fed is not None, "the soak's federation is not built yet"
        return self._fed

    @property
    def clock(self) -> SteppedClock:
        assert self._clock is not None, "the soak's clock is not set up yet"
        return self._clock

    def day(self) -> float:
        """The federation day the fake clock is on (0: the day it was built)."""
        return (self.clock.now() - self._built) / DAY

    # --- step 1 and 3: the federation and its processes ------------------------------------

    def run(self) -> Figures:
        started = time.monotonic()
        with self._federation():
            first_serial = self.manifest().serial
            for step in range(1, self.plan.steps + 1):
                self.step(step)
            self.finish()
            self.gather(first_serial)
        self.figures.wall_seconds = time.monotonic() - started
        return self.figures

    @contextlib.contextmanager
    def _federation(self) -> Iterator[None]:
        plan, root = self.plan, self.root
        root.mkdir(parents=True, exist_ok=True)
        last = self._built + (plan.first_day + plan.days) * DAY
        isas = root / "isas"
        write_soak_isas(isas, ISA_FILES, built=self._built.date(), last_day=last.date())
        self._clock = SteppedClock(root / "faketime-offset")
        self._fed = processes.build(root, self.broker, isas=isas, agencies=AGENCIES,
                                    built=self._built)  # fmt: skip
        server = processes.ManifestServer(self.fed.layout.root, root / "logs" / "serve.log")
        (root / "logs").mkdir(exist_ok=True)
        try:
            self.clock.move_to(max(self._built + plan.first_day * DAY, self.clock.now()))
            server.start(self.clock)
            self._agents = processes.start_agents(
                self.fed, root, self.clock, manifest_url=server.url + "/manifest",
                poll_seconds=plan.poll_seconds, housekeeping_seconds=plan.housekeeping_seconds,
            )  # fmt: skip
            self.say(f"soak: {len(self._agents)} agents ready on federation day "
                     f"{self.day():.1f}; {plan.steps} steps of {plan.step_hours:g} h")  # fmt: skip
            yield
        finally:
            self._pool.shutdown()
            self.problems += processes.stop_agents(self._agents)
            server.stop()
            tools_federation.remove(self.fed, self.broker)

    def manifest(self) -> Manifest:
        """The federation directory's current manifest, verified."""
        return load_manifest(self.fed.layout)

    def isa_broker(self, *argv: str) -> str:
        """One ``isa-broker`` command in this process under the fake clock; its output. A
        failure is a problem of the run (the scheduled jobs must never fail)."""
        return self._command("isa-broker", broker_cli.main, argv)

    def _command(self, program: str, main: CommandMain, argv: Sequence[str]) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main(list(argv), clock=self.clock.now)
        text = out.getvalue().strip()
        if text:
            with (self.root / "logs" / "jobs.log").open("a") as log:
                log.write(f"[day {self.day():.2f}] {program} {' '.join(argv[:2])}: {text}\n")
        self.monitoring[f"{program} {argv[0]} {argv[1] if program == 'isa-broker' else ''}"
                        .strip() + f": exit {code}"] += 1  # fmt: skip
        if code != 0:
            alerts = [line for line in text.splitlines() if not line.startswith(("ok", "  [ok]"))]
            self.problems.append(f"day {self.day():.1f}: {program} {' '.join(argv[:2])} "
                                 f"exited {code}: {' | '.join(alerts)[-400:]}")  # fmt: skip
        return text

    def watch(self) -> None:
        """Rule 5: the operator's monitoring, ``isa-broker keys report``, must stay quiet."""
        self.isa_broker("keys", "report", "--federation", str(self.fed.layout.root))

    def check_agents(self) -> None:
        """Rule 5: each agency's ``isa-agent check`` must pass (at the end of the run)."""
        for agency in self.fed.agencies:
            self._command("isa-agent", agent_cli.main, ("check", "--config", str(agency.config)))

    # --- step 2 -------------------------------------------------------------------------------

    def step(self, step: int) -> None:
        plan = self.plan
        start = self._built + plan.first_day * DAY
        self.clock.move_to(start + timedelta(hours=step * plan.step_hours))
        settled = time.monotonic() + plan.settle_seconds
        with self._timed("health"):
            self.sample_health()
        with self._timed("send"):
            self.send_all()
        with self._timed("drain"):
            self.drain()
        time.sleep(max(0.0, settled - time.monotonic()))
        with self._timed("jobs"):
            for job in SCHEDULED_JOBS:
                self.isa_broker(*job[:2], "--federation", str(self.fed.layout.root), *job[2:])
        with self._timed("events"):
            self.provoke(step)
        with self._timed("send"):
            self.send_all()
        with self._timed("catch-up"):
            self.catch_up()
            self.watch_revocation(within=0)
        self.figures.steps = step
        if step % max(1, round(plan.watch_every_days * 24 / plan.step_hours)) == 0:
            with self._timed("watch"):
                self.watch()
        every = max(1, round(plan.progress_every_days * 24 / plan.step_hours))
        if step % every == 0 or step == plan.steps:
            self.progress()

    def progress(self) -> None:
        ledger, spent = self.ledger, ", ".join(f"{k} {v:.0f}" for k, v in self.timings.items())
        self.say(
            f"day {self.day():6.1f}: accepted {len(ledger.accepted)}, delivered "
            f"{len(ledger.deliveries)}, refused {len(ledger.refused)}, serial "
            f"{self.manifest().serial}, health {dict(self.health)}; real s: {spent}"
        )

    @contextlib.contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.timings[phase] = self.timings.get(phase, 0.0) + time.monotonic() - began

    def provoke(self, step: int) -> None:
        done_at = step / self.plan.steps
        for event in EVENTS:
            at = event.at(self.plan)
            if at is None or at > done_at or event.name in self._done:
                continue
            self._done.add(event.name)
            happened, what = event.action(self)
            self.say(f"day {self.day():6.1f}: {event.name}: {what}")
            if event.name == "ISA version change":
                self.figures.isa_version_changes += int(happened)
                self.figures.isa_version_change_note = what
            else:
                self.figures.revocations += int(happened)

    def _each(self, call: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``call`` on every item at once (one HTTP call each, in worker threads)."""
        return list(self._pool.map(call, items))

    def send_all(self) -> None:
        self.send(*(flow for flow in FLOWS for _ in range(self.plan.per_flow)))

    def send(self, *flows: Flow) -> None:
        """Submit one referral on each of ``flows`` at once; record each answer (rule 1)."""
        requests = []
        for flow in flows:
            self._seed += 1
            requests.append((flow, flow.body(self._seed)))
        for (flow, _), (status, body) in zip(requests, self._each(self._submit, requests),
                                             strict=True):  # fmt: skip
            self._record(flow, status, body)

    def _submit(self, request: tuple[Flow, dict[str, Any]]) -> tuple[int, Any]:
        flow, body = request
        try:
            return self._agents[flow.sender].call("POST", "/v1/messages", body)
        except RunError as exc:
            return 0, {"type": f"unreachable: {exc}"}

    def _record(self, flow: Flow, status: int, body: Any) -> None:
        if status == 202:
            self.ledger.accept(str(body["id"]), flow.sender, flow.recipient)
            return
        problem = str(body.get("type")) if isinstance(body, dict) else f"HTTP {status}"
        held = self.provocation
        provoked = (held is not None and held.ended is None and flow.recipient == held.agency
                    and problem == KEY_UNAVAILABLE)  # fmt: skip
        self.ledger.refuse(Refusal(self.day(), flow.sender, flow.recipient, status, problem,
                                   provoked))  # fmt: skip

    def drain(self) -> None:
        """Read and acknowledge every recipient's new inbox items."""
        recipients = sorted({f.recipient for f in FLOWS})
        for agency, (items, problems) in zip(recipients, self._each(self._read_inbox, recipients),
                                             strict=True):  # fmt: skip
            for message_id, isa in items:
                self.ledger.deliver(message_id, agency, isa)
            self.problems += problems

    def _read_inbox(self, agency: str) -> tuple[list[tuple[str, str]], list[str]]:
        """One page of ``agency``'s inbox after its cursor, each item acknowledged: (message
        id, "ISA id version") of each item, and the problems met."""
        agent, problems = self._agents[agency], []
        status, page = agent.call("GET", f"/v1/inbox?after={self._cursors[agency]}&limit=500")
        if status != 200:
            return [], [f"day {self.day():.1f}: {agency} inbox answered {status}"]
        items = [(str(i["id"]), f"{i['isa']['id']} {i['isa']['version']}") for i in page["items"]]
        for message_id, _ in items:
            ack, _ = agent.call("POST", f"/v1/inbox/{message_id}/ack")
            if ack != 204:
                problems.append(f"{agency}: ack of {message_id} answered {ack}")
        self._cursors[agency] = int(page["next_cursor"])
        return items, problems

    def _healthz(self, agency: str) -> tuple[str, dict[str, Any]]:
        status, body = self._agents[agency].call("GET", "/healthz")
        return agency, body if isinstance(body, dict) else {"status": f"HTTP {status}"}

    def sample_health(self) -> None:
        """Each agent's ``/healthz``: ``fail_closed`` (or no answer) is a problem of the run;
        ``degraded`` is counted with its causes (a key just rotated and not published yet...)."""
        for agency, body in self._each(self._healthz, list(self._agents)):
            state = str(body.get("status"))
            self.health[state] += 1
            if state == "degraded":
                for cause in _degraded_causes(body):
                    self.health[f"degraded: {cause}"] += 1
            elif state != "ok":
                detail = json.dumps(body)[:400]
                self.problems.append(f"day {self.day():.1f}: {agency} /healthz {state} {detail}")

    def held_serials(self) -> dict[str, int | None]:
        serials: dict[str, int | None] = {}
        for agency, body in self._each(self._healthz, list(self._agents)):
            manifest = body.get("manifest")
            serials[agency] = manifest.get("serial") if isinstance(manifest, dict) else None
        return serials

    def catch_up(self, within: float = 20.0) -> None:
        """Rule 4: until serve has re-signed a manifest that is due, every agent's own current
        key is in the manifest it holds, and every agent holds the federation's newest serial."""
        deadline = time.monotonic() + within
        while True:
            due = resign_due(self.manifest().expires_at, self.clock.now(), RESIGN_BEFORE)
            newest = self.manifest().serial
            lagging = [
                agency for agency, body in self._each(self._healthz, list(self._agents))
                if (body.get("manifest") or {}).get("serial", 0) < newest
                or not (body.get("keys") or {}).get("valid")
            ]  # fmt: skip
            if not due and not lagging:
                return
            if time.monotonic() > deadline:
                what = "serve has not re-signed a due manifest" if due else ""
                what += f" {lagging} lag behind serial {newest} or their own key" if lagging else ""
                self.problems.append(f"day {self.day():.1f}: not caught up in {within:g}s:{what}")
                return
            time.sleep(0.1)

    def wait_all_hold(self, serial: int, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while any((s or 0) < serial for s in self.held_serials().values()):
            if time.monotonic() > deadline:
                self.problems.append(f"not every agent held serial {serial} within {within:g}s: "
                                     f"{self.held_serials()}")  # fmt: skip
                return
            time.sleep(0.1)

    def watch_revocation(self, within: float) -> None:
        """Until the revoked agency's new key is held by every agent (rule 1), sending to it
        every half second (provoked refusals, or 202s once the new key is out)."""
        held = self.provocation
        if held is None or held.ended is not None:
            return
        deadline = time.monotonic() + within
        flow = next(f for f in FLOWS if f.recipient == held.agency)
        while True:
            manifest = self.manifest()
            current = manifest.current_encryption_key(held.agency, self.clock.now())
            if (
                current is not None
                and current.kid != held.kid
                and all((s or 0) >= manifest.serial for s in self.held_serials().values())
            ):
                held.ended = time.monotonic()
                self.figures.revocation_window_seconds = held.ended - held.started
                self.say(f"day {self.day():6.1f}: {held.agency}'s new key {current.kid} held "
                         f"by every agent {held.ended - held.started:.1f} s after the "
                         "revocation")  # fmt: skip
                return
            if time.monotonic() > deadline:
                return
            self.send(flow)
            time.sleep(0.5)

    def quiesce(self, within: float = 60.0) -> None:
        """Until everything accepted so far has been delivered (rule 2)."""
        deadline = time.monotonic() + within
        while self.ledger.undelivered and time.monotonic() < deadline:
            self.drain()
            time.sleep(0.2)

    # --- step 3 -------------------------------------------------------------------------------

    def finish(self) -> None:
        self.quiesce(self.plan.drain_seconds)
        self.watch()
        self.check_agents()
        statuses: Counter[str] = Counter()
        for message_id, (sender, _) in self.ledger.accepted.items():
            status, body = self._agents[sender].call("GET", f"/v1/messages/{message_id}")
            statuses[str(body.get("status")) if status == 200 else f"HTTP {status}"] += 1
        self.figures.sender_statuses = dict(statuses)
        self.figures.receipts_delivered = statuses["delivered"]

    def gather(self, first_serial: int) -> None:
        """The figures from the ledger and the federation directory (step 3)."""
        fig, ledger, layout = self.figures, self.ledger, self.fed.layout
        fig.agencies, fig.first_day = len(AGENCIES), self.plan.first_day
        fig.days, fig.step_hours = fig.steps * self.plan.step_hours / 24, self.plan.step_hours
        fig.key_rotations_by_agency = {
            a: len(list(layout.announcements(a).glob("*.json"))) - 1 for a in AGENCIES
        }
        fig.key_rotations = sum(fig.key_rotations_by_agency.values())
        events = _renewal_events(layout.root / "renewals" / "audit.jsonl")
        issued = Counter(e["agency"] for e in events if e.get("event") == "issued")
        fig.agency_renewals_by_agency = {a: issued[a] for a in AGENCIES}
        fig.agency_renewals = sum(issued.values())
        fig.signer_renewals = sum(1 for e in events if e.get("event") == "signer_renewed")
        fig.manifest_serials = self.manifest().serial - first_serial
        resigns = layout.root / "resign-log.jsonl"
        fig.manifest_resigns = len(resigns.read_text().splitlines()) if resigns.exists() else 0
        fig.health_samples = dict(self.health)
        fig.monitoring = dict(self.monitoring)
        unprovoked = [r for r in ledger.refused if not r.provoked]
        fig.run_problems = list(self.problems) + [
            f"day {r.day:.1f}: {r.sender} -> {r.recipient} answered {r.status} {r.problem}"
            for r in unprovoked[:20]
        ]
        self.figures = ledger.counted(fig)


def _degraded_causes(body: dict[str, Any]) -> list[str]:
    """Why a ``/healthz`` answer is ``degraded`` (agent.service: health)."""
    causes = []
    if not body.get("broker", {}).get("connected", True):
        causes.append("broker unreachable")
    if not body.get("keys", {}).get("valid", True):
        causes.append("own new key not published yet")
    if body.get("manifest", {}).get("warning"):
        causes.append("manifest expiry warning")
    if body.get("unreachable_recipients"):
        causes.append("a recipient cannot be sent to")
    return causes


def _renewal_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
