"""The demo driver behind ``scripts/demo``: a whole local federation, end to end (SYNTHETIC only).

Steps, one progress line each: 1. build a dev federation in ``--dir`` (default ``.demo/``);
2. provision it on its own vhost; 3. start one ``isa-agent run`` process per agency (logs in
``DIR/logs/``) and wait for each ``/healthz``; 4. per scenario below, ask the sender's agent for
a preview, then submit (PERMIT -> 202; DENY and REVIEW -> 403, nothing sent); 5. wait for every
signed receipt, read each delivery from the recipient's inbox, print the table; 6. stop the
agents (SIGTERM, wait) and remove the vhost and its users, unless ``--keep``.

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
import ctypes
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # devtools/ is the checkout's tooling, not an installed package

from broker.commands.provision import provision_command  # noqa: E402
from broker.config import RabbitSettings, load_broker_config, render_broker_toml  # noqa: E402
from broker.devfed import DevFederation, create_dev_federation  # noqa: E402
from broker.fedstate import load_policies, load_state, publish_manifest, save_state  # noqa: E402
from devtools.management import Broker, BrokerApiError  # noqa: E402
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

STATE_FILE = "demo.json"  # {"vhost": ..., "pids": {agency: pid}}: marks a directory as a demo's


def _read_state(root: Path) -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads((root / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return state


def _write_state(root: Path, **update: Any) -> None:
    (root / STATE_FILE).write_text(json.dumps(_read_state(root) | update, indent=1) + "\n")


def _broker_from_env() -> tuple[str, str, str, str]:
    """(amqp base URL, management URL, admin user, admin password), as the tests read them."""
    amqp = urllib.parse.urlsplit(os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    base = f"{amqp.scheme}://{amqp.hostname or '127.0.0.1'}:{amqp.port or 5672}/"
    management = os.environ.get("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672")
    user = urllib.parse.unquote(amqp.username or "guest")
    return base, management, user, urllib.parse.unquote(amqp.password or "guest")


def _clear_dir(root: Path, force: bool) -> None:
    """Replace a finished demo; a running one or a foreign directory only with ``--force``."""
    if not root.exists() or not any(root.iterdir()):
        return
    state = _read_state(root)
    running = [pid for pid in state.get("pids", {}).values() if _alive(pid, root)]
    if running and not force:
        raise DemoError(f"{root} holds a federation still running (--keep): stop it with "
                        f"scripts/demo --stop --dir {root}, or pass --force")  # fmt: skip
    if not state and not force:
        raise DemoError(f"{root} exists and was not made by the demo; pass --force to replace it")
    if state:
        stop_agents(root)
        remove_from_broker(root)
    shutil.rmtree(root)


def _own_broker_users(fed: DevFederation, vhost: str) -> int:
    """Rename every agency's broker user to ``<vhost>.<agency>``; publish the next manifest."""
    layout, users = fed.layout, {a.id: f"{vhost}.{a.id}" for a in fed.agencies}
    state = load_state(layout)
    renamed = tuple(a.model_copy(update={"broker_user": users[a.id]}) for a in state.agencies)
    save_state(layout, state.model_copy(update={"agencies": renamed}))
    config = load_broker_config(layout.broker_toml)
    entries = tuple(a.model_copy(update={"broker_user": users[a.id]}) for a in config.agencies)
    layout.broker_toml.write_text(
        render_broker_toml(config.model_copy(update={"agencies": entries}))
    )
    for agency in fed.agencies:
        text = agency.config.read_text()
        agency.config.write_text(text.replace(f'\nuser = "{agency.id}"\n',
                                              f'\nuser = "{users[agency.id]}"\n'))  # fmt: skip
    serial, _ = publish_manifest(layout, datetime.now(UTC))
    return serial


_LISTEN = re.compile(r'^listen = "127\.0\.0\.1:(\d+)"$', re.MULTILINE)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _listen_on_free_ports(fed: DevFederation) -> None:
    """Keep each agent's dev port (8441...) when free; otherwise move it to a free one."""
    for agency in fed.agencies:
        text = agency.config.read_text()
        match = _LISTEN.search(text)
        if match is None or _port_free(int(match[1])):
            continue
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        agency.config.write_text(_LISTEN.sub(f'listen = "127.0.0.1:{port}"', text))


