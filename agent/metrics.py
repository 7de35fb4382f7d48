"""The agent's Prometheus metrics, through ``prometheus_client`` on a per-agent registry.

Rules:
1. Each :class:`Metrics` owns its own ``CollectorRegistry``, never the process-global one:
   several agents run in one process in the tests, and each must count only its own traffic.
2. Every family has HELP text and its proper type: counters end in ``_total`` (the names in
   :data:`COUNTERS` are the exposed ones, kept since before ``prometheus_client``), gauges are
   set from the service's facts just before each scrape (:meth:`Metrics.render`).
3. The registry also carries the process (``process_*``), Python GC (``python_gc_*``) and
   platform (``python_info``) collectors, so an operator sees memory, CPU and file handles.
4. The hot path is one counter increment (:meth:`Metrics.inc`); nothing is computed per event.
5. Labels and values carry no personal data: counts and agency-wide facts only.
6. One labelled counter, ``isa_agent_send_refused_total{cause}``, counts submits the federation's
   trust refused (503, never 403): ``cause`` is one of :data:`REFUSAL_CAUSES`, a closed set, so
   its label values stay bounded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

__all__ = [
    "CONTENT_TYPE",
    "COUNTERS",
    "GAUGES",
    "REFUSAL_CAUSES",
    "REFUSED",
    "Metrics",
    "runtime_collectors",
]

#: The exposition format :meth:`Metrics.render` produces (Prometheus text format 0.0.4).
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

COUNTERS: Final[Mapping[str, str]] = {
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
    "isa_agent_reviews_held_total": "Referrals held unsent for review (202 review_pending).",
    "isa_agent_reviews_approved_total": "Reviews approved: decided again and sent.",
    "isa_agent_reviews_returned_total": "Reviews returned with a reason: never sent.",
    "isa_agent_reviews_overdue_total": "Reviews past their ISA's time limit, escalated.",
    "isa_agent_reviews_expired_total": "Reviews held past review_hold_hours: never sent.",
}

GAUGES: Final[Mapping[str, str]] = {
    "isa_agent_outbox_depth": "Messages queued in the outbox, waiting for the broker.",
    "isa_agent_broker_connected": "1 while the broker connection is up, else 0.",
    "isa_agent_manifest_serial": "Serial of the federation manifest in force (0: none).",
    "isa_agent_manifest_seconds_to_expiry": "Seconds until the manifest in force expires "
    "(negative once expired; 0 when there is none).",
}

#: Deadlines (``agent.expiry``): a family shows only the samples given at the last render, so
#: a deadline that is not known (no manifest yet, an ISA removed) shows nothing rather than 0.
DEADLINE_GAUGES: Final[Mapping[str, str]] = {
    "isa_agent_manifest_expires_in_seconds": "Seconds left on the manifest this agent holds "
    "(negative once lapsed).",
    "isa_agent_encryption_key_expires_in_seconds": "Seconds left on this agency's current "
    "announced encryption key (negative once lapsed).",
    "isa_agent_certificate_expires_in_seconds": "Seconds left on a certificate this agent "
    "relies on (label certificate: root, signer, agency).",
    "isa_agent_isa_review_in_seconds": "Seconds until a local ISA's review date (label isa).",
    "isa_agent_isa_end_in_seconds": "Seconds until a local ISA's end date (label isa).",
}
_LABEL = re.compile(r'(\w+)="([^"]*)"')


class _Deadlines:
    """A collector of :data:`DEADLINE_GAUGES` holding exactly the samples last given."""

    def __init__(self) -> None:
        self.samples: dict[str, list[tuple[dict[str, str], float]]] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, text in DEADLINE_GAUGES.items():
            samples = self.samples.get(name, [])
            labels = sorted({k for found, _ in samples for k in found})
            family = GaugeMetricFamily(name, text, labels=labels)
            for found, value in samples:
                family.add_metric([found.get(k, "") for k in labels], value)
            yield family


#: Rule 6: the labelled counter of submits refused by trust, and its closed set of causes.
REFUSED: Final = "isa_agent_send_refused_total"
REFUSAL_CAUSES: Final = (
    "trust_unavailable",
    "sender_certificate_expired",
    "recipient_key_unavailable",
    "recipient_certificate_expired",
)


def runtime_collectors(registry: CollectorRegistry) -> None:
    """Register the process, Python GC and platform collectors on ``registry``."""
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    PlatformCollector(registry=registry)


class Metrics:
    """One agent's counters and gauges; :meth:`render` is the ``/metrics`` text."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        runtime_collectors(self.registry)
        self._counters = {
            name: Counter(name.removesuffix("_total"), text, registry=self.registry)
            for name, text in COUNTERS.items()
        }
        self._gauges = {
            name: Gauge(name, text, registry=self.registry) for name, text in GAUGES.items()
        }
        self._deadlines = _Deadlines()
        self.registry.register(self._deadlines)
        self._refused = Counter(
            REFUSED.removesuffix("_total"),
            "Submits refused with a 503 because the federation's trust stops the send "
            "(no valid manifest, our certificate, the recipient's key or certificate).",
            ("cause",),
            registry=self.registry,
        )
        for cause in REFUSAL_CAUSES:  # every cause exposed from the start, at 0
            self._refused.labels(cause)

    def inc(self, name: str, amount: int = 1) -> None:
        """Count ``amount`` events of ``name`` (one of :data:`COUNTERS`; KeyError otherwise)."""
        self._counters[name].inc(amount)

    def refuse(self, cause: str) -> None:
        """Count one submit refused for ``cause`` (rule 6; ValueError for any other cause)."""
        if cause not in REFUSAL_CAUSES:
            raise ValueError(f"unknown refusal cause {cause!r}")
        self._refused.labels(cause).inc()

    @property
    def refusals(self) -> dict[str, int]:
        """Submits refused so far, by cause (rule 6)."""
        samples = (s for family in self._refused.collect() for s in family.samples)
        return {s.labels["cause"]: int(s.value) for s in samples if s.name == REFUSED}

    @property
    def counts(self) -> dict[str, int]:
        """Every counter's current value, by its exposed name."""
        return {name: _total(counter, name) for name, counter in self._counters.items()}

    def render(self, gauges: Mapping[str, float]) -> str:
        """Set the gauges (:data:`GAUGES`, and the deadlines of :data:`DEADLINE_GAUGES`, whose
        names may carry labels as ``agent.expiry`` writes them: ``name{label="x"}``) and expose
        the whole registry as text."""
        deadlines: dict[str, list[tuple[dict[str, str], float]]] = {}
        for key, value in gauges.items():
            name, labels = _split(key)
            if name in DEADLINE_GAUGES:
                deadlines.setdefault(name, []).append((labels, float(value)))
            else:
                self._gauges[name].set(value)
        self._deadlines.samples = deadlines
        return generate_latest(self.registry).decode("utf-8")


def _split(key: str) -> tuple[str, dict[str, str]]:
    """``'name{a="x",b="y"}'`` -> ``('name', {'a': 'x', 'b': 'y'})``."""
    name, _, rest = key.partition("{")
    return name, dict(_LABEL.findall(rest))


def _total(counter: Counter, name: str) -> int:
    samples = (s for family in counter.collect() for s in family.samples)
    return next(int(s.value) for s in samples if s.name == name)
