"""The demo driver behind ``scripts/demo``: a whole local federation, end to end (SYNTHETIC only).

Steps, one progress line each: 1. build a dev federation in ``--dir`` (default ``.demo/``);
2. provision it on its own vhost; 3. start one ``isa-agent run`` process per agency (logs in
``DIR/logs/``) and wait for each ``/healthz``; 4. per scenario below, ask the sender's agent for
a preview, then submit (PERMIT -> 202; DENY -> 403, nothing sent; REVIEW -> 202 held unsent,
then approved by a second person holding the ISA's reviewer role, which sends it); 5. wait for every
signed receipt, read each delivery from the recipient's inbox, print the table; 6. stop the
agents (SIGTERM, wait) and remove the vhost and its users, unless ``--keep``.

This file holds the scenarios and the table; building the federation, starting and stopping
the agents and the broker plumbing are :mod:`devtools.localfed` (over :mod:`devtools.launcher`
and :mod:`devtools.management`, which the benchmarks and the tests use too).

Rules:
1. It drives the agents only through their local HTTP API, as an agency's case system would.
2. It stops only the processes it started, by the pids it recorded in ``DIR/demo.json``
   (and only while their command line still names DIR).
3. Its broker users are named ``<vhost>.<agency>`` (RabbitMQ users are broker-wide), so the demo
   never changes the password of another federation's user on the same broker.
4. Every failure ends with ``demo failed: <what>`` and exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # devtools/ is the checkout's tooling, not an installed package

from broker.fedstate import load_policies  # noqa: E402
from devtools.launcher import LaunchError  # noqa: E402
from devtools.localfed import (  # noqa: E402
    Agent,
    RunError,
    broker_settings,
    build_federation,
    clear_dir,
    read_state,
    remove_from_broker,
    start_agents,
    stop_agents,
)
from devtools.management import BrokerApiError  # noqa: E402
from federation.errors import IsaRelayError  # noqa: E402
from federation.isa import Flow  # noqa: E402
from federation.referrals import RiskLevel  # noqa: E402
from federation.synth import generate_referral  # noqa: E402

__all__ = ["SCENARIOS", "Scenario", "all_scenarios", "main"]


@dataclass(frozen=True)
class Scenario:
    """One synthetic referral and the decision the shipped ISAs must reach for it."""

    sender: str
    to: str
    isa: str
    purpose: str
    type: str
    risk: RiskLevel
    expect: str | None  # None: a flow added to policies/ after this list was written
    edge: str | None = None

    def covers(self, isa: str, flow: Flow, message_type: str) -> bool:
        return (self.isa, self.purpose, self.type) == (isa, flow.purpose, message_type) and (
            self.sender in flow.sender and self.to in flow.to
        )


_MARAC = ("isa-marac-referrals", "marac_risk_management", "marac_referral")
_CONCERN_ASSIST = ("isa-police-assist-advocacy", "advocacy_after_charge", "police_concern")
_SUPPORT_ASSIST = ("isa-police-assist-advocacy", "advocacy_after_charge", "support_referral")
_CONCERN_SW = ("isa-police-council-concerns", "child_and_adult_protection", "police_concern")
_WA_POLICE = ("isa-womens-aid-police", "report_to_police", "support_referral")
_CALEDONIAN = ("isa-caledonian-partner-contact", "partner_safety", "caledonian_partner_contact")
_MC, _PS = "marac-coordinator", "police-scotland"

#: Every flow of every ISA in policies/, at the risk levels that show the differences.
SCENARIOS: tuple[Scenario, ...] = (
    Scenario(_PS, _MC, *_MARAC, "high", "PERMIT"),
    Scenario("council-sw", _MC, *_MARAC, "medium", "REVIEW"),
    Scenario("health-board", _MC, *_MARAC, "standard", "DENY"),
    Scenario("assist", _MC, *_MARAC, "high", "PERMIT", "refuge_address"),
    Scenario("womens-aid", _MC, *_MARAC, "high", "PERMIT", "victim_not_aware"),
    Scenario(_PS, "assist", *_CONCERN_ASSIST, "standard", "PERMIT"),
    Scenario(_PS, "assist", *_CONCERN_ASSIST, "high", "PERMIT"),
    Scenario(_PS, "assist", *_SUPPORT_ASSIST, "medium", "PERMIT", "refuge_address"),
    Scenario(_PS, "council-sw", *_CONCERN_SW, "standard", "PERMIT"),
    Scenario(_PS, "council-sw", *_CONCERN_SW, "medium", "PERMIT"),
    Scenario(_PS, "council-sw", *_CONCERN_SW, "high", "PERMIT"),
    Scenario("womens-aid", _PS, *_WA_POLICE, "medium", "PERMIT"),
    Scenario("womens-aid", _PS, *_WA_POLICE, "high", "DENY", "victim_not_aware"),
    Scenario("caledonian-mens", "caledonian-womens", *_CALEDONIAN, "standard", "PERMIT"),
    Scenario("caledonian-mens", "caledonian-womens", *_CALEDONIAN, "high", "PERMIT"),
)  # fmt: skip


def all_scenarios(policies: Path) -> tuple[Scenario, ...]:
    """SCENARIOS plus one high-risk referral for every (ISA, flow, type) that they miss."""
    extra = [
        Scenario(flow.sender[0], flow.to[0], isa.id, flow.purpose, kind, "high", None)
        for isa in load_policies(policies)
        for flow in isa.doc.flows
        for kind in flow.message_types
        if not any(s.covers(isa.id, flow, kind) for s in SCENARIOS)
    ]
    return SCENARIOS + tuple(extra)


class Progress:
    """One numbered line per step, flushed at once (the demo may run under a pipe)."""

    def __init__(self, steps: int) -> None:
        self.steps, self.done, self.started = steps, 0, time.monotonic()

    def step(self, text: str) -> None:
        self.done += 1
        self.say(f"[{self.done}/{self.steps}] {text}")

    def say(self, text: str) -> None:
        print(f"{time.monotonic() - self.started:6.1f}s  {text}", flush=True)


@dataclass
class Sent:
    scenario: Scenario
    row: Row
    payload: dict[str, Any]
    id: str | None = None
    shared: set[str] = field(default_factory=set)


class DemoError(Exception):
    """A step of the demo failed; the message says which and why."""


# --- the federation: build, own broker users, free ports, provision -----------------------

# --- talking to the agents --------------------------------------------------------------


def _body(scenario: Scenario, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 - seeds synthetic data, nothing secret
    payload = generate_referral(scenario.type, rng, risk_level=scenario.risk, edge=scenario.edge)
    return {
        "to": scenario.to, "isa": scenario.isa, "purpose": scenario.purpose,
        "type": scenario.type, "payload": payload, "idempotency_key": f"SYN-demo-{seed}",
    }  # fmt: skip


#: The people acting in the demo's case systems (synthetic staff ids): who submits, who reviews.
SUBMITTER = {"X-Actor-Id": "SYN-practitioner-1", "X-Actor-Role": "practitioner"}
REVIEWER_ID = "SYN-reviewer-2"


def approve(sender: Agent, review_id: str, row: Row) -> str:
    """A second person, holding the reviewer role the ISA names, approves a held referral;
    returns the id of the message it sent."""
    status, review = sender.call("GET", f"/v1/reviews/{review_id}")
    if status != 200:
        raise DemoError(f"review {review_id} answered {status}: {review}")
    role = review["reviewer_role"]
    reviewer = {"X-Actor-Id": REVIEWER_ID, "X-Actor-Role": role}
    why = {"justification": "SYN: demo approval by a second person"}
    status, approved = sender.call("POST", f"/v1/reviews/{review_id}/approve", why, reviewer)
    if status != 200:
        raise DemoError(f"approval of review {review_id} answered {status}: {approved}")
    row.why += f" Held for review; approved by a second person ({role}) and sent"
    return str(approved["message_id"])


def send_one(agents: dict[str, Agent], scenario: Scenario, seed: int) -> Sent:
    """Preview, then submit (a held referral is then approved by a second person); the row
    records the decision and what happened to the submit."""
    sender, body = agents[scenario.sender], _body(scenario, seed)
    status, preview = sender.call("POST", "/v1/messages/preview", body)
    if status != 200:
        raise DemoError(f"preview by {scenario.sender} answered {status}: {preview}")
    row = Row.of(scenario, preview)
    sent = Sent(scenario, row, body["payload"], shared=set(preview["shared_fields"]))
    status, answer = sender.call("POST", "/v1/messages", body, SUBMITTER)
    if status == 202 and answer["status"] == "review_pending":
        sent.id, row.delivery = approve(sender, answer["id"], row), "approved"
    elif status == 202:
        sent.id, row.delivery = answer["id"], answer["status"]
    elif status == 403:
        row.delivery, row.receipt = "refused (403)", "nothing sent"
    else:
        raise DemoError(f"submit by {scenario.sender} answered {status}: {answer}")
    if scenario.expect is not None and row.decision != scenario.expect:
        row.problem = f"expected {scenario.expect}, the ISA said {row.decision}"
    return sent


def await_receipt(agents: dict[str, Agent], sent: Sent, deadline: float) -> None:
    """Poll the sender until the message is delivered or rejected; record the receipt."""
    while True:
        status, body = agents[sent.scenario.sender].call("GET", f"/v1/messages/{sent.id}")
        if status == 200 and body["status"] in {"delivered", "rejected", "expired"}:
            break
        if time.monotonic() > deadline:
            sent.row.problem = f"still {body.get('status', status)} at the deadline"
            return
        time.sleep(0.05)
    sent.row.delivery = body["status"]
    receipt = body.get("receipt")
    if receipt is None:
        sent.row.receipt = "none"
    else:
        verified = "verified" if receipt["verified"] else "NOT VERIFIED"
        sent.row.receipt = f"{receipt['status']}, {verified}"
    if body["status"] != "delivered" or receipt is None or not receipt["verified"]:
        sent.row.problem = f"not delivered with a verified receipt: {body['status']}"


def _leaves(payload: dict[str, Any], prefix: str = "") -> dict[str, list[Any]]:
    """Catalogue-style leaf paths (lists of objects as ``[]``) and the values found at each."""
    leaves: dict[str, list[Any]] = {}
    for key, value in payload.items():
        path = prefix + key
        if isinstance(value, dict):
            _merge(leaves, _leaves(value, path + "."))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                _merge(leaves, _leaves(item, path + "[]."))
        elif value is not None:
            leaves.setdefault(path, []).append(value)
    return leaves


def _merge(into: dict[str, list[Any]], more: dict[str, list[Any]]) -> None:
    for path, values in more.items():
        into.setdefault(path, []).extend(values)


def _check_delivery(agent: Agent, sent: Sent, payload: dict[str, Any]) -> None:
    """The recipient holds exactly the previewed fields; name those it got in a general form."""
    got, original = _leaves(payload), _leaves(sent.payload)
    generalised = sorted(path for path in got if got[path] != original.get(path))
    if generalised:
        sent.row.why += f"; generalised: {', '.join(generalised)}"
    if set(got) != sent.shared:
        sent.row.problem = f"{agent.agency} received {len(got)} fields, preview promised"
        sent.row.problem += f" {len(sent.shared)}"


def collect_inbox(agent: Agent, wanted: dict[str, Sent], deadline: float) -> None:
    """Read (and acknowledge) the recipient's deliveries; check each holds what was shared."""
    cursor, missing = 0, set(wanted)
    while missing and time.monotonic() < deadline:
        status, page = agent.call("GET", f"/v1/inbox?after={cursor}&limit=500")
        if status != 200:
            raise DemoError(f"inbox of {agent.agency} answered {status}: {page}")
        for item in page["items"]:
            agent.call("POST", f"/v1/inbox/{item['id']}/ack")
            sent = wanted.get(item["id"])
            if sent is None:
                continue
            missing.discard(item["id"])
            _check_delivery(agent, sent, item["payload"])
        cursor = page["next_cursor"]
        if not page["items"]:
            time.sleep(0.05)
    for message_id in missing:
        wanted[message_id].row.problem = f"never reached the inbox of {agent.agency}"


