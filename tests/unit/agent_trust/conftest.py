"""The broker_agency fixtures (a dev federation copied per test, a fixed clock) for agent.trust."""

from tests.unit.broker_agency.conftest import NOW, _template, layout

__all__ = ["NOW", "_template", "layout"]
