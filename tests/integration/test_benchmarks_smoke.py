"""The benchmark harness still runs: a tiny run against the real RabbitMQ (figures not quoted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.agents import scaling_policies
from benchmarks.workload import percentile, referral
from broker.fedstate import load_policies
from tests.support.rabbitmq import RabbitServer

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


class TestPipelineHarness:
    def test_a_tiny_run_prints_every_figure_and_writes_them_as_json(
        self, tmp_path: Path, rabbit_server: RabbitServer
    ) -> None:
        """50 messages through raw, pipeline, latency and backlog: figures printed and saved."""
        out = tmp_path / "results.json"
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.pipeline", "--quick",
             "--only", "raw,pipeline,latency,backlog", "--raw-messages", "50",
             "--messages", "50", "--latency-messages", "50", "--backlog", "50",
             "--amqp-url", rabbit_server.amqp_url,
             "--management-url", rabbit_server.management_url,
             "--json-out", str(out), "--workdir", str(tmp_path)],
            cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        for figure in ("raw aio-pika", "pipeline (receipts)", "ratio", "p99", "backlog 50"):
            assert figure in done.stdout
        results = json.loads(out.read_text())
        assert results["raw"]["messages"] == 50
        assert results["raw"]["msg_per_s"] > 0
        assert results["pipeline"]["receipts_per_s"] > 0
        assert results["latency"]["delivered"] == 50
        assert 0 < results["latency"]["p50_ms"] <= results["latency"]["p99_ms"]
        assert results["backlog"]["rss_mib_by_share"]["100%"] > 0
        assert results["ratio_pipeline_to_raw"] > 0
        assert results["machine"]["cores"] >= 1

    def test_profile_writes_a_cpu_profile_of_each_agent(
        self, tmp_path: Path, rabbit_server: RabbitServer
    ) -> None:
        """--profile DIR: both agents run under cProfile; each leaves a .pstats file that
        ``benchmarks.profiled --top`` reads, naming the agent's own code."""
        profiles = tmp_path / "profiles"
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.pipeline", "--quick", "--only", "pipeline",
             "--messages", "30", "--profile", str(profiles),
             "--amqp-url", rabbit_server.amqp_url,
             "--management-url", rabbit_server.management_url,
             "--json-out", str(tmp_path / "r.json"), "--workdir", str(tmp_path)],
            cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        found = sorted(profiles.glob("*.pstats"))
        assert len(found) == 2
        top = subprocess.run(
            [sys.executable, "-m", "benchmarks.profiled", "--top", str(found[0]), "15"],
            cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert "function calls" in top.stdout
        assert "cumulative" in top.stdout

    def test_an_unknown_part_is_a_clear_error_not_a_traceback(self) -> None:
        """--only with a part that does not exist exits 2 and names the parts."""
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.pipeline", "--only", "raw,warp"],
            cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 2
        assert "unknown part(s): warp" in done.stderr
        assert "Traceback" not in done.stderr


class TestHarnessPieces:
    def test_the_scaling_isa_names_every_agency_and_loads(self, tmp_path: Path) -> None:
        """The throw-away scaling ISA lets each sender reach each recipient, and is valid."""
        senders, recipients = ["syn-s00", "syn-s01"], ["syn-r00"]
        folder = scaling_policies(tmp_path / "policies", senders, recipients)
        (isa,) = load_policies(folder, known_agencies=senders + recipients)
        assert {p.id for p in isa.doc.parties} == set(senders + recipients)

    @pytest.mark.parametrize("size", [2048, 16384, 262144])
    def test_referrals_are_padded_to_the_requested_size(self, size: int) -> None:
        """The payload JSON is exactly the size asked for (above the ~1.3 KB minimum)."""
        assert len(json.dumps(referral(size))) == size

    def test_percentile_is_nearest_rank(self) -> None:
        """p50 of 1..100 is 50, p99 is 99, p100 is the maximum."""
        values = [float(v) for v in range(100, 0, -1)]
        assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (
            50.0, 99.0, 100.0,
        )  # fmt: skip
