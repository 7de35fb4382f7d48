"""Render a ``benchmarks.pipeline`` JSON result as the Markdown tables of the README.

    .venv/bin/python -m benchmarks.report [benchmarks/results/latest.json]

Pure formatting: no measurement, no I/O beyond reading the one file named.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["render"]

DEFAULT = Path(__file__).resolve().parent / "results" / "latest.json"


def _machine(m: dict[str, Any], date: str) -> list[str]:
    load = m.get("load_average_at_start", [0, 0, 0])
    end = m.get("load_average_at_end", [0, 0, 0])
    return [
        f"Measured {date} on {m['cores']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, "
        f"RabbitMQ {m['rabbitmq']}, Python {m['python']}, Linux {m['kernel']}; 1-minute load "
        f"average {load[0]:.1f} at the start and {end[0]:.1f} at the end.",
        "",
    ]


def _percentiles(lat: dict[str, Any]) -> str:
    return (f"p50 {lat['p50_ms']:.0f} ms, p95 {lat['p95_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms "
            f"(max {lat['max_ms']:.0f}; achieved {lat['rate_achieved']:.0f} msg/s)")  # fmt: skip


def _headline(r: dict[str, Any]) -> list[str]:
    raw, pipe, lat = r.get("raw"), r.get("pipeline"), r.get("latency")
    rows = ["| measure | result | target |", "|---|---|---|"]
    if raw:
        rows.append(f"| raw aio-pika, 2 KB, confirmed + acked | {raw['msg_per_s']:.0f} msg/s | |")
    if pipe:
        rows.append(f"| whole pipeline, receipts back | {pipe['receipts_per_s']:.0f} msg/s "
                    f"(inbox arrivals {pipe['inbox_per_s']:.0f} msg/s) | |")  # fmt: skip
    if raw and pipe:
        ratio = pipe["receipts_per_s"] / raw["msg_per_s"]
        ok = "met" if ratio >= 0.5 else "**missed**"
        rows.append(f"| pipeline / raw | {ratio:.2f} | >= 0.5 ({ok}) |")
    if lat:
        ok = "met" if lat["p99_ms"] < 50 else "**missed**"
        rows.append(f"| latency submit -> inbox at {lat['rate_offered']:g} msg/s offered | "
                    f"{_percentiles(lat)} | p99 < 50 ms ({ok}) |")  # fmt: skip
    if back := r.get("backlog"):
        ok = "met" if back["flat"] else "**missed**"
        rows.append(f"| drain of a {back['messages']:,}-message backlog | "
                    f"{back['drain_per_s']:.0f} msg/s; RSS {back['rss_mib_by_share']['10%']:.0f} "
                    f"MiB at 10 %, {back['rss_mib_by_share']['100%']:.0f} MiB at 100 %, peak "
                    f"{back['rss_mib_peak']:.0f} MiB | memory flat ({ok}) |")  # fmt: skip
    return [*rows, ""]


def _cpu(r: dict[str, Any]) -> list[str]:
    raw, pipe = r.get("raw"), r.get("pipeline")
    if not (raw and pipe):
        return []
    cpu = pipe["cpu_ms_per_msg"]
    return [
        "CPU time per message (from `/proc`, so less sensitive to other load than msg/s): raw "
        f"publisher + consumer {raw['cpu_ms_per_msg']:.2f} ms; pipeline sender agent "
        f"{cpu['senders']:.2f} ms, recipient agent {cpu['recipients']:.2f} ms, HTTP load "
        f"generator {cpu['load_generator']:.2f} ms; RabbitMQ {raw['broker_cpu_ms_per_msg']:.2f} "
        f"ms (raw) and {cpu['broker']:.2f} ms (pipeline: envelope + receipt; includes anything "
        "else the broker did meanwhile).",
        "",
    ]


def _tables(r: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if sizes := r.get("sizes"):
        out += ["| payload | messages | receipts/s | inbox/s | sender CPU ms/msg |",
                "|---|---|---|---|---|"]  # fmt: skip
        out += [f"| {s['payload_bytes']:,} B | {s['messages']} | {s['receipts_per_s']:.0f} | "
                f"{s['inbox_per_s']:.0f} | {s['cpu_ms_per_msg']['senders']:.2f} |"
                for s in sizes]  # fmt: skip
        out.append("")
    if agencies := r.get("agencies"):
        out += ["| agencies running | pairs | start-up | receipts/s | inbox/s |",
                "|---|---|---|---|---|"]  # fmt: skip
        out += [f"| {a['agencies']} | {a['pairs']} | {a['startup_seconds']:.0f} s | "
                f"{a['receipts_per_s']:.0f} | {a['inbox_per_s']:.0f} |"
                for a in agencies]  # fmt: skip
        out.append("")
    if rates := r.get("latency_by_rate"):
        out += ["| offered msg/s | latency submit -> inbox |", "|---|---|"]
        out += [f"| {x['rate_offered']:g} | {_percentiles(x)} |" for x in rates]
        out.append("")
    return out


def render(results: dict[str, Any]) -> str:
    lines = _machine(results["machine"], results["date"])
    lines += _headline(results) + _cpu(results) + _tables(results)
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else DEFAULT
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"cannot read {path}: {exc}", file=sys.stderr)
        return 1
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