def exchange(
    agents: dict[str, Agent], scenarios: tuple[Scenario, ...], progress: Progress, timeout: float
) -> list[Sent]:
    """Steps 4-5: send every scenario, then wait for receipts and read the recipients' inboxes."""
    sent: list[Sent] = []
    for seed, scenario in enumerate(scenarios, start=1):
        item = send_one(agents, scenario, seed)
        row = item.row
        progress.say(f"  {seed:>2}/{len(scenarios)} {scenario.sender} -> {scenario.to}"
                     f" ({scenario.type}, {scenario.risk}): {row.decision}, {row.shared} shared,"
                     f" {row.withheld} withheld -> {row.delivery}")  # fmt: skip
        sent.append(item)
    progress.step("waiting for the signed receipts and the recipients' inboxes")
    deadline = time.monotonic() + timeout
    queued = [s for s in sent if s.id is not None]
    for item in queued:
        await_receipt(agents, item, deadline)
    for recipient in sorted({s.scenario.to for s in queued}):
        wanted = {s.id: s for s in queued if s.scenario.to == recipient and s.id}
        collect_inbox(agents[recipient], wanted, deadline)
    return sent


# --- the report -----------------------------------------------------------------------------

_SHORT = {
    "not needed for this purpose at this risk level": "not needed at this risk level",
    "this agreement expressly withholds this information": "expressly withheld by the ISA",
    "this information is never shared under any agreement": "never shared",
}
_NAMED = {"expressly withheld by the ISA", "never shared"}  # reasons shown with their paths
_EDGES = {"refuge_address": "refuge address in the referral", "victim_not_aware": "victim not told"}