def build_federation(
    root: Path, policies: Path, vhost: str, step: Callable[[str], None]
) -> DevFederation:
    """Steps 1-2: a fresh dev federation in ``root`` (cleared), provisioned on a fresh vhost."""
    amqp, management, admin, password = _broker_from_env()
    fed = create_dev_federation(
        root, policies=policies, now=datetime.now(UTC), amqp_url=amqp, vhost=vhost,
        management_url=management, admin_user=admin, admin_password=password,
    )  # fmt: skip
    _write_state(root, vhost=vhost, pids={})
    serial = _own_broker_users(fed, vhost)
    _listen_on_free_ports(fed)
    step(f"dev federation in {root}: {len(fed.agencies)} agencies, {len(fed.isas)} ISAs, "
         f"signed manifest serial {serial}")  # fmt: skip
    _broker(broker_settings(root)).discard_vhost(vhost)
    out = io.StringIO()
    if provision_command(fed.layout.broker_toml, dry_run=False, environ={}, out=out) != 0:
        raise DemoError(f"provisioning failed:\n{out.getvalue()}")
    summary = out.getvalue().splitlines()[0].split(": ", 1)[-1]
    step(f"provisioned RabbitMQ vhost {vhost} ({summary}: queues, users, permissions)")
    return fed


def broker_settings(root: Path) -> RabbitSettings:
    return load_broker_config(root / "broker.toml").rabbitmq


def _broker(rabbit: RabbitSettings) -> Broker:
    """The broker of ``broker.toml``, administered as its admin user."""
    return Broker(rabbit.amqp_url, rabbit.management_url, rabbit.admin_user,
                  rabbit.admin_password)  # fmt: skip


def remove_from_broker(root: Path) -> None:
    """Delete the demo's vhost and its ``<vhost>.<agency>`` users (never anyone else's)."""
    if not _read_state(root) or not (root / "broker.toml").exists():
        return  # not a directory the demo made
    config = load_broker_config(root / "broker.toml")
    rabbit, broker = config.rabbitmq, _broker(config.rabbitmq)
    broker.discard_vhost(rabbit.vhost)
    for agency in config.agencies:
        if agency.broker_user.startswith(rabbit.vhost + "."):
            broker.discard_user(agency.broker_user)


# --- the agents: start, wait for /healthz, call, stop --------------------------------------

