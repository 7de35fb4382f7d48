"""The agent's /metrics text: prometheus_client exposition on a registry of its own."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from agent.metrics import COUNTERS, GAUGES, Metrics

GAUGE_VALUES = {
    "isa_agent_outbox_depth": 3.0,
    "isa_agent_broker_connected": 0.0,
    "isa_agent_manifest_serial": 7.0,
    "isa_agent_manifest_seconds_to_expiry": -5.0,
}


def _samples(text: str) -> dict[str, Sample]:
    return {s.name: s for f in text_string_to_metric_families(text) for s in f.samples}


class TestExposition:
    def test_every_family_has_help_text(self) -> None:
        """Each family parsed from the text carries a non-empty HELP line."""
        families = list(text_string_to_metric_families(Metrics().render(GAUGE_VALUES)))
        assert families
        assert [f.name for f in families if not f.documentation] == []

    def test_process_and_python_collectors_are_exported(self) -> None:
        """process_*, python_gc_* and python_info families are present (Linux /proc)."""
        names = {f.name for f in text_string_to_metric_families(Metrics().render(GAUGE_VALUES))}
        assert {"process_resident_memory_bytes", "process_cpu_seconds", "python_info"} <= names
        assert {"python_gc_objects_collected", "process_open_fds"} <= names

    def test_every_existing_counter_name_is_kept_as_a_counter(self) -> None:
        """The isa_agent_*_total names dashboards and benchmarks read are still exposed."""
        metrics = Metrics()
        metrics.inc("isa_agent_received_total", 2)
        families = {f.name: f for f in text_string_to_metric_families(metrics.render({}))}
        samples = _samples(metrics.render({}))
        for name in COUNTERS:
            assert families[name.removesuffix("_total")].type == "counter"
            assert name in samples
        assert samples["isa_agent_received_total"].value == 2

    def test_gauges_show_the_values_given_at_render(self) -> None:
        """Each gauge is a gauge family with the value the service passed for this scrape."""
        text = Metrics().render(GAUGE_VALUES)
        families = {f.name: f for f in text_string_to_metric_families(text)}
        samples = _samples(text)
        assert {name: samples[name].value for name in GAUGES} == GAUGE_VALUES
        assert {families[name].type for name in GAUGES} == {"gauge"}


class TestRegistry:
    def test_two_agents_in_one_process_count_apart(self) -> None:
        """Each Metrics has its own registry: one agent's counts never show in another's."""
        first, second = Metrics(), Metrics()
        first.inc("isa_agent_submitted_total", 5)
        assert _samples(second.render({}))["isa_agent_submitted_total"].value == 0
        assert first.counts["isa_agent_submitted_total"] == 5
