"""A new agency joins a running federation the production way: README, "Deploy an agent".

Every step runs the real ``isa-agent`` / ``isa-broker`` console scripts as processes, with no
DEV-only option: the agency makes its keys (or imports an openssl-made PEM key) with
``isa-agent init``, the operator certifies its request, publishes its announcement and
provisions the broker, and the new agent (``isa-agent run``, a real process on the real
RabbitMQ, manifest from ``isa-broker serve``) receives a referral from an existing agency.

The existing federation is a dev one (``broker.devfed.create_dev_federation``, what
``isa-broker dev-federation --agencies police-scotland`` runs, with broker users prefixed so
that concurrent tests never share one). ``assist`` is named by ``isa-police-assist-advocacy``
but left out of it, so the ISA is published only once ``assist`` has joined.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config import load_settings
from broker.devfed import DevFederation
from devtools.launcher import AgentProcess, free_port
from federation.pki import certificate_from_bytes, certificate_public_key
from federation.synth import generate_referral
from tests.support.federation import (
    AgentHandle,
    build_federation,
    leaf_paths,
    remove_federation,
    running_agents,
    vhost_of,
)
from tests.support.rabbitmq import RabbitServer

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

BIN = Path(sys.executable).parent
NEW, EXISTING = "assist", "police-scotland"
ISA, PURPOSE = "isa-police-assist-advocacy", "advocacy_after_charge"


def run(*argv: str, env: dict[str, str] | None = None) -> str:
    """One console script as a process (exactly what an operator types); its stdout."""
    done = subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True,
        timeout=120, env={**_env(), **(env or {})},
    )  # fmt: skip
    said = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(argv)} -> {done.returncode}:\n{said}"
    return done.stdout


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ISA_AGENT_")}


@dataclass
class Handover:
    """What the operator gives the agency before ``isa-agent init`` (step 1)."""

    root_certificate: Path
    root_fingerprint: str
    broker_url: str
    broker_user: str
    manifest_url: str
    policies: Path


def openssl_fingerprint(cert: Path) -> str:
    """``openssl x509 -fingerprint -sha256`` as an operator would run it (AB:CD:.. form)."""
    out = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-fingerprint", "-sha256"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return out.strip().split("=", 1)[1]


def openssl_ed25519_key(pem: Path) -> Path:
    """What the agency's IT runs: ``openssl genpkey -algorithm ed25519`` (PKCS#8 PEM)."""
    if shutil.which("openssl"):
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(pem)],
                       check=True)  # fmt: skip
    else:  # the same PKCS#8 PEM openssl writes
        pem.write_bytes(Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))  # fmt: skip
    return pem


def operator_handover(fed: DevFederation, manifest_url: str) -> Handover:
    """Step 1 (operator): the root certificate and its fingerprint, the broker, the manifest."""
    shown = run("isa-broker", "manifest", "show", "--federation", str(fed.layout.root))
    fingerprint = re.search(r"root fingerprint ([0-9a-f]{64})", shown)
    assert fingerprint is not None, shown
    user = fed.agency(EXISTING).broker_user.removesuffix(EXISTING) + NEW  # this run's prefix
    return Handover(
        fed.layout.root_cert, fingerprint[1],
        f"amqp://127.0.0.1:5672/{vhost_of(fed)}", user, manifest_url, fed.layout.policies,
    )  # fmt: skip


@pytest.fixture
def federation(tmp_path: Path, rabbit_server: RabbitServer) -> Iterator[DevFederation]:
    """The existing federation (police-scotland only), provisioned; cleaned up with ``assist``."""
    fed = build_federation(tmp_path / "federation", rabbit_server, agencies=[EXISTING])
    try:
        yield fed
    finally:
        remove_federation(fed, rabbit_server)
        rabbit_server.discard_user(fed.agency(EXISTING).broker_user.removesuffix(EXISTING) + NEW)


@pytest.fixture
def manifest_server(federation: DevFederation, tmp_path: Path) -> Iterator[str]:
    """``isa-broker serve`` for the federation; its manifest URL."""
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [str(BIN / "isa-broker"), "serve", "--federation", str(federation.layout.root),
         "--listen", f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT, env=_env(),
    )  # fmt: skip
    try:
        wait_serving(f"http://127.0.0.1:{port}/healthz", server)
        yield f"http://127.0.0.1:{port}/manifest"
    finally:
        server.terminate()
        server.wait(10)
        log.close()


def wait_serving(url: str, server: subprocess.Popen[bytes], within: float = 20) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"isa-broker serve not answering {url}")


