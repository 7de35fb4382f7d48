"""docker-compose.yml and docker/: structure, start-up order, and every reference resolvable.

There is no Docker engine where the tests run, so these tests read the compose file
(``yaml.safe_load``), the Dockerfile and the one-shot init script, and check that every command
parses with the real ``isa-agent`` / ``isa-broker`` command lines and every path exists in the
repository (or is one the init script's dev federation writes).
"""

from __future__ import annotations

import http.server
import os
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.cli import build_parser as agent_parser
from broker.cli import build_parser as broker_parser
from broker.fedstate import FederationLayout

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "docker" / "Dockerfile"
INIT = REPO / "docker" / "federation-init.sh"
HEALTHCHECK = REPO / "docker" / "healthcheck.py"
#: docker-compose v1 (1.29.2), installed by scripts/bootstrap into a venv of its own
COMPOSE_V1 = REPO / ".venv" / "tools" / "compose-v1" / "bin" / "docker-compose"
IMAGE_ROOT = "/opt/isa-relay/"  # the Dockerfile's WORKDIR: the repository's files land here
AGENT_PORT = 8441  # inside each agent container (the init script sets it)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


def agents(services: dict[str, Any]) -> dict[str, Any]:
    return {name: s for name, s in services.items() if name.startswith("agent-")}


def shipped_parties() -> set[str]:
    parties = set()
    for path in (REPO / "policies").glob("*.yaml"):
        parties |= {p["id"] for p in yaml.safe_load(path.read_text())["parties"]}
    return parties


def strings(node: Any) -> Iterator[str]:
    """Every string anywhere in a parsed YAML document."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def dockerfile_copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY line."""
    copies = []
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY "):
            *sources, dest = line.split()[1:]
            copies.append((sources, dest))
    return copies


def init_commands(program: str) -> list[list[str]]:
    """The ``program`` command lines of the init script, continuations joined, shell-split."""
    text = INIT.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    commands = []
    for line in lines:
        at = line.find(program + " ")
        if at == -1 or line.startswith("#"):
            continue
        words = shlex.split(line[at:].split(";")[0])
        commands.append([re.sub(r"\$\w+|\$\{[^}]*\}", "X", w) for w in words])
    return commands


class TestServices:
    def test_has_a_broker_a_one_shot_federation_step_and_three_agents(
        self, services: dict[str, Any]
    ) -> None:
        """RabbitMQ, the federation step and exactly three agencies' agents."""
        assert {"rabbitmq", "federation", "manifest-server"} <= set(services)
        assert len(agents(services)) == 3
        assert set(services) == {"rabbitmq", "federation", "manifest-server", *agents(services)}

    def test_manifest_server_re_signs_the_shared_manifest_before_it_expires(
        self, services: dict[str, Any]
    ) -> None:
        """The manifest server runs ``isa-broker serve --resign-before`` on the shared volume."""
        server = services["manifest-server"]
        program, *args = server["command"]
        parsed = broker_parser().parse_args(args)
        assert (program, parsed.command) == ("isa-broker", "serve")
        assert str(parsed.federation) == "/federation"
        assert 0 < parsed.resign_before < 30 * 24  # the init script's --manifest-days 30
        assert "federation:/federation" in server["volumes"]

    def test_rabbitmq_runs_with_the_management_plugin(self, services: dict[str, Any]) -> None:
        """The broker image is a -management image (provisioning needs the HTTP API)."""
        assert services["rabbitmq"]["image"].endswith("-management")

    def test_broker_and_agents_have_health_checks(self, services: dict[str, Any]) -> None:
        """Every long-running service declares a health check with a test command."""
        for name in ("rabbitmq", *agents(services)):
            test = services[name]["healthcheck"]["test"]
            assert test[0] in {"CMD", "CMD-SHELL"}, name
            assert len(test) >= 2, name

    def test_federation_step_runs_once_after_the_broker_is_healthy(
        self, services: dict[str, Any]
    ) -> None:
        """The federation step waits for a healthy broker and is never restarted."""
        step = services["federation"]
        assert step["depends_on"] == {"rabbitmq": {"condition": "service_healthy"}}
        assert step["restart"] == "no"

    def test_agents_wait_for_a_healthy_broker_and_a_completed_federation_step(
        self, services: dict[str, Any]
    ) -> None:
        """No agent starts before RabbitMQ is healthy and the federation step has succeeded."""
        for name, agent in agents(services).items():
            assert agent["depends_on"] == {
                "rabbitmq": {"condition": "service_healthy"},
                "federation": {"condition": "service_completed_successfully"},
            }, name

    def test_every_service_sharing_the_federation_volume_mounts_it_at_one_place(
        self, compose: dict[str, Any], services: dict[str, Any]
    ) -> None:
        """The federation step and every agent mount the declared volume at /federation."""
        assert "federation" in compose["volumes"]
        for name in ("federation", *agents(services)):
            assert "federation:/federation" in services[name]["volumes"], name

    def test_ports_are_published_on_loopback_only(self, services: dict[str, Any]) -> None:
        """Nothing is exposed beyond the host: every published port binds 127.0.0.1."""
        published = [p for s in services.values() for p in s.get("ports", [])]
        assert published
        assert all(p.startswith("127.0.0.1:") for p in published)

    def test_each_agent_has_its_own_host_port_onto_the_container_api_port(
        self, services: dict[str, Any]
    ) -> None:
        """Host ports differ; each maps onto the API port the init script configures."""
        mappings = [a["ports"][0].split(":") for a in agents(services).values()]
        assert len({host for _, host, _ in mappings}) == len(mappings)
        assert {container for _, _, container in mappings} == {str(AGENT_PORT)}

    def test_agent_health_checks_ask_readyz_not_healthz(self, services: dict[str, Any]) -> None:
        """The check calls docker/healthcheck.py on /readyz: a broker outage is not unhealthy."""
        for agent in agents(services).values():
            test = agent["healthcheck"]["test"]
            assert test[2] == IMAGE_ROOT + "docker/healthcheck.py"
            assert test[3] == f"http://127.0.0.1:{AGENT_PORT}/readyz"


