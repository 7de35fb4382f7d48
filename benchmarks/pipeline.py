"""ISA Relay end to end against raw aio-pika, in one run, on one machine, on a real RabbitMQ.

    .venv/bin/python -m benchmarks.pipeline [--only raw,pipeline,latency,sizes,agencies,backlog]
        [--rate 100] [--quick] [--json-out benchmarks/results/latest.json]

Parts (all by default; see benchmarks/README.md for what each measures and why):
  raw       raw aio-pika, publisher process -> consumer process: persistent 2 KB messages,
            publisher confirms, acked consumption, a quorum queue (benchmarks.raw_amqp)
  pipeline  two agents (``isa-agent run`` subprocesses): HTTP submit by concurrent clients ->
            minimise -> seal -> outbox -> broker -> open -> inbox -> receipt back; receipts/s
            and inbox arrivals/s, and the ratio to raw
  latency   p50/p95/p99 submit -> visible in the recipient's inbox at a fixed offered rate
  sizes     pipeline throughput at 1 KB, 16 KB and 256 KB payloads
  agencies  pipeline throughput with 2, 10 and 50 agencies running (N/2 sender -> recipient
            pairs under a throw-away SYNTHETIC ISA, the same total load spread over the pairs)
  backlog   100,000 envelopes queued for an offline agent; its drain rate and RSS over time

Rules: every figure comes from this run (no stored baselines); every federation and vhost is
created for the measurement and deleted after it; agents are stopped with SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.agents import bench_ids, federation, running, scaling_policies
from benchmarks.backlog import run_backlog
from benchmarks.raw_amqp import run_raw
from benchmarks.workload import Flow, latency, throughput
from devtools.management import Broker
from federation.errors import IsaRelayError

__all__ = ["main"]

PARTS = ("raw", "pipeline", "latency", "sizes", "agencies", "backlog")
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pipeline",
                                     description=__doc__.splitlines()[0])  # fmt: skip
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts")
    parser.add_argument("--raw-messages", type=int, default=20_000)
    parser.add_argument("--messages", type=int, default=3_000, help="per throughput row")
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients")
    parser.add_argument("--size", type=int, default=2048, help="payload bytes (raw + pipeline)")
    parser.add_argument("--rate", type=float, default=100.0, help="offered msg/s for latency")
    parser.add_argument("--latency-messages", type=int, default=1_500)
    parser.add_argument(
        "--latency-rates",
        default="10,25,50",
        help="extra offered rates for a latency-against-load table ('' for none)",
    )
    parser.add_argument("--sizes", default="1024,16384,262144")
    parser.add_argument("--agencies", default="2,10,50")
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument(
        "--prefetch",
        type=int,
        default=None,
        help="[broker] prefetch for every agent (default: the agent's own)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="scale every count down (a smoke run: not figures to quote)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="run the pipeline pair under cProfile; <agency>.pstats files go in this directory",
    )
    parser.add_argument("--json-out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp dir")
    parser.add_argument("--amqp-url", default=None, help="admin URL (default $AMQP_URL)")
    parser.add_argument("--management-url", default=None)
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}; choose from {PARTS}")
    if args.quick:
        args.raw_messages, args.messages = min(args.raw_messages, 500), min(args.messages, 100)
        args.latency_messages, args.backlog = (
            min(args.latency_messages, 100),
            min(args.backlog, 500),
        )
        args.agencies, args.latency_rates = "2,4", ""
    return args


def machine(rabbit: Broker) -> dict[str, Any]:
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {"cores": os.cpu_count(), "ram_gib": round(mem_kib / 1024 / 1024, 1),
            "cpu": _cpu_model(), "python": platform.python_version(),
            "rabbitmq": rabbit.version(), "kernel": platform.release(),
            "load_average_at_start": os.getloadavg()}  # fmt: skip


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def pipeline_parts(rabbit: Broker, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """pipeline, latency and sizes share one federation of two agents."""
    out: dict[str, Any] = {}
    (sender_id,), (recipient_id,) = bench_ids(1, 1)
    policies = scaling_policies(root / "pair-policies", [sender_id], [recipient_id])
    pair = [sender_id, recipient_id]
    with (
        federation(rabbit, root / "pair", agencies=pair, policies=policies) as fed,
        running(rabbit, fed, *pair, prefetch=args.prefetch, profile=args.profile) as (
            sender,
            recipient,
        ),
    ):
        flow = Flow(sender, recipient)
        asyncio.run(throughput([flow], 20, 4, args.size))  # warm-up, not reported
        if "pipeline" in args.parts:
            out["pipeline"] = asyncio.run(
                throughput([flow], args.messages, args.clients, args.size)
            )
            _say("pipeline", out["pipeline"])
        if "latency" in args.parts:
            out["latency"] = asyncio.run(latency(flow, args.latency_messages, args.rate, args.size))
            _say("latency", out["latency"])
            rates = [float(r) for r in args.latency_rates.split(",") if r]
            out["latency_by_rate"] = [_latency_row(flow, args, r) for r in rates]
        if "sizes" in args.parts:
            out["sizes"] = [_size_row(flow, args, int(s)) for s in args.sizes.split(",")]
    if args.profile is not None:  # written when the agents stopped, just now
        for role, agency in (("sender", sender_id), ("recipient", recipient_id)):
            path = args.profile / f"{agency}.pstats"
            print(f"== profile of the {role} ({path}): python -m benchmarks.profiled --top {path}")
    return out


def _latency_row(flow: Flow, args: argparse.Namespace, rate: float) -> dict[str, Any]:
    n = max(20, min(args.latency_messages, int(rate * 15)))
    row = asyncio.run(latency(flow, n, rate, args.size))
    _say(f"latency at {rate:g}/s", row)
    return row


def _size_row(flow: Flow, args: argparse.Namespace, size: int) -> dict[str, Any]:
    n = max(20, args.messages // max(1, size // 16384)) if size > 16384 else args.messages
    row = asyncio.run(throughput([flow], n, args.clients, size))
    _say(f"size {size}", row)
    return row


def agencies_row(rabbit: Broker, root: Path, args: argparse.Namespace, n: int) -> dict[str, Any]:
    senders, recipients = bench_ids(n // 2, n // 2)
    policies = scaling_policies(root / f"policies-{n}", senders, recipients)
    with federation(rabbit, root / f"fed-{n}", agencies=senders + recipients,
                    policies=policies) as fed:  # fmt: skip
        started = time.monotonic()
        with running(rabbit, fed, *senders, *recipients, prefetch=args.prefetch) as agents:
            startup = time.monotonic() - started
            by_id = {a.agency: a for a in agents}
            flows = [Flow(by_id[s], by_id[r])
                     for s, r in zip(senders, recipients, strict=True)]  # fmt: skip
            asyncio.run(throughput(flows, 2 * len(flows), len(flows), args.size))  # warm-up
            row = asyncio.run(throughput(flows, args.messages, args.clients, args.size))
    row |= {"agencies": n, "pairs": n // 2, "startup_seconds": startup}
    _say(f"agencies {n}", row)
    return row


def _say(label: str, row: dict[str, Any]) -> None:
    shown = {k: (round(v, 1) if isinstance(v, float) else v) for k, v in row.items()
             if k != "samples"}  # fmt: skip
    print(f"  {label}: {shown}", flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    rabbit = Broker.from_env(args.amqp_url, args.management_url)
    results: dict[str, Any] = {"date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                               "command": " ".join(["python -m benchmarks.pipeline",
                                                    *sys.argv[1:]]),
                               "machine": machine(rabbit), "quick": args.quick}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="isa-bench-", dir=args.workdir) as tmp:
        root = Path(tmp)
        steps: list[tuple[str, Callable[[], None]]] = []
        if "raw" in args.parts:
            steps.append(
                (
                    "raw",
                    lambda: results.update(
                        raw=run_raw(rabbit, args.raw_messages, args.size).to_json()
                    ),
                )
            )
        if {"pipeline", "latency", "sizes"} & set(args.parts):
            steps.append(("pipeline", lambda: results.update(pipeline_parts(rabbit, root, args))))
        if "agencies" in args.parts:
            steps.append(
                (
                    "agencies",
                    lambda: results.update(
                        agencies=[
                            agencies_row(rabbit, root, args, int(n))
                            for n in args.agencies.split(",")
                        ]
                    ),
                )
            )
        if "backlog" in args.parts:
            steps.append(
                (
                    "backlog",
                    lambda: results.update(
                        backlog=run_backlog(rabbit, root / "backlog", args.backlog, args.size)
                    ),
                )
            )
        for name, step in steps:
            print(f"== {name}", flush=True)
            step()
            if name == "raw":
                _say("raw", results["raw"])
            results["machine"]["load_average_at_end"] = os.getloadavg()
            save(args.json_out, results)  # after every part: a long run keeps what it measured
    return results


def save(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def summary(results: dict[str, Any]) -> list[str]:
    lines = ["", "== summary"]
    raw, pipe = results.get("raw"), results.get("pipeline")
    if raw:
        lines.append(f"raw aio-pika        {raw['msg_per_s']:9.1f} msg/s")
    if pipe:
        lines.append(f"pipeline (receipts) {pipe['receipts_per_s']:9.1f} msg/s"
                     f"   inbox arrivals {pipe['inbox_per_s']:.1f} msg/s")  # fmt: skip
    if raw:
        lines.append(
            f"  CPU ms/msg: publisher+consumer {raw['cpu_ms_per_msg']:.2f}, "
            f"broker {raw['broker_cpu_ms_per_msg']:.2f}"
        )
    if pipe:
        cpu = pipe["cpu_ms_per_msg"]
        lines.append(
            f"  CPU ms/msg: sender {cpu['senders']:.2f}, recipient "
            f"{cpu['recipients']:.2f}, HTTP clients {cpu['load_generator']:.2f}, "
            f"broker {cpu['broker']:.2f}"
        )
    if raw and pipe:
        ratio = pipe["receipts_per_s"] / raw["msg_per_s"]
        results["ratio_pipeline_to_raw"] = ratio
        lines.append(f"ratio               {ratio:9.2f}   (target >= 0.5)")
    if lat := results.get("latency"):
        lines.append(
            f"latency at {lat['rate_offered']:g} msg/s  p50 {lat['p50_ms']:.1f} ms  "
            f"p95 {lat['p95_ms']:.1f} ms  p99 {lat['p99_ms']:.1f} ms  (target p99 < 50)"
        )
    for row in results.get("sizes", []):
        lines.append(f"payload {row['payload_bytes']:>7} B  {row['receipts_per_s']:8.1f} msg/s")
    for row in results.get("agencies", []):
        lines.append(f"agencies {row['agencies']:>3}  {row['receipts_per_s']:8.1f} msg/s")
    if back := results.get("backlog"):
        lines.append(
            f"backlog {back['messages']}: drain {back['drain_per_s']:.1f} msg/s, RSS "
            f"peak {back['rss_mib_peak']:.0f} MiB, growth after 10% "
            f"{back['rss_growth_after_10pct_mib']:+.1f} MiB (flat: {back['flat']})"
        )
    return lines  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        results = run(args)
    except (RuntimeError, OSError, IsaRelayError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    print("\n".join(summary(results)))
    save(args.json_out, results)  # again: summary() adds the ratio
    print(f"results written to {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
