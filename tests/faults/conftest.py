"""Fixtures for the fault scenarios: a two-agency federation on the shared broker, on a
test-owned node, or on a test-owned three-node cluster; and the one-line reports.

Every scenario records ``sent=N delivered=N duplicated=0 lost=0 ...`` and its wall time through
the ``fault_report`` fixture; the lines are printed in pytest's terminal summary (so they show
without ``-s``) and the scenario asserts on the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from broker.devfed import DevFederation
from tests.faults.tally import Tally
from tests.support.cluster import RabbitCluster, rabbit_cluster
from tests.support.federation import build_federation, remove_federation
from tests.support.rabbitmq import RabbitServer

__all__ = [
    "cluster",
    "cluster_federation",
    "fault_report",
    "owned_federation",
    "owned_node",
    "pair_federation",
]

_REPORT = pytest.StashKey[list[str]]()

Report = Callable[..., None]


@pytest.fixture
def fault_report(request: pytest.FixtureRequest) -> Report:
    """``fault_report(scenario, tally, seconds, extra="")``: print and keep the one line."""

    def report(scenario: str, result: Tally, seconds: float, extra: str = "") -> None:
        line = f"{scenario}: {result.line()} wall={seconds:.1f}s {extra}".rstrip()
        print("\n" + line)
        request.config.stash.setdefault(_REPORT, []).append(line)

    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = terminalreporter.config.stash.get(_REPORT, [])
    if lines:
        terminalreporter.section("fault scenarios")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
def pair_federation(tmp_path: Path, rabbit_server: RabbitServer) -> Iterator[DevFederation]:
    """The shipped federation on a fresh vhost of the shared broker."""
    fed = build_federation(tmp_path / "federation", rabbit_server)
    try:
        yield fed
    finally:
        remove_federation(fed, rabbit_server)


@pytest.fixture
def owned_node() -> Iterator[RabbitCluster]:
    """One RabbitMQ node this test owns (and may stop, kill and restart)."""
    with rabbit_cluster(1) as node:
        yield node


@pytest.fixture
def cluster() -> Iterator[RabbitCluster]:
    """Three clustered RabbitMQ nodes this test owns, on their own ports."""
    with rabbit_cluster(3) as nodes:
        yield nodes


@pytest.fixture
def owned_federation(tmp_path: Path, owned_node: RabbitCluster) -> DevFederation:
    """The shipped federation provisioned on the test-owned node."""
    return build_federation(tmp_path / "federation", owned_node.nodes[0].server)


@pytest.fixture
def cluster_federation(tmp_path: Path, cluster: RabbitCluster) -> DevFederation:
    """The shipped federation provisioned on the test-owned cluster (through its first node)."""
    return build_federation(tmp_path / "federation", cluster.nodes[0].server)