def summarise_withheld(preview: dict[str, Any], edge: str | None) -> str:
    """The main reasons, plain: the ISA's own words for DENY/REVIEW, grouped counts for PERMIT."""
    note = f"[{_EDGES[edge]}] " if edge else ""
    if preview["decision"] == "DENY":
        said = [r for r in preview["reasons"] if not re.match(r"^\d+ fields shared", r)]
        return f"{note}{said[-1] if said else preview['decision']} Nothing is sent."
    if preview["decision"] == "REVIEW":
        said = [r for r in preview["reasons"] if not re.match(r"^\d+ fields shared", r)]
        return f"{note}{said[-1] if said else 'A person must review it.'}"
    groups: dict[str, list[str]] = {}
    for withheld in preview["withheld_fields"]:
        reason = _SHORT.get(withheld["reason"], withheld["reason"])
        groups.setdefault(reason, []).append(withheld["path"])
    parts = []
    for reason, paths in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        named = ", ".join(paths[:3]) + (f", +{len(paths) - 3}" if len(paths) > 3 else "")
        parts.append(f"{len(paths)} {reason}" + (f" ({named})" if reason in _NAMED else ""))
    return note + ("withheld: " + "; ".join(parts) if parts else "nothing withheld")


@dataclass
class Row:
    """One line of the table (and the line of reasons under it)."""

    route: str
    isa: str
    type: str
    risk: str
    decision: str
    shared: int
    withheld: int
    why: str
    delivery: str = "-"
    receipt: str = "-"
    problem: str = ""

    @classmethod
    def of(cls, scenario: Scenario, preview: dict[str, Any]) -> Row:
        return cls(
            route=f"{scenario.sender} -> {scenario.to}", isa=scenario.isa, type=scenario.type,
            risk=scenario.risk, decision=preview["decision"],
            shared=len(preview["shared_fields"]), withheld=len(preview["withheld_fields"]),
            why=summarise_withheld(preview, scenario.edge),
        )  # fmt: skip

    def cells(self, number: int) -> tuple[str, ...]:
        return (str(number), self.route, self.isa, self.risk, self.decision, str(self.shared),
                str(self.withheld), self.delivery, self.receipt)  # fmt: skip