def agency_init(home: Path, handover: Handover, *extra: str) -> tuple[Path, str]:
    """Step 2 (agency IT): ``isa-agent init``; the config and the case system's token."""
    out = run(
        "isa-agent", "init", "--agency", NEW, "--dir", str(home),
        "--root-certificate", str(handover.root_certificate),
        "--root-fingerprint", handover.root_fingerprint,
        "--manifest-url", handover.manifest_url, "--policies", str(handover.policies),
        "--broker-url", handover.broker_url, "--broker-user", handover.broker_user,
        "--listen", f"127.0.0.1:{free_port()}", *extra,
    )  # fmt: skip
    token = re.search(r"^token case-system send,receive (\S+)$", out, re.MULTILINE)
    assert token is not None, out
    return home / "agent.toml", token[1]


def operator_onboards(fed: DevFederation, home: Path, handover: Handover, secret: Path) -> None:
    """Step 3 (operator): certify the request, publish the announcement, provision."""
    root = str(fed.layout.root)
    run("isa-broker", "agency", "add", "--federation", root, "--id", NEW, "--name", "Assist",
        "--certificate-request", str(home / f"{NEW}.csr.pem"),
        "--broker-user", handover.broker_user, "--password-file", str(secret))  # fmt: skip
    (announcement,) = (home / "data" / "announcements").glob("*.json")
    run("isa-broker", "agency", "announce", "--federation", root, str(announcement))
    run("isa-broker", "provision", "--config", str(fed.layout.broker_toml))


async def first_referral(fed: DevFederation, config: Path, token: str, tmp: Path) -> None:
    """Step 4 (agency IT): check, run; then police-scotland sends it a referral it receives."""
    password = {"ISA_AGENT_BROKER_PASSWORD": (tmp / "assist.password").read_text().strip()}
    run("isa-agent", "check", "--config", str(config), env=password)
    settings = load_settings(config, environ={})
    agent = AgentProcess(NEW, config, f"http://{settings.api.listen}", tmp / "assist.log",
                         env={**_env(), **password, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    try:
        agent.start()
        await agent.await_healthy(30)
        async with aiohttp.ClientSession() as session, running_agents(fed, EXISTING) as agents:
            receiver = AgentHandle(settings, token, session)
            payload = generate_referral("police_concern", random.Random(16), risk_level="high")
            body = {"to": NEW, "isa": ISA, "purpose": PURPOSE, "type": "police_concern",
                    "payload": payload}  # fmt: skip
            status, accepted = await agents[EXISTING].post("/v1/messages", body)
            assert status == 202, accepted
            (item,) = await receiver.drain_inbox(1)
            sent = await agents[EXISTING].wait_status(accepted["id"], {"delivered"})
        assert (item["id"], item["from"], item["isa"]["id"]) == (accepted["id"], EXISTING, ISA)
        assert leaf_paths(item["payload"]) == set(accepted["shared_fields"])
        assert (sent["receipt"]["status"], sent["receipt"]["verified"]) == ("delivered", True)
    finally:
        code = await agent.astop()
        assert code == 0, agent.tail()


class TestDeployAnAgent:
    async def test_a_new_agency_onboarded_as_the_readme_says_receives_its_first_referral(
        self, federation: DevFederation, manifest_server: str, tmp_path: Path
    ) -> None:
        """README "Deploy an agent", step by step: init, add + announce + provision, run."""
        handover = operator_handover(federation, manifest_server)
        config, token = agency_init(tmp_path / "assist", handover)
        operator_onboards(federation, tmp_path / "assist", handover, tmp_path / "assist.password")
        await first_referral(federation, config, token, tmp_path)

    async def test_a_signing_key_made_with_openssl_is_imported_and_the_agent_runs_with_it(
        self, federation: DevFederation, manifest_server: str, tmp_path: Path
    ) -> None:
        """The same steps with ``--import-key`` of an ``openssl genpkey`` Ed25519 PEM."""
        pem = openssl_ed25519_key(tmp_path / "assist-signing.pem")
        handover = operator_handover(federation, manifest_server)
        if shutil.which("openssl"):
            handover.root_fingerprint = openssl_fingerprint(handover.root_certificate)
        home = tmp_path / "assist"
        config, token = agency_init(home, handover, "--import-key", str(pem))
        operator_onboards(federation, home, handover, tmp_path / "assist.password")
        certified = certificate_public_key(
            certificate_from_bytes(federation.layout.agency_cert(NEW).read_bytes()))
        imported = serialization.load_pem_private_key(pem.read_bytes(), None).public_key()
        assert bytes(certified) == imported.public_bytes_raw()  # type: ignore[union-attr]
        await first_referral(federation, config, token, tmp_path)