_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass
class Agent:
    """One ``isa-agent run`` process and the case system's view of its API."""

    id: str
    url: str
    token: str
    log: Path

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return int(response.status), _json(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _json(exc.read())
        except (urllib.error.URLError, OSError) as exc:
            raise DemoError(f"agent {self.id} at {self.url}: {exc} (log: {self.log})") from None


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


def _alive(pid: int, root: Path) -> bool:
    """Is ``pid`` still one of this demo's agents (not a zombie, not a recycled pid)?"""
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # gone (or no /proc: then only the agents of this very run are known)
    zombie = stat.rsplit(")", 1)[-1].split()[0] == "Z"
    return not zombie and b"isa-agent" in cmdline and str(root).encode() in cmdline


def _term_with_parent() -> None:
    """In the child, before exec: SIGTERM it when the driver dies, even by SIGKILL (Linux)."""
    _unblock_signals()
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _unblock_signals() -> None:
    """In the child, before exec: the driver holds SIGINT and SIGTERM while it spawns (see
    ``start_agents``), and a child inherits that mask; the agent must receive them."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _spawn(config: Path, log: Path, keep: bool) -> int:
    executable = Path(sys.executable).parent / "isa-agent"
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - our own console script, no shell
            [str(executable), "run", "--config", str(config)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the driver, which stops them in order
            preexec_fn=_unblock_signals if keep else _term_with_parent,
        )  # fmt: skip
    _CHILDREN[process.pid] = process
    return process.pid


def _tail(log: Path, lines: int = 6) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _healthy(agent: Agent, pid: int, root: Path) -> bool:
    if not _alive(pid, root):
        raise DemoError(
            f"agent {agent.id} exited during start-up; {agent.log}:\n{_tail(agent.log)}"
        )
    try:
        status, _ = agent.call("GET", "/healthz")
    except DemoError:
        return False
    return status == 200


def start_agents(fed: DevFederation, root: Path, timeout: float, keep: bool) -> dict[str, Agent]:
    """Step 3: one process per agency, pids recorded at once; wait until every /healthz is ok."""
    (root / "logs").mkdir(exist_ok=True)
    agents, pids = {}, {}
    for agency in fed.agencies:
        port = _LISTEN.search(agency.config.read_text())
        url = f"http://127.0.0.1:{port[1]}" if port else agency.api_url
        log = root / "logs" / f"{agency.id}.log"
        agents[agency.id] = Agent(agency.id, url, agency.api_token, log)
        # Ctrl-C or SIGTERM between the spawn and the record would leave an agent nobody stops
        # (the clean-up stops the recorded ones): hold both signals until it is recorded.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            pids[agency.id] = _spawn(agency.config.resolve(), log, keep)
            _write_state(root, pids=pids)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
    deadline, waiting = time.monotonic() + timeout, set(agents)
    while waiting:
        waiting = {a for a in waiting if not _healthy(agents[a], pids[a], root)}
        if waiting and time.monotonic() > deadline:
            raise DemoError(f"no healthy /healthz within {timeout:.0f}s from: "
                            f"{', '.join(sorted(waiting))} (logs in {root / 'logs'})")  # fmt: skip
        time.sleep(0.1 if waiting else 0)
    return agents


def stop_agents(root: Path, grace: float = 15.0) -> int:
    """SIGTERM every recorded agent that is still ours, wait for it to drain; returns how many."""
    pids = [pid for pid in _read_state(root).get("pids", {}).values() if _alive(pid, root)]
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(_alive(pid, root) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    stubborn = [pid for pid in pids if _alive(pid, root)]
    for pid in stubborn:
        os.kill(pid, signal.SIGKILL)
    for pid in pids:
        child = _CHILDREN.pop(pid, None)
        if child is not None:
            child.wait()
    _write_state(root, pids={})
    if stubborn:
        raise DemoError(f"agents {stubborn} ignored SIGTERM for {grace:.0f}s and were killed")
    return len(pids)


# --- talking to the agents --------------------------------------------------------------


def _body(scenario: Scenario, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 - seeds synthetic data, nothing secret
    payload = generate_referral(scenario.type, rng, risk_level=scenario.risk, edge=scenario.edge)
    return {
        "to": scenario.to, "isa": scenario.isa, "purpose": scenario.purpose,
        "type": scenario.type, "payload": payload, "idempotency_key": f"SYN-demo-{seed}",
    }  # fmt: skip


def send_one(agents: dict[str, Agent], scenario: Scenario, seed: int) -> Sent:
    """Preview, then submit; the row records the decision and what happened to the submit."""
    sender, body = agents[scenario.sender], _body(scenario, seed)
    status, preview = sender.call("POST", "/v1/messages/preview", body)
    if status != 200:
        raise DemoError(f"preview by {scenario.sender} answered {status}: {preview}")
    row = Row.of(scenario, preview)
    sent = Sent(scenario, row, body["payload"], shared=set(preview["shared_fields"]))
    status, answer = sender.call("POST", "/v1/messages", body)
    if status == 202:
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
        sent.row.problem = f"{agent.id} received {len(got)} fields, preview promised"
        sent.row.problem += f" {len(sent.shared)}"


def collect_inbox(agent: Agent, wanted: dict[str, Sent], deadline: float) -> None:
    """Read (and acknowledge) the recipient's deliveries; check each holds what was shared."""
    cursor, missing = 0, set(wanted)
    while missing and time.monotonic() < deadline:
        status, page = agent.call("GET", f"/v1/inbox?after={cursor}&limit=500")
        if status != 200:
            raise DemoError(f"inbox of {agent.id} answered {status}: {page}")
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
        wanted[message_id].row.problem = f"never reached the inbox of {agent.id}"


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
    if preview["decision"] != "PERMIT":
        said = [r for r in preview["reasons"] if not re.match(r"^\d+ fields shared", r)]
        return f"{note}{said[-1] if said else preview['decision']} Nothing is sent."
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
        f"{len(rows)} synthetic referrals: {count['PERMIT']} PERMIT ({delivered} delivered "
        f"with a verified signed receipt, each recipient holding exactly the previewed "
        f"fields), {count['REVIEW']} REVIEW and {count['DENY']} DENY (refused, nothing sent)."
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
        print(f"  {agent.id:<20} {agent.url:<24} {root / 'agencies' / agent.id / 'api-token'}")
    first = next(iter(agents.values()))
    token = root / "agencies" / first.id / "api-token"
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
    except (DemoError, IsaRelayError, OSError) as exc:
        print(f"cleaning up also failed: {exc}", file=sys.stderr)


def run(opts: argparse.Namespace) -> int:
    """The whole demo; on any failure the agents are stopped and the vhost removed."""
    progress, root = Progress(steps=6), opts.dir.resolve()
    _clear_dir(root, opts.force)  # refuses before anything of ours exists to clean up
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
    if not _read_state(root):
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
    except (DemoError, BrokerApiError) as exc:
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