_HEADINGS = ("#", "sender -> recipient", "ISA", "risk", "decision", "shared", "withheld",
             "delivery", "receipt")  # fmt: skip
_RIGHT = {0, 5, 6}  # right-aligned columns


def print_table(rows: list[Row]) -> None:
    """The table, each row followed by its message type and the reasons for what was withheld."""
    lines = [_HEADINGS, *(row.cells(i) for i, row in enumerate(rows, 1))]
    widths = [max(len(line[c]) for line in lines) for c in range(len(_HEADINGS))]
    print()
    for n, cells in enumerate(lines):
        text = [
            c.rjust(w) if i in _RIGHT else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        print("  ".join(text).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
        else:
            row = rows[n - 1]
            pad = " " * (widths[0] + 2)
            width = max(100, sum(widths) + 2 * len(widths))
            print(textwrap.fill(f"{row.type}: {row.why}", width, initial_indent=pad,
                                subsequent_indent=pad + "  ", break_on_hyphens=False))  # fmt: skip
            if row.problem:
                print(f"{'':>{widths[0]}}  PROBLEM: {row.problem}")
    print()
    print(_totals(rows))


def _totals(rows: list[Row]) -> str:
    count = {d: sum(1 for r in rows if r.decision == d) for d in ("PERMIT", "REVIEW", "DENY")}
    delivered = sum(
        1 for r in rows if r.delivery == "delivered" and r.receipt.endswith(" verified")
    )
    return (
        f"{len(rows)} synthetic referrals: {count['PERMIT']} PERMIT and {count['REVIEW']} REVIEW "
        f"(held, then approved by a second person; {delivered} delivered with a verified "
        f"signed receipt, each recipient holding exactly the previewed fields) and "
        f"{count['DENY']} DENY (refused, nothing sent)."
    )


# --- the run -----------------------------------------------------------------------------


def _options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/demo",
        description="Run a whole local ISA Relay federation and send synthetic referrals "
        "across every ISA in policies/ (all data synthetic).",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(os.environ.get("ISA_DEMO_DIR", ".demo")),
        help="where the federation goes (default .demo, or $ISA_DEMO_DIR)",
    )
    parser.add_argument(
        "--vhost",
        default=os.environ.get("ISA_DEMO_VHOST", "isa-relay-demo"),
        help="RabbitMQ vhost of the demo (default isa-relay-demo)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace DIR even if it is not a finished demo (stops its agents)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the federation running; stop it later with --stop",
    )
    parser.add_argument(
        "--stop",
        action="store_true",
        help="stop a federation left running by --keep, and remove its vhost",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds to wait for agents, receipts and inboxes (default 30)",
    )
    return parser.parse_args(argv)  # fmt: skip


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the agents are always stopped on the way out."""

    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_keep(agents: dict[str, Agent], root: Path) -> None:
    print("\nThe federation is still running (--keep). Each agent's API, with its token file:")
    for agent in agents.values():
        token = root / "agencies" / agent.agency / "api-token"
        print(f"  {agent.agency:<20} {agent.url:<24} {token}")
    first = next(iter(agents.values()))
    token = root / "agencies" / first.agency / "api-token"
    print(f'\nTry:  curl -H "Authorization: Bearer $(cat {token})" {first.url}/v1/isas')
    print(f"      {first.url}/v1/openapi.json  (the API's OpenAPI document)")
    print(f"Stop: scripts/demo --stop --dir {root}")


def _exchange_all(opts: argparse.Namespace, root: Path, progress: Progress) -> dict[str, Agent]:
    """Steps 1-5 and the table; raises DemoError if any referral did not behave as expected."""
    fed = build_federation(root, REPO / "policies", opts.vhost, progress.step)
    progress.step(f"starting {len(fed.agencies)} agents (logs in {root / 'logs'})")
    agents = start_agents(fed, root, timeout=opts.timeout, keep=opts.keep)
    progress.say(f"  all {len(agents)} agents report /healthz ok")
    scenarios = all_scenarios(fed.layout.policies)
    progress.step(f"sending {len(scenarios)} synthetic referrals across every ISA flow")
    sent = exchange(agents, scenarios, progress, opts.timeout)
    print_table([s.row for s in sent])
    problems = [f"#{i} {s.row.problem}" for i, s in enumerate(sent, 1) if s.row.problem]
    if problems:
        raise DemoError("; ".join(problems))
    return agents


def _clean_up_after_failure(root: Path) -> None:
    """Stop whatever started and remove the vhost; a second failure must not hide the first."""
    try:
        stop_agents(root)
        remove_from_broker(root)
    except (DemoError, RunError, LaunchError, IsaRelayError, OSError) as exc:
        print(f"cleaning up also failed: {exc}", file=sys.stderr)


def run(opts: argparse.Namespace) -> int:
    """The whole demo; on any failure the agents are stopped and the vhost removed."""
    progress, root = Progress(steps=6), opts.dir.resolve()
    clear_dir(root, opts.force)  # refuses before anything of ours exists to clean up
    try:
        agents = _exchange_all(opts, root, progress)
    except BaseException:
        _clean_up_after_failure(root)
        raise
    if opts.keep:
        _print_keep(agents, root)
        progress.say("demo finished: every referral behaved as its ISA says")
        return 0
    progress.step("stopping the agents (SIGTERM) and removing the demo vhost")
    stop_agents(root)
    remove_from_broker(root)
    progress.say("demo finished: every referral behaved as its ISA says; nothing left running")
    return 0


def stop(opts: argparse.Namespace) -> int:
    """``--stop``: stop what ``--keep`` left running and remove the demo's vhost and users."""
    root = opts.dir.resolve()
    if not read_state(root):
        raise DemoError(f"{root} holds no demo federation: nothing to stop")
    stopped = stop_agents(root)
    remove_from_broker(root)
    print(f"stopped {stopped} agent(s) of {root}; removed vhost {broker_settings(root).vhost}")
    return 0


def main(argv: list[str] | None = None) -> int:
    opts = _options(argv)
    try:
        with _terminate_as_interrupt():
            return stop(opts) if opts.stop else run(opts)
    except (DemoError, RunError, LaunchError, BrokerApiError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
    except IsaRelayError as exc:
        print(f"demo failed: {exc.diagnostics()}", file=sys.stderr)
    except OSError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("demo interrupted; agents stopped", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
