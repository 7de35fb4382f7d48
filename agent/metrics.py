"""Prometheus counters for the agent (text exposition, no client library, no personal data)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

__all__ = ["Metrics"]

_HELP = {
    "isa_agent_submitted_total": "Referrals accepted into the outbox (202).",
    "isa_agent_denied_total": "Referrals refused by the ISA (403).",
    "isa_agent_published_total": "Envelopes and receipts confirmed by the broker.",
    "isa_agent_publish_failures_total": "Publish attempts that failed and will be retried.",
    "isa_agent_received_total": "Envelopes verified and stored in the inbox.",
    "isa_agent_duplicates_total": "Envelopes already seen (not delivered again).",
    "isa_agent_rejected_total": "Envelopes rejected (a rejection receipt went to the sender).",
    "isa_agent_repeated_acks_total": "Acknowledgements of an already acknowledged delivery.",
    "isa_agent_receipts_total": "Receipts received for our messages.",
    "isa_agent_receipts_refused_total": "Receipts refused: bad signature, not published by "
    "their issuer, not from the envelope's recipient, or citing another frame's hash.",
    "isa_agent_expired_total": "Our messages that expired undelivered.",
}


class Metrics:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def inc(self, name: str, amount: int = 1) -> None:
        self.counts[name] += amount

    def render(self, gauges: Mapping[str, float]) -> str:
        lines = []
        for name, text in _HELP.items():
            lines += [f"# HELP {name} {text}", f"# TYPE {name} counter"]
            lines.append(f"{name} {self.counts[name]}")
        family = ""
        for name, value in sorted(gauges.items()):  # a name may carry labels: name{label="x"}
            if name.partition("{")[0] != family:
                family = name.partition("{")[0]
                lines.append(f"# TYPE {family} gauge")
            text = f"{value:.0f}" if float(value).is_integer() else repr(float(value))
            lines.append(f"{name} {text}")
        return "\n".join(lines) + "\n"