class TestCommands:
    def test_agents_run_distinct_agencies_named_by_the_shipped_isas(
        self, services: dict[str, Any]
    ) -> None:
        """Each agent's config is /federation/agencies/<id>/agent.toml for a distinct ISA party."""
        layout = FederationLayout(Path("/federation"))
        ids = []
        for name, agent in agents(services).items():
            agency = name.removeprefix("agent-")
            assert agent["command"][-1] == str(layout.agency_dir(agency) / "agent.toml")
            ids.append(agency)
        assert len(set(ids)) == 3
        assert set(ids) <= shipped_parties()

    def test_agent_commands_parse_with_the_real_isa_agent_cli(
        self, services: dict[str, Any]
    ) -> None:
        """``isa-agent run --config FILE`` is a console script and a valid command line."""
        scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
        for agent in agents(services).values():
            program, *args = agent["command"]
            assert program in scripts
            parsed = agent_parser().parse_args(args)
            assert (parsed.command, str(parsed.config)) == ("run", args[-1])

    def test_init_script_isa_broker_commands_parse_with_the_real_cli(self) -> None:
        """Both isa-broker command lines of the init script (build, provision) parse."""
        commands = init_commands("isa-broker")
        assert [c[1] for c in commands] == ["dev-federation", "provision"]
        for command in commands:
            assert broker_parser().parse_args(command[1:]).command == command[1]

    def test_init_script_moves_every_agent_api_to_the_container_port(self) -> None:
        """The init script rewrites each agent's listen address to 0.0.0.0:8441."""
        assert f'listen = "0.0.0.0:{AGENT_PORT}"' in INIT.read_text()

    def test_init_script_is_valid_posix_sh(self) -> None:
        """``sh -n`` accepts the init script (the image has no bash)."""
        assert INIT.read_text().startswith("#!/bin/sh\n")
        done = subprocess.run(["sh", "-n", str(INIT)], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr


class TestPaths:
    def test_the_build_uses_the_repository_root_and_docker_dockerfile(
        self, services: dict[str, Any]
    ) -> None:
        """Every build is context '.' with docker/Dockerfile, which exists."""
        builds = [s["build"] for s in services.values() if "build" in s]
        assert builds
        assert all(b == {"context": ".", "dockerfile": "docker/Dockerfile"} for b in builds)
        assert DOCKERFILE.is_file()

    def test_every_copy_source_in_the_dockerfile_exists(self) -> None:
        """Each COPY source is a file or directory of the repository."""
        sources = [src for srcs, _ in dockerfile_copies() for src in srcs]
        assert sources
        missing = [src for src in sources if not (REPO / src).exists()]
        assert missing == []

    def test_the_build_context_sends_exactly_what_the_dockerfile_copies(self) -> None:
        """The Dockerfile's ignore file excludes everything except the COPY sources."""
        ignore = (REPO / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
        allowed = {line[1:] for line in ignore if line.startswith("!")}
        sources = {src for srcs, _ in dockerfile_copies() for src in srcs}
        assert "*" in ignore
        assert allowed == sources

    def test_every_image_path_in_the_compose_file_is_copied_from_the_repository(
        self, compose: dict[str, Any]
    ) -> None:
        """Each /opt/isa-relay/... path is a repository file that the Dockerfile copies."""
        paths = {s for s in strings(compose) if s.startswith(IMAGE_ROOT)}
        assert paths
        copied = {src for srcs, _ in dockerfile_copies() for src in srcs}
        for path in paths:
            relative = path.removeprefix(IMAGE_ROOT)
            assert (REPO / relative).is_file(), path
            assert relative in copied or relative.split("/")[0] in copied, path

    def test_scripts_the_containers_execute_are_executable(self) -> None:
        """The init script (run as the command) and the health check are executable files."""
        for path in (INIT, HEALTHCHECK):
            assert os.access(path, os.X_OK), path

    def test_the_package_metadata_the_image_installs_from_is_copied(self) -> None:
        """pyproject.toml, constraints.txt and README.md (the package's readme) are copied."""
        copied = {src for srcs, _ in dockerfile_copies() for src in srcs}
        assert {"pyproject.toml", "constraints.txt", "README.md"} <= copied
        assert {"federation", "agent", "broker", "policies"} <= copied


def compose_v1_config(path: Path) -> subprocess.CompletedProcess[str]:
    """``docker-compose -f PATH config -q`` with the real v1 (it needs no Docker engine)."""
    assert COMPOSE_V1.is_file(), f"{COMPOSE_V1} missing: run scripts/bootstrap (it installs it)"
    return subprocess.run(
        [str(COMPOSE_V1), "-f", str(path), "config", "-q"],
        capture_output=True, text=True, check=False, cwd=path.parent,
    )  # fmt: skip


class TestComposeV1:
    def test_docker_compose_v1_config_accepts_the_file(self) -> None:
        """``docker-compose config`` (v1, 1.29.2) passes on docker-compose.yml (issue 16.8)."""
        done = compose_v1_config(COMPOSE)
        assert (done.returncode, done.stderr) == (0, "")

    def test_docker_compose_v1_refuses_a_top_level_name(self, tmp_path: Path) -> None:
        """The check can fail: the same file with a top-level ``name:`` (the bug) is refused."""
        named = tmp_path / "docker-compose.yml"
        named.write_text("name: isa-relay\n" + COMPOSE.read_text())
        done = compose_v1_config(named)
        assert done.returncode != 0
        assert "'name' does not match any of the regexes" in done.stderr


class _Answer(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[str, type[_Answer]]]:
    handler = type("Handler", (_Answer,), {"status": 200})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/readyz", handler
    finally:
        server.shutdown()
        server.server_close()


def healthcheck(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), url], capture_output=True, text=True, check=False
    )


class TestHealthcheckScript:
    def test_healthy_when_readyz_answers_200(
        self, health_server: tuple[str, type[_Answer]]
    ) -> None:
        """Exit 0 when /readyz answers 200 (ready, or degraded with the broker down)."""
        assert healthcheck(health_server[0]).returncode == 0

    def test_unhealthy_when_readyz_answers_503(
        self, health_server: tuple[str, type[_Answer]]
    ) -> None:
        """Exit 1 when the agent is not ready: fail-closed or no store (503)."""
        url, handler = health_server
        handler.status = 503
        assert healthcheck(url).returncode == 1

    def test_unhealthy_when_nothing_listens(self) -> None:
        """Exit 1 and say why when no agent answers."""
        done = healthcheck("http://127.0.0.1:9/readyz")
        assert done.returncode == 1
        assert "unhealthy" in done.stderr
